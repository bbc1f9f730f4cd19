import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ConcordId, type MergeStrategy, type NativeId, type ReplicaStore, SyncPair, asPairId, asReplicaId, concordIdFor, jsonEqual, openMemoryStore } from '@concord/engine'
import { openLevelStore } from '@concord/engine/node'
import { type PolicyName, type Scheduler, createScheduler } from '@concord/scheduler'
import { type CycleOutcome, cycleOptions, drainPair, drive, initialSync, measureCycle, pollResultOf } from './driver.js'
import { TimedHeap } from './heap.js'
import { type ConflictRule, type MergeModel, type ModelItem, modelCreate, modelWrite, settleModel } from './reference-model.js'
import { mixSeed, mulberry32, normal } from './rng.js'
import { DATAVERSE_LIMIT, GRAPH_LIMIT, type ServiceLimit, SimAdapter, SimRemote } from './sim-remote.js'
import { type FinalState, type PolicyRun, assemblePolicyRun, canonicalRecords } from './policy-run.js'
import { STUB_MAILBOX_INFO, runStubPolicy, stubCrmRequests, stubGraphRequests } from './run-stub.js'
import { SimulatorError } from './errors.js'
import { type Workload, type WorkloadEvent, type WorkloadSide, HOUR, MIN, SIM_EPOCH, eventCount } from './workload.js'

/** How a conflict policy resolves a field both sides changed between two syncs (the reference model). */
export type { ConflictRule } from './reference-model.js'

export interface RunOptions {
  policy: PolicyName
  workload: Workload
  seed: number
  engine: 'real' | 'stub'
  store: 'leveldb' | 'memory'
  notifications: boolean
  notificationLoss: number
  /** Changes before this virtual time are not measured (learning policies warm up). */
  warmupMs: number
  /** Extra virtual time after the workload ends in which syncs continue under the policy. */
  drainMs: number
  budget?: { requestsPerWindow: number; windowMs: number } | undefined
  trueRate: (mailboxId: string, t: number) => number
  /** The true CRM-side rate (part of `trueRate`), for the oracle's schedule of CRM pulls. */
  trueCrmRate: (mailboxId: string, t: number) => number
  merge: () => MergeStrategy
  conflictRule: ConflictRule
  /** The reference model of the merge under test (default: every field two-way, no tracking, `conflictRule`). */
  model?: MergeModel | undefined
  /** Virtual duration of one request (cycle duration = requests × this). */
  requestLatencyMs: number
  onProgress?: ((virtualMs: number) => void) | undefined
  /** Service limits (default: Graph 10,000 / 10 min per mailbox, Dataverse 6,000 / 5 min per user). */
  limits?: { graph?: ServiceLimit | undefined; dataverse?: ServiceLimit | undefined } | undefined
  /** Set of scheduler options passed through (tests). */
  scheduler?: Record<string, unknown> | undefined
  /** Receives each mailbox's final live records per side (canonical contact fields, sorted JSON) after the drain. */
  onFinalState?: ((state: FinalState[]) => void) | undefined
}

export type { MailboxStat, PolicyRun } from './policy-run.js'
export { percentile } from './policy-run.js'

interface Pending {
  t: number
  item: string
  side: WorkloadSide
  op: WorkloadEvent['op']
  fields: string[]
  measured: boolean
}

/** The reference model of an item plus where its origin record lives. */
interface ItemState extends ModelItem {
  native: NativeId
}

interface Box {
  id: string
  index: number
  items: Map<string, ItemState>
  dirty: Set<string>
  pending: Pending[]
  crmPending: number
  stalenessSum: number
  measured: number
  changes: number
  crm: SimRemote
  mbx: SimRemote
  crmAdapter: SimAdapter
  mbxAdapter: SimAdapter
  pair: SyncPair
  /** Warm-up: changes applied since the last warm-up sync (all, and of them on the CRM side). */
  warmChanges: number
  warmCrmChanges: number
}

interface Completion extends CycleOutcome {
  box: Box
}

const SIDES: readonly WorkloadSide[] = ['crm', 'mailbox']

/** Runs one scheduling policy over the workload in virtual time and measures it. */
export async function runPolicy(options: RunOptions): Promise<PolicyRun> {
  if (options.engine === 'stub') return runStubPolicy(options)
  const { workload } = options
  if (workload.events.length < eventCount(workload)) throw new SimulatorError('Internal', 'the real engine replays event objects: generate the workload with eventsAs: objects')
  const model: MergeModel = options.model ?? { direction: () => 'both', tracking: false, rule: options.conflictRule }
  let now = 0
  const clock = () => SIM_EPOCH + now
  const rng = mulberry32(mixSeed(options.seed, 0xbeef))
  const endMs = workload.durationMs + options.drainMs
  const hours = Math.ceil(endMs / HOUR)
  const callsPerHour = new Array<number>(hours).fill(0)
  const staleness: number[] = []
  const problems: string[] = []
  let conflicts = 0
  let referenceConflicts = 0
  let cycles = 0
  let skippedEvents = 0
  let notificationsSent = 0
  let notificationsDropped = 0
  /** Requests of the warm-up's modelled syncs (no engine ran them). */
  const warmupCalls = { graph: 0, crm: 0 }

  const sched: Scheduler = createScheduler({
    ...options.scheduler,
    policy: options.policy,
    ...(options.budget ? { budget: options.budget } : {}),
    ...(options.policy === 'oracle' ? { oracle: { rate: options.trueRate, crmRate: options.trueCrmRate } } : {}),
    random: mulberry32(mixSeed(options.seed, 0xabc)),
  })

  let store: ReplicaStore
  // Group commit: one batch per cycle that pushes (see ReplicaStore). The read cache holds a run's
  // hot records (a few thousand keys per mailbox-day), so cycles rarely wait for the database.
  const storeOptions = { now: clock, groupCommit: true, cacheEntries: Math.max(100_000, 4_000 * workload.mailboxes.length) }
  let dir: string | undefined
  if (options.store === 'leveldb') {
    dir = await mkdtemp(join(tmpdir(), 'concord-sim-'))
    store = (await openLevelStore(dir, storeOptions)).store
  } else store = (await openMemoryStore(storeOptions)).store
  const crmReplica = (box: Box) => asReplicaId(`crm-${box.id}`)
  const mbxReplica = (box: Box) => asReplicaId(`mbx-${box.id}`)

  const notifications = new TimedHeap<number>() // mailbox index × 2 + (1 if CRM)
  const boxes = new Map<string, Box>()
  for (const [index, id] of workload.mailboxes.entries()) {
    const faults = { replayPage: 0.02, reorderAndDuplicate: 0.02, expireCursor: 0.001 }
    const crm = new SimRemote(`crm-${id}`, clock)
    const mbx = new SimRemote(`mbx-${id}`, clock)
    const crmAdapter = new SimAdapter(asReplicaId(`crm-${id}`), crm, clock, options.limits?.dataverse ?? DATAVERSE_LIMIT, { faults, seed: mixSeed(options.seed, index * 2 + 1) })
    const mbxAdapter = new SimAdapter(asReplicaId(`mbx-${id}`), mbx, clock, options.limits?.graph ?? GRAPH_LIMIT, { faults, seed: mixSeed(options.seed, index * 2 + 2) })
    const pair = new SyncPair({
      pairId: asPairId(`pair-${id}`),
      store,
      crm: crmAdapter,
      mailbox: mbxAdapter,
      merge: options.merge(),
      pageLimit: 50,
      now: clock,
      onDecision: (_id, decision) => {
        for (const f of decision.fields) if (f.outcome.startsWith('conflict') || f.outcome === 'merged') conflicts++
      },
    })
    boxes.set(id, { id, index, items: new Map(), dirty: new Set(), pending: [], crmPending: 0, stalenessSum: 0, measured: 0, changes: 0, crm, mbx, crmAdapter, mbxAdapter, pair, warmChanges: 0, warmCrmChanges: 0 })
  }

  const remoteOf = (box: Box, side: WorkloadSide) => (side === 'crm' ? box.crm : box.mbx)
  const replicaOf = (box: Box, side: WorkloadSide) => (side === 'crm' ? crmReplica(box) : mbxReplica(box))
  /** The Concord id of an item: the origin record's stamp, or the id the engine derives from the origin native id. */
  const concordOf = (box: Box, item: ItemState): ConcordId => remoteOf(box, item.origin).records.get(item.native)?.concordId ?? concordIdFor(replicaOf(box, item.origin), item.native)
  const nativeOn = (box: Box, item: ItemState, side: WorkloadSide): NativeId | undefined => {
    if (side === item.origin) return remoteOf(box, side).get(item.native) ? item.native : undefined
    return remoteOf(box, side).findByConcordId(concordOf(box, item))?.nativeId
  }

  const apply = (e: WorkloadEvent) => {
    const box = boxes.get(e.mailbox)!
    let item = box.items.get(e.item)
    if (e.op === 'create') {
      const native = remoteOf(box, e.side).create(e.kind, e.fields ?? {})
      item = { ...modelCreate(e.kind, e.side, e.fields ?? {}, now), native }
      box.items.set(e.item, item)
    } else {
      if (!item) return void skippedEvents++
      const native = nativeOn(box, item, e.side)
      if (native === undefined) return void skippedEvents++ // not (yet) on this side: the person cannot edit it
      const remote = remoteOf(box, e.side)
      if (e.op === 'update') remote.update(native, e.fields ?? {})
      else if (e.op === 'delete') remote.remove(native)
      else {
        const moved = remote.move(native)
        if (item.origin === e.side) item.native = moved
      }
      modelWrite(item, e.side, e.op, e.fields, now)
    }
    box.dirty.add(e.item)
    if (e.initial) return
    box.changes++
    box.warmChanges++
    if (e.side === 'crm') box.warmCrmChanges++
    box.pending.push({ t: now, item: e.item, side: e.side, op: e.op, fields: e.fields ? Object.keys(e.fields) : [], measured: now >= options.warmupMs && now < workload.durationMs })
    if (options.notifications) notify(box, e.side)
  }

  function notify(box: Box, side: WorkloadSide): void {
    if (rng() < options.notificationLoss) notificationsDropped++
    else {
      // Graph: mostly under a minute, never over 3 minutes (performance.md §3b)
      const latency = Math.min(3 * MIN, 15_000 * Math.exp(0.9 * normal(rng)))
      notifications.push(now + latency, box.index * 2 + (side === 'crm' ? 1 : 0))
      notificationsSent++
    }
  }

  const settleReference = (box: Box, crmPulled = true) => {
    referenceConflicts += settleModel(box.items, box.dirty, model, crmPulled)
  }

  /** True when both sides show what the reference model expects of the change's item (present or gone, and the change's fields). */
  const propagated = (box: Box, p: Pending): boolean => {
    const item = box.items.get(p.item)
    if (!item) return false
    for (const side of SIDES) {
      const native = nativeOn(box, item, side)
      if (item.deleted || !item.present[side]) {
        if (native !== undefined) return false
        continue
      }
      if (native === undefined) return false
      const fields = remoteOf(box, side).get(native)!.fields
      const expected = item.sides[side]
      for (const f of p.fields) if (!jsonEqual(fields[f] ?? null, expected[f] ?? null)) return false
    }
    return true
  }

  const runCycle = async (box: Box, pullCrm: boolean): Promise<Completion> => {
    cycles++
    const outcome = await measureCycle(() => box.pair.runCycle(undefined, cycleOptions(pullCrm)), () => box.crmAdapter.calls + box.mbxAdapter.calls, (text) => problems.length < 20 && problems.push(`${box.id}: ${text}`))
    if (outcome.clean) settleReference(box, outcome.crmPulled)
    return { box, ...outcome }
  }

  /** A sync pushed the CRM writes the scheduler was told about. */
  const crmWritesDone = (box: Box, at: number) => {
    if (box.crmPending === 0) return
    box.crmPending = 0
    sched.setPendingCrmWrites(box.id, 0, at)
  }

  const complete = (c: Completion, at: number, syncedAt: number) => {
    const box = c.box
    const keep: Pending[] = []
    for (const p of box.pending) {
      if (p.t <= syncedAt && c.clean && propagated(box, p)) {
        if (p.measured) {
          const s = (at - p.t) / 1000
          staleness.push(s)
          box.stalenessSum += s
          box.measured++
        }
      } else keep.push(p)
    }
    box.pending = keep
    if (c.clean && c.crmPulled) crmWritesDone(box, at)
    sched.recordPoll(box.id, pollResultOf(c, at))
  }

  // initial data and the initial sync (not measured, not charged to the policy)
  let ei = 0
  while (ei < workload.events.length && workload.events[ei]!.initial) apply(workload.events[ei++]!)
  for (const box of boxes.values()) {
    await initialSync(() => box.pair.runCycle())
    box.crmAdapter.calls = 0
    box.mbxAdapter.calls = 0
    settleReference(box)
    sched.addMailbox(box.id, 0, STUB_MAILBOX_INFO)
  }

  const boxList = [...boxes.values()]
  const onNotification = (v: number, t: number) => {
    const box = boxList[v >> 1]!
    if (v & 1) sched.setPendingCrmWrites(box.id, ++box.crmPending, t)
    else sched.recordNotification(box.id, t)
  }
  const eventsBefore = (end: number) => () => (ei < workload.events.length && workload.events[ei]!.t < end ? workload.events[ei]!.t : Infinity)

  if (options.warmupMs > 0) {
    // Warm-up (not measured): the workload goes to both remotes and the scheduler learns from it, with
    // the stub engine's request model (one delta call per side, a page per 50 changes, a push per side
    // with writes) instead of engine cycles; then the engine syncs everything once, uncharged, like
    // the initial data. Only the measured day pays for the real engine.
    await drive<{ box: Box; changes: number; crmChanges: number; pullCrm: boolean; requests: number }>({
      sched,
      policy: options.policy,
      endMs: options.warmupMs,
      onProgress: options.onProgress,
      setNow: (t) => void (now = t),
      nextEventAt: eventsBefore(options.warmupMs),
      applyEvent: () => apply(workload.events[ei++]!),
      notifications,
      onNotification,
      dispatch: (d, t, finish) => {
        const box = boxes.get(d.mailboxId)!
        cycles++
        const crm = d.pullCrm ? box.warmCrmChanges : 0
        const mbx = box.warmChanges - box.warmCrmChanges
        const graph = stubGraphRequests(mbx, crm)
        const dataverse = stubCrmRequests(mbx, crm, d.pullCrm)
        warmupCalls.graph += graph
        warmupCalls.crm += dataverse
        callsPerHour[Math.min(hours - 1, Math.floor(t / HOUR))]! += graph + dataverse
        finish(t + Math.max(1, (graph + dataverse) * options.requestLatencyMs), { box, changes: mbx + crm, crmChanges: crm, pullCrm: d.pullCrm, requests: graph + dataverse })
        box.warmChanges -= mbx + crm
        box.warmCrmChanges -= crm
      },
      complete: ({ box, changes, crmChanges, pullCrm, requests }, t) => {
        if (pullCrm) crmWritesDone(box, t)
        sched.recordPoll(box.id, { at: t, changes, crmChanges, requests })
      },
    })
    const uncharged = { conflicts, referenceConflicts }
    for (const box of boxList) {
      const calls = { crm: box.crmAdapter.calls, mbx: box.mbxAdapter.calls }
      await initialSync(() => box.pair.runCycle())
      box.crmAdapter.calls = calls.crm
      box.mbxAdapter.calls = calls.mbx
      settleReference(box)
      box.pending = box.pending.filter((p) => !propagated(box, p))
    }
    ;({ conflicts, referenceConflicts } = uncharged)
  }

  await drive<{ c: Completion; syncedAt: number }>({
    sched,
    policy: options.policy,
    endMs,
    onProgress: options.onProgress,
    setNow: (t) => void (now = t),
    nextEventAt: eventsBefore(Infinity),
    applyEvent: () => apply(workload.events[ei++]!),
    notifications,
    onNotification,
    dispatch: async (d, t, finish) => {
      const c = await runCycle(boxes.get(d.mailboxId)!, d.pullCrm)
      callsPerHour[Math.min(hours - 1, Math.floor(t / HOUR))]! += c.requests
      finish(t + Math.max(1, c.requests * options.requestLatencyMs), { c, syncedAt: t })
    },
    complete: ({ c, syncedAt }, t) => complete(c, t, syncedAt),
  })

  // end of run: drain what the policy left behind (not charged), then compare both sides with the reference
  let unresolved = 0
  for (const box of boxes.values()) unresolved += box.pending.filter((p) => p.measured).length
  let lostUpdates = 0
  let duplicates = 0
  let converged = true
  const note = (text: string) => {
    if (problems.length < 20) problems.push(text)
  }
  now = endMs + MIN
  for (const box of boxes.values()) {
    await drainPair({
      runCycle: () => box.pair.runCycle(),
      busy: () => box.dirty.size > 0 || box.pending.length > 0,
      onClean: () => {
        settleReference(box)
        box.pending = box.pending.filter((p) => !propagated(box, p))
      },
      wait: (ms) => void (now += ms),
    })
    const accounted = { crm: new Set<string>(), mailbox: new Set<string>() }
    for (const [key, item] of box.items) {
      const at = { crm: nativeOn(box, item, 'crm'), mailbox: nativeOn(box, item, 'mailbox') }
      for (const side of SIDES) {
        const native = at[side]
        if (native !== undefined) accounted[side].add(native)
        if (item.deleted || !item.present[side]) {
          if (native === undefined) continue
          if (item.deleted) lostUpdates++ // a delete that did not happen
          else duplicates++ // a copy the merge should not have made (e.g. an untracked e-mail in the CRM)
          converged = false
          note(`${box.id}/${key}: ${item.deleted ? 'deleted by the workload' : 'expected only on ' + (side === 'crm' ? 'mailbox' : 'crm')} but live on ${side}`)
          continue
        }
        if (native === undefined) {
          lostUpdates++
          converged = false
          note(`${box.id}/${key}: missing on ${side}`)
          continue
        }
        const fields = remoteOf(box, side).get(native)!.fields
        for (const [name, value] of Object.entries(item.sides[side])) {
          if (!jsonEqual(fields[name] ?? null, value ?? null)) {
            lostUpdates++
            note(`${box.id}/${key}.${name}: ${side} has ${JSON.stringify(fields[name])}, the reference expects ${JSON.stringify(value)}`)
          }
        }
      }
      if (!item.deleted && at.crm !== undefined && at.mailbox !== undefined) {
        // two-way fields agree on both sides (but for conflicts kept for the user)
        const a = box.crm.get(at.crm)!.fields
        const b = box.mbx.get(at.mailbox)!.fields
        for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) {
          if (model.direction(item.kind, name) === 'both' && !item.kept?.has(name) && !jsonEqual(a[name] ?? null, b[name] ?? null)) converged = false
        }
      }
    }
    for (const [side, remote] of [['crm', box.crm], ['mailbox', box.mbx]] as const) {
      for (const record of remote.liveRecords()) {
        if (accounted[side].has(record.nativeId)) continue
        duplicates++
        converged = false
        note(`${box.id}: ${side} record ${record.nativeId} (${String(record.fields.subject ?? record.fields.surname ?? '')}) matches no workload item`)
      }
    }
    if (box.pending.length > 0) converged = false
  }
  if (lostUpdates > 0) converged = false
  options.onFinalState?.([...boxes.values()].map((box) => ({ mailbox: box.id, crm: canonicalRecords(box.crm.liveRecords().map((r) => r.fields)), mailboxSide: canonicalRecords(box.mbx.liveRecords().map((r) => r.fields)) })))
  await store.close()
  if (dir) await rm(dir, { recursive: true, force: true })

  let graphCalls = warmupCalls.graph
  let crmCalls = warmupCalls.crm
  let tokenRefreshes = 0
  let throttled = 0
  for (const box of boxes.values()) {
    graphCalls += box.mbxAdapter.calls
    crmCalls += box.crmAdapter.calls
    tokenRefreshes += box.crmAdapter.tokenRefreshes + box.mbxAdapter.tokenRefreshes
    throttled += box.crmAdapter.throttled + box.mbxAdapter.throttled
  }
  return assemblePolicyRun({
    sched,
    boxes: [...boxes.values()].map((b) => ({ id: b.id, changes: b.changes, measured: b.measured, stalenessSum: b.stalenessSum, pendingCount: b.pending.length })),
    graphCalls,
    crmCalls,
    tokenRefreshes,
    throttled,
    cycles,
    conflicts,
    referenceConflicts,
    lostUpdates,
    duplicates,
    converged,
    unresolved,
    skippedEvents,
    notificationsSent,
    notificationsDropped,
    staleness,
    callsPerHour,
    problems,
  })
}
