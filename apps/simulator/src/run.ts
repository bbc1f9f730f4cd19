import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ConcordId, type CycleReport, type Fields, type MergeStrategy, type NativeId, type ReplicaStore, SyncPair, asPairId, asReplicaId, concordIdFor, jsonEqual, openMemoryStore } from '@concord/engine'
import { openLevelStore } from '@concord/engine/node'
import { type PolicyName, type Scheduler, createScheduler } from '@concord/scheduler'
import { TimedHeap } from './heap.js'
import { type ConflictRule, settleReference as foldIntoReference } from './reference-model.js'
import { mixSeed, mulberry32, normal } from './rng.js'
import { DATAVERSE_LIMIT, GRAPH_LIMIT, type ServiceLimit, SimAdapter, SimRemote } from './sim-remote.js'
import { type FinalState, canonicalRecords } from './wire.js'
import { type Workload, type WorkloadEvent, type WorkloadSide, HOUR, MIN, SIM_EPOCH } from './workload.js'

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
  merge: () => MergeStrategy
  conflictRule: ConflictRule
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

export interface MailboxStat {
  mailbox: string
  changes: number
  measured: number
  meanStalenessSec: number
}

export interface PolicyRun {
  apiCalls: number
  /** Requests the scheduler charged (its budget unit: max(reserved, actual) per sync). */
  schedulerRequests: number
  graphCalls: number
  crmCalls: number
  tokenRefreshes: number
  cycles: number
  throttled: number
  conflicts: number | null
  lostUpdates: number | null
  duplicates: number | null
  converged: boolean | null
  changes: number
  measuredChanges: number
  unresolved: number
  skippedEvents: number
  notificationsSent: number
  notificationsDropped: number
  staleness: Float64Array
  callsPerHour: number[]
  perMailbox: MailboxStat[]
  problems: string[]
  referenceConflicts: number
  /** The scheduler's own counters at the end of the run. */
  schedulerStats: ReturnType<Scheduler['stats']>
}

interface Pending {
  t: number
  item: string
  side: WorkloadSide
  op: WorkloadEvent['op']
  fields: string[]
  measured: boolean
}

interface ItemState {
  kind: WorkloadEvent['kind']
  origin: WorkloadSide
  native: NativeId
  /** Concord id for items the engine never stamped (origin records). */
  expected: { deleted: boolean; fields: Fields }
  unsynced: { crm: Map<string, { value: unknown; t: number }>; mailbox: Map<string, { value: unknown; t: number }>; deletedBy?: WorkloadSide | undefined; created: boolean }
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
  // real engine
  crm?: SimRemote
  mbx?: SimRemote
  crmAdapter?: SimAdapter
  mbxAdapter?: SimAdapter
  pair?: SyncPair
}

interface Completion {
  box: Box
  changes: number
  requests: number
  throttledMs?: number | undefined
  error: boolean
  /** Pulled, merged and pushed everything (no throttle, no deferred merge, no rejected push). */
  clean: boolean
}

/** Runs one scheduling policy over the workload in virtual time and measures it. */
export async function runPolicy(options: RunOptions): Promise<PolicyRun> {
  const { workload } = options
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
  const stubCalls = { graph: 0, crm: 0 }

  const sched: Scheduler = createScheduler({
    ...options.scheduler,
    policy: options.policy,
    ...(options.budget ? { budget: options.budget } : {}),
    ...(options.policy === 'oracle' ? { oracle: { rate: options.trueRate } } : {}),
    random: mulberry32(mixSeed(options.seed, 0xabc)),
  })

  let store: ReplicaStore | undefined
  let dir: string | undefined
  const crmReplica = (box: Box) => asReplicaId(`crm-${box.id}`)
  const mbxReplica = (box: Box) => asReplicaId(`mbx-${box.id}`)
  if (options.engine === 'real') {
    if (options.store === 'leveldb') {
      dir = await mkdtemp(join(tmpdir(), 'concord-sim-'))
      store = (await openLevelStore(dir, { now: clock })).store
    } else store = (await openMemoryStore({ now: clock })).store
  }

  const notifications = new TimedHeap<{ box: Box; crm: boolean }>()
  const boxes = new Map<string, Box>()
  for (const [index, id] of workload.mailboxes.entries()) {
    const box: Box = { id, index, items: new Map(), dirty: new Set(), pending: [], crmPending: 0, stalenessSum: 0, measured: 0, changes: 0 }
    if (store) {
      const faults = { replayPage: 0.02, reorderAndDuplicate: 0.02, expireCursor: 0.001 }
      box.crm = new SimRemote(`crm-${id}`, clock)
      box.mbx = new SimRemote(`mbx-${id}`, clock)
      box.crmAdapter = new SimAdapter(crmReplica(box), box.crm, clock, options.limits?.dataverse ?? DATAVERSE_LIMIT, { faults, seed: mixSeed(options.seed, index * 2 + 1) })
      box.mbxAdapter = new SimAdapter(mbxReplica(box), box.mbx, clock, options.limits?.graph ?? GRAPH_LIMIT, { faults, seed: mixSeed(options.seed, index * 2 + 2) })
      box.pair = new SyncPair({
        pairId: asPairId(`pair-${id}`),
        store,
        crm: box.crmAdapter,
        mailbox: box.mbxAdapter,
        merge: options.merge(),
        pageLimit: 50,
        now: clock,
        onDecision: (_id, decision) => {
          for (const f of decision.fields) if (f.outcome.startsWith('conflict') || f.outcome === 'merged') conflicts++
        },
      })
    }
    boxes.set(id, box)
  }

  const remoteOf = (box: Box, side: WorkloadSide) => (side === 'crm' ? box.crm! : box.mbx!)
  const replicaOf = (box: Box, side: WorkloadSide) => (side === 'crm' ? crmReplica(box) : mbxReplica(box))
  /** The Concord id of an item: the origin record's stamp, or the id the engine derives from the origin native id. */
  const concordOf = (box: Box, item: ItemState): ConcordId => remoteOf(box, item.origin).records.get(item.native)?.concordId ?? concordIdFor(replicaOf(box, item.origin), item.native)
  const nativeOn = (box: Box, item: ItemState, side: WorkloadSide): NativeId | undefined => {
    if (side === item.origin) return remoteOf(box, side).get(item.native) ? item.native : undefined
    return remoteOf(box, side).findByConcordId(concordOf(box, item))?.nativeId
  }

  const apply = (e: WorkloadEvent) => {
    const box = boxes.get(e.mailbox)!
    if (!store) {
      // stub engine: change bookkeeping only (no items, no reference model)
      if (e.initial) return
      box.changes++
      box.pending.push({ t: now, item: e.item, side: e.side, op: e.op, fields: [], measured: now >= options.warmupMs && now < workload.durationMs })
      if (options.notifications) notify(box, e.side)
      return
    }
    let item = box.items.get(e.item)
    if (e.op === 'create') {
      const native = store ? remoteOf(box, e.side).create(e.kind, e.fields ?? {}) : (`${e.side}-${e.item}` as NativeId)
      item = { kind: e.kind, origin: e.side, native, expected: { deleted: false, fields: {} }, unsynced: { crm: new Map(), mailbox: new Map(), created: true } }
      box.items.set(e.item, item)
    } else {
      if (!item) return void skippedEvents++
      if (store) {
        const native = nativeOn(box, item, e.side)
        if (native === undefined) return void skippedEvents++ // not (yet) on this side: the person cannot edit it
        const remote = remoteOf(box, e.side)
        if (e.op === 'update') remote.update(native, e.fields ?? {})
        else if (e.op === 'delete') remote.remove(native)
        else {
          const moved = remote.move(native)
          if (item.origin === e.side) item.native = moved
        }
      } else if (item.expected.deleted && item.unsynced.deletedBy === undefined && !item.unsynced.created) return void skippedEvents++
    }
    // reference model: what each side wrote since the last clean sync
    if (e.op === 'delete') item.unsynced.deletedBy = e.side
    else if (e.fields) for (const [name, value] of Object.entries(e.fields)) item.unsynced[e.side].set(name, { value, t: now })
    box.dirty.add(e.item)
    if (e.initial) return
    box.changes++
    box.pending.push({ t: now, item: e.item, side: e.side, op: e.op, fields: e.fields ? Object.keys(e.fields) : [], measured: now >= options.warmupMs && now < workload.durationMs })
    if (options.notifications) notify(box, e.side)
  }

  function notify(box: Box, side: WorkloadSide): void {
    if (rng() < options.notificationLoss) notificationsDropped++
    else {
      // Graph: mostly under a minute, never over 3 minutes (performance.md §3b)
      const latency = Math.min(3 * MIN, 15_000 * Math.exp(0.9 * normal(rng)))
      notifications.push(now + latency, { box, crm: side === 'crm' })
      notificationsSent++
    }
  }

  const settleReference = (box: Box) => {
    referenceConflicts += foldIntoReference(box.items, box.dirty, options.conflictRule)
  }

  /** True when a change is visible on both sides (created/linked, equal fields, or gone). */
  const propagated = (box: Box, p: Pending): boolean => {
    const item = box.items.get(p.item)
    if (!item) return false
    if (!store) return true
    const crm = nativeOn(box, item, 'crm')
    const mbx = nativeOn(box, item, 'mailbox')
    if (item.expected.deleted) return crm === undefined && mbx === undefined
    if (crm === undefined || mbx === undefined) return false
    const a = box.crm!.get(crm)!.fields
    const b = box.mbx!.get(mbx)!.fields
    for (const f of p.fields) if (!jsonEqual(a[f] ?? null, b[f] ?? null)) return false
    return true
  }

  const runCycle = async (box: Box): Promise<Completion> => {
    cycles++
    if (!store) {
      // stub engine: the kernel's bookkeeping only — one delta call per side plus a page per 50 changes and a push per side with writes
      let crm = 0
      for (const p of box.pending) if (p.side === 'crm') crm++
      const mbx = box.pending.length - crm
      const graph = 1 + Math.floor(mbx / 50) + (crm > 0 ? 1 : 0)
      const dataverse = 1 + Math.floor(crm / 50) + (mbx > 0 ? 1 : 0)
      stubCalls.graph += graph
      stubCalls.crm += dataverse
      return { box, changes: box.pending.length, requests: graph + dataverse, error: false, clean: true }
    }
    const before = box.crmAdapter!.calls + box.mbxAdapter!.calls
    let report: CycleReport | undefined
    let error = false
    try {
      report = await box.pair!.runCycle()
    } catch (err) {
      error = true
      if (problems.length < 20) problems.push(`${box.id}: cycle failed: ${(err as Error).message}`)
    }
    const requests = box.crmAdapter!.calls + box.mbxAdapter!.calls - before
    const clean = report !== undefined && report.throttledMs === undefined && !report.mergeDeferred && report.rejected.crm + report.rejected.mailbox === 0
    if (clean) settleReference(box)
    return { box, changes: report ? report.logged.crm + report.logged.mailbox : 0, requests, throttledMs: report?.throttledMs, error, clean }
  }

  const complete = (c: Completion, at: number, syncedAt: number) => {
    const box = c.box
    if (!store) {
      // pending is in time order: everything up to the sync time is now on both sides
      let k = 0
      for (; k < box.pending.length && box.pending[k]!.t <= syncedAt; k++) {
        const p = box.pending[k]!
        if (p.measured) {
          const s = (at - p.t) / 1000
          staleness.push(s)
          box.stalenessSum += s
          box.measured++
        }
      }
      if (k > 0) box.pending.splice(0, k)
      if (box.crmPending > 0) {
        box.crmPending = 0
        sched.setPendingCrmWrites(box.id, 0, at)
      }
      sched.recordPoll(box.id, { at, changes: c.changes, requests: c.requests })
      return
    }
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
    if (box.crmPending > 0 && c.clean) {
      box.crmPending = 0
      sched.setPendingCrmWrites(box.id, 0, at)
    }
    sched.recordPoll(box.id, { at, changes: c.changes, requests: c.requests, throttled: c.throttledMs !== undefined, ...(c.throttledMs !== undefined ? { retryAfterMs: c.throttledMs } : {}), error: c.error })
  }

  // initial data and the initial sync (not measured, not charged to the policy)
  let ei = 0
  while (ei < workload.events.length && workload.events[ei]!.initial) apply(workload.events[ei++]!)
  for (const box of boxes.values()) {
    if (box.pair) {
      for (let i = 0; i < 10; i++) {
        const r = await box.pair.runCycle()
        if (r.logged.crm + r.logged.mailbox + r.merged + r.pushed.crm + r.pushed.mailbox === 0 && !r.mergeDeferred) break
      }
      box.crmAdapter!.calls = 0
      box.mbxAdapter!.calls = 0
    }
    settleReference(box)
    sched.addMailbox(box.id, 0, { requestsPerSync: 2 })
  }

  const completions = new TimedHeap<{ c: Completion; syncedAt: number }>()
  let lastProgress = 0
  for (;;) {
    const tW = ei < workload.events.length ? workload.events[ei]!.t : Infinity
    const tC = completions.peekTime()
    const tN = notifications.peekTime()
    const tS = sched.nextWakeAt() ?? Infinity
    const t = Math.min(tW, tC, tN, tS)
    if (t > endMs || t === Infinity) break
    now = t
    if (options.onProgress && now - lastProgress >= HOUR) {
      lastProgress = now
      options.onProgress(now)
    }
    if (tC === t) {
      const { c, syncedAt } = completions.pop()!
      complete(c, t, syncedAt)
    } else if (tW === t) {
      apply(workload.events[ei++]!)
    } else if (tN === t) {
      const { box, crm } = notifications.pop()!
      if (crm) sched.setPendingCrmWrites(box.id, ++box.crmPending, t)
      else sched.recordNotification(box.id, t)
    } else {
      const due = sched.due(t)
      if (due.length === 0 && (sched.nextWakeAt() ?? Infinity) <= t) throw new Error(`scheduler ${options.policy} reports work due at ${t} but dispatches nothing`)
      for (const d of due) {
        const box = boxes.get(d.mailboxId)!
        const c = await runCycle(box)
        callsPerHour[Math.min(hours - 1, Math.floor(t / HOUR))]! += c.requests
        completions.push(t + Math.max(1, c.requests * options.requestLatencyMs), { c, syncedAt: t })
      }
    }
  }
  while (completions.size > 0) {
    now = Math.max(now, completions.peekTime())
    const { c, syncedAt } = completions.pop()!
    complete(c, now, syncedAt)
  }

  // end of run: drain what the policy left behind (not charged), then compare both sides with the reference
  let unresolved = 0
  for (const box of boxes.values()) unresolved += box.pending.filter((p) => p.measured).length
  let lostUpdates: number | null = null
  let duplicates: number | null = null
  let converged: boolean | null = null
  if (store) {
    lostUpdates = 0
    duplicates = 0
    converged = true
    now = endMs + MIN
    for (const box of boxes.values()) {
      for (let i = 0; i < 20 && (box.dirty.size > 0 || box.pending.length > 0 || i === 0); i++) {
        let r: CycleReport | undefined
        try {
          r = await box.pair!.runCycle()
        } catch {
          now += MIN
          continue
        }
        const clean = r.throttledMs === undefined && !r.mergeDeferred && r.rejected.crm + r.rejected.mailbox === 0
        if (clean) {
          settleReference(box)
          box.pending = box.pending.filter((p) => !propagated(box, p))
          if (r.logged.crm + r.logged.mailbox + r.merged + r.pushed.crm + r.pushed.mailbox === 0) break
        }
        now += r.throttledMs ?? MIN
      }
      const accounted = { crm: new Set<string>(), mailbox: new Set<string>() }
      for (const [key, item] of box.items) {
        const crm = nativeOn(box, item, 'crm')
        const mbx = nativeOn(box, item, 'mailbox')
        if (crm !== undefined) accounted.crm.add(crm)
        if (mbx !== undefined) accounted.mailbox.add(mbx)
        if (item.expected.deleted) {
          if (crm !== undefined || mbx !== undefined) {
            lostUpdates++
            if (problems.length < 20) problems.push(`${box.id}/${key}: deleted by the workload but still live on ${crm !== undefined ? 'crm' : 'mailbox'}`)
          }
          continue
        }
        if (crm === undefined || mbx === undefined) {
          lostUpdates++
          converged = false
          if (problems.length < 20) problems.push(`${box.id}/${key}: missing on ${crm === undefined ? 'crm' : 'mailbox'}`)
          continue
        }
        const a = box.crm!.get(crm)!.fields
        const b = box.mbx!.get(mbx)!.fields
        for (const [name, value] of Object.entries(item.expected.fields)) {
          for (const [side, fields] of [['crm', a], ['mailbox', b]] as const) {
            if (!jsonEqual(fields[name] ?? null, value ?? null)) {
              lostUpdates++
              if (problems.length < 20) problems.push(`${box.id}/${key}.${name}: ${side} has ${JSON.stringify(fields[name])}, the workload's last write is ${JSON.stringify(value)}`)
            }
          }
        }
        for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) if (!jsonEqual(a[name] ?? null, b[name] ?? null)) converged = false
      }
      for (const [side, remote] of [['crm', box.crm!], ['mailbox', box.mbx!]] as const) {
        for (const record of remote.liveRecords()) {
          if (accounted[side].has(record.nativeId)) continue
          duplicates++
          converged = false
          if (problems.length < 20) problems.push(`${box.id}: ${side} record ${record.nativeId} (${String(record.fields.subject ?? record.fields.surname ?? '')}) matches no workload item`)
        }
      }
      if (box.pending.length > 0) converged = false
    }
    if (lostUpdates > 0) converged = false
    options.onFinalState?.([...boxes.values()].map((box) => ({ mailbox: box.id, crm: canonicalRecords(box.crm!.liveRecords().map((r) => r.fields)), mailboxSide: canonicalRecords(box.mbx!.liveRecords().map((r) => r.fields)) })))
    await store.close()
    if (dir) await rm(dir, { recursive: true, force: true })
  }

  let graphCalls = stubCalls.graph
  let crmCalls = stubCalls.crm
  let tokenRefreshes = 0
  let throttled = 0
  for (const box of boxes.values()) {
    if (box.crmAdapter && box.mbxAdapter) {
      graphCalls += box.mbxAdapter.calls
      crmCalls += box.crmAdapter.calls
      tokenRefreshes += box.crmAdapter.tokenRefreshes + box.mbxAdapter.tokenRefreshes
      throttled += box.crmAdapter.throttled + box.mbxAdapter.throttled
    }
  }
  const perMailbox = [...boxes.values()].map((b) => ({ mailbox: b.id, changes: b.changes, measured: b.measured, meanStalenessSec: b.measured > 0 ? b.stalenessSum / b.measured : 0 }))
  return {
    apiCalls: graphCalls + crmCalls,
    schedulerRequests: sched.stats().requests,
    schedulerStats: sched.stats(),
    graphCalls,
    crmCalls,
    tokenRefreshes,
    cycles,
    throttled,
    conflicts: store ? conflicts : null,
    referenceConflicts,
    lostUpdates,
    duplicates,
    converged,
    changes: [...boxes.values()].reduce((s, b) => s + b.changes, 0),
    measuredChanges: [...boxes.values()].reduce((s, b) => s + b.pending.length + b.measured, 0),
    unresolved,
    skippedEvents,
    notificationsSent,
    notificationsDropped,
    staleness: Float64Array.from(staleness),
    callsPerHour,
    perMailbox,
    problems,
  }
}

/** Percentile of sorted values (nearest rank). */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}
