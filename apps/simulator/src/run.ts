import { type MergeStrategy, jsonEqual } from '@concord/engine'
import type { PolicyName, Scheduler } from '@concord/scheduler'
import { type CycleOutcome, cycleOptions, drainPair, drive, measureCycle, pollResultOf } from './driver.js'
import type { ConflictRule, MergeModel } from './reference-model.js'
import type { ServiceLimit } from './sim-remote.js'
import { type BlockPlan, type Box, type Pending, type RunPrefixes, SIDES, SimWorld, type WorldOptions } from './sim-world.js'
import { type FinalState, type MailboxShard, type PolicyRun, MAX_PROBLEMS, MailboxProblems, NONE_PROPAGATED, assemblePolicyRun, chargePropagated, canonicalRecords, createRunScheduler } from './policy-run.js'
import { STUB_MAILBOX_INFO, runStubPolicy, stubCrmRequests, stubGraphRequests } from './run-stub.js'
import { SimulatorError } from './errors.js'
import { TimedHeap } from './heap.js'
import { type Workload, type WorkloadEvent, HOUR, MIN, eventCount } from './workload.js'

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
  /** Set when `trueRate` and `trueCrmRate` are constant on steps of this length from 0 (`trueRateFunction`'s: `TRUE_RATE_STEP_MS`); the oracle then asks them less often. */
  trueRateStepMs?: number | undefined
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
  /** Share the start every policy builds alike (initial sync, warm-up data, its sync) with the other runs of this process. */
  prefixes?: RunPrefixes | undefined
  /** With `prefixes`: build the start in these blocks, reading those other processes exported (see `RunPrefixes`). */
  blocks?: BlockPlan | undefined
  /**
   * Run only the mailboxes `from` ≤ index < `to` (a shard; see `mergeShardRuns`): their events, syncs, drain and
   * comparison. The world-level counts the start carries (skipped events, conflicts) go to the shard that holds the
   * first mailbox of the start (of its block, with `blocks`).
   */
  shard?: MailboxShard | undefined
}

export type { MailboxStat, PolicyRun } from './policy-run.js'
export { percentile } from './policy-run.js'

/** A modelled warm-up sync (no engine ran it): what the scheduler is told when it completes. */
interface WarmSync {
  box: Box
  changes: number
  crmChanges: number
  pullCrm: boolean
  requests: number
}

interface Completion extends CycleOutcome {
  box: Box
  /** The pending changes the cycle propagated, judged on the state it left (see `chargePropagated`). */
  propagated: ReadonlySet<Pending>
}

/** Runs one scheduling policy over the workload in virtual time and measures it. */
export async function runPolicy(options: RunOptions): Promise<PolicyRun> {
  if (options.engine === 'stub') return runStubPolicy(options)
  const { workload } = options
  if (workload.events.length < eventCount(workload)) throw new SimulatorError('Internal', 'the real engine replays event objects: generate the workload with eventsAs: objects')
  const model: MergeModel = options.model ?? { direction: () => 'both', tracking: false, rule: options.conflictRule }
  const worldOptions: WorldOptions = { workload, seed: options.seed, store: options.store, notifications: options.notifications, notificationLoss: options.notificationLoss, warmupMs: options.warmupMs, merge: options.merge, model, limits: options.limits }
  // the initial data, the warm-up's data and their syncs are the same for every policy (see SimWorld.prefix)
  const world = options.prefixes ? await options.prefixes.fork(worldOptions, [workload, options.merge, options.model, options.conflictRule], options.shard, options.blocks) : await SimWorld.prefix(worldOptions)
  // (a part of a run reports the start's counts only when it holds the first mailbox: the parts add up to the whole run)
  if (!options.prefixes && options.shard && options.shard.from > 0) world.clearStartCounts()
  try {
    return await runInWorld(world, options)
  } finally {
    await world.close()
  }
}

/** The policy's part of a run: the warm-up replayed to its scheduler, the measured days, the drain and the comparison. */
async function runInWorld(world: SimWorld, options: RunOptions): Promise<PolicyRun> {
  const { workload, model } = world.options
  const { byId, notifications } = world
  const shard = options.shard
  // (a world forked for a shard may hold only the shard's mailboxes)
  const boxes = shard ? world.boxes.filter((b) => b.index >= shard.from && b.index < shard.to) : world.boxes
  const inShard = (e: WorkloadEvent) => {
    const i = byId.get(e.mailbox)?.index ?? -1
    return i >= shard!.from && i < shard!.to
  }
  const events = workload.events
  const endMs = workload.durationMs + options.drainMs
  const hours = Math.ceil(endMs / HOUR)
  const callsPerHour = new Array<number>(hours).fill(0)
  const staleness: number[] = []
  const problems = new MailboxProblems()
  let cycles = 0
  /** Requests of the warm-up's modelled syncs (no engine ran them). */
  const warmupCalls = { graph: 0, crm: 0 }

  const sched: Scheduler = createRunScheduler(options)
  for (const box of boxes) sched.addMailbox(box.id, 0, STUB_MAILBOX_INFO)

  const runCycle = async (box: Box, pullCrm: boolean): Promise<Completion> => {
    cycles++
    const outcome = await measureCycle(() => box.pair.runCycle(undefined, cycleOptions(pullCrm)), () => box.crmAdapter.calls + box.mbxAdapter.calls, (text) => problems.note(box.index, `${box.id}: ${text}`))
    if (!outcome.clean) return { box, ...outcome, propagated: NONE_PROPAGATED }
    world.settle(box, outcome.crmPulled)
    return { box, ...outcome, propagated: box.pending.length === 0 ? NONE_PROPAGATED : new Set(box.pending.filter((p) => world.propagated(box, p))) }
  }

  /** A sync pushed the CRM writes the scheduler was told about. */
  const crmWritesDone = (box: Box, at: number) => {
    if (box.crmPending === 0) return
    box.crmPending = 0
    sched.setPendingCrmWrites(box.id, 0, at)
  }

  const complete = (c: Completion, at: number) => {
    const box = c.box
    chargePropagated(box, c.propagated, at, staleness)
    if (c.clean && c.crmPulled) crmWritesDone(box, at)
    sched.recordPoll(box.id, pollResultOf(c, at))
  }

  const onNotification = (v: number, t: number) => {
    const box = world.boxes[v >> 1]!
    if (v & 1) sched.setPendingCrmWrites(box.id, ++box.crmPending, t)
    else sched.recordNotification(box.id, t)
  }

  /** A sync in flight: a modelled one of the warm-up, or an engine cycle of the measured days. */
  type InFlight = { warm: WarmSync } | { c: Completion }
  /** Warm-up syncs still running when the measured days begin complete among their events. */
  const inFlight = new TimedHeap<InFlight>()
  const completeWarm = ({ box, changes, crmChanges, pullCrm, requests }: WarmSync, t: number) => {
    if (pullCrm) crmWritesDone(box, t)
    sched.recordPoll(box.id, { at: t, changes, crmChanges, requests })
  }
  const completeInFlight = (f: InFlight, t: number) => ('warm' in f ? completeWarm(f.warm, t) : complete(f.c, t))

  if (world.warmEnd > world.warmStart) {
    // Warm-up (not measured): the scheduler learns from the warm-up's changes, which the world already
    // holds, with the stub engine's request model (one delta call per side, a page per 50 changes, a push
    // per side with writes) instead of engine cycles. Only the measured days pay for the real engine.
    let w = world.warmStart
    await drive<InFlight>({
      sched,
      policy: options.policy,
      endMs: options.warmupMs,
      inFlight,
      handOver: true,
      onProgress: options.onProgress,
      setNow: () => {},
      nextEventAt: () => {
        if (shard) while (w < world.warmEnd && !inShard(events[w]!)) w++
        return w < world.warmEnd ? events[w]!.t : Infinity
      },
      applyEvent: () => {
        const e = events[w]!
        if (world.warmCounted[w++ - world.warmStart]) {
          const box = byId.get(e.mailbox)!
          box.warmChanges++
          if (e.side === 'crm') box.warmCrmChanges++
        }
      },
      notifications,
      onNotification,
      dispatch: (d, t, finish) => {
        const box = byId.get(d.mailboxId)!
        cycles++
        const crm = d.pullCrm ? box.warmCrmChanges : 0
        const mbx = box.warmChanges - box.warmCrmChanges
        const graph = stubGraphRequests(mbx, crm)
        const dataverse = stubCrmRequests(mbx, crm, d.pullCrm)
        warmupCalls.graph += graph
        warmupCalls.crm += dataverse
        callsPerHour[Math.min(hours - 1, Math.floor(t / HOUR))]! += graph + dataverse
        finish(t + Math.max(1, (graph + dataverse) * options.requestLatencyMs), { warm: { box, changes: mbx + crm, crmChanges: crm, pullCrm: d.pullCrm, requests: graph + dataverse } })
        box.warmChanges -= mbx + crm
        box.warmCrmChanges -= crm
      },
      complete: completeInFlight,
    })
  }

  await drive<InFlight>({
    sched,
    policy: options.policy,
    endMs,
    inFlight,
    onProgress: options.onProgress,
    setNow: (t) => void (world.now = t),
    nextEventAt: () => {
      if (shard) while (world.next < events.length && !inShard(events[world.next]!)) world.next++
      return world.next < events.length ? events[world.next]!.t : Infinity
    },
    applyEvent: () => void world.apply(events[world.next++]!),
    notifications,
    onNotification,
    dispatch: async (d, t, finish) => {
      const c = await runCycle(byId.get(d.mailboxId)!, d.pullCrm)
      callsPerHour[Math.min(hours - 1, Math.floor(t / HOUR))]! += c.requests
      finish(t + Math.max(1, c.requests * options.requestLatencyMs), { c })
    },
    complete: completeInFlight,
  })

  // end of run: drain what the policy left behind (not charged), then compare both sides with the reference
  let unresolved = 0
  for (const box of boxes) unresolved += box.pending.filter((p) => p.measured).length
  let lostUpdates = 0
  let duplicates = 0
  let converged = true
  world.now = endMs + MIN
  for (const box of boxes) {
    const note = (text: string) => problems.note(box.index, text)
    await drainPair({
      runCycle: () => box.pair.runCycle(),
      busy: () => box.dirty.size > 0 || box.pending.length > 0,
      onClean: () => world.settleSynced(box),
      wait: (ms) => void (world.now += ms),
    })
    const accounted = { crm: new Set<string>(), mailbox: new Set<string>() }
    for (const [key, item] of box.items) {
      const at = { crm: world.nativeOn(box, item, 'crm'), mailbox: world.nativeOn(box, item, 'mailbox') }
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
        const fields = world.remoteOf(box, side).get(native)!.fields
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
  options.onFinalState?.(boxes.map((box) => ({ mailbox: box.id, crm: canonicalRecords(box.crm.liveRecords().map((r) => r.fields)), mailboxSide: canonicalRecords(box.mbx.liveRecords().map((r) => r.fields)) })))

  return worldRun(world, boxes, sched, warmupCalls, { cycles, unresolved, lostUpdates, duplicates, converged }, staleness, callsPerHour, problems.first(MAX_PROBLEMS))
}

/**
 * The run's `PolicyRun`, out of line on purpose: when `runInWorld`'s code embeds this object literal's
 * boilerplate and a later run in the process meets it with a map deprecated since, V8 drops every compile
 * of `runInWorld` ("maps became deprecated during optimization") and the function stays unoptimised.
 */
function worldRun(
  world: SimWorld,
  boxes: readonly Box[],
  sched: Scheduler,
  warmupCalls: { graph: number; crm: number },
  outcome: { cycles: number; unresolved: number; lostUpdates: number; duplicates: number; converged: boolean },
  staleness: number[],
  callsPerHour: number[],
  problems: string[],
): PolicyRun {
  let graphCalls = warmupCalls.graph
  let crmCalls = warmupCalls.crm
  let tokenRefreshes = 0
  let throttled = 0
  for (const box of boxes) {
    graphCalls += box.mbxAdapter.calls
    crmCalls += box.crmAdapter.calls
    tokenRefreshes += box.crmAdapter.tokenRefreshes + box.mbxAdapter.tokenRefreshes
    throttled += box.crmAdapter.throttled + box.mbxAdapter.throttled
  }
  return assemblePolicyRun({
    sched,
    boxes: boxes.map((b) => ({ id: b.id, changes: b.changes, measured: b.measured, stalenessSum: b.stalenessSum, pendingCount: b.pending.length })),
    graphCalls,
    crmCalls,
    tokenRefreshes,
    throttled,
    ...outcome,
    conflicts: world.conflicts,
    referenceConflicts: world.referenceConflicts,
    skippedEvents: world.skippedEvents,
    notificationsSent: world.notificationsSent,
    notificationsDropped: world.notificationsDropped,
    staleness,
    callsPerHour,
    problems,
  })
}
