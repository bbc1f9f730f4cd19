import type { CycleOptions, CycleReport } from '@concord/engine'
import type { DueSync, PollResult, Scheduler } from '@concord/scheduler'
import { SimulatorError } from './errors.js'
import { TimedHeap } from './heap.js'
import { HOUR, MIN } from './workload.js'

/**
 * What one run plugs into the shared discrete-event loop ({@link drive}). The callbacks may be
 * synchronous (the stub kernel: the loop then never awaits) or asynchronous (the real engine, wire mode).
 */
export interface DriverSpec<C> {
  sched: Scheduler
  policy: string
  /** The run ends at this virtual time (completions in flight are still collected, unless `handOver`). */
  endMs: number
  /**
   * Syncs in flight between two drives of one scheduler (the warm-up's and the measured days'): the
   * first leaves those that end after its `endMs` here (`handOver`) instead of collecting them at once,
   * the second starts with them, so they complete in time order among its own events — the scheduler
   * must never see a time earlier than one it has seen.
   */
  inFlight?: TimedHeap<C> | undefined
  handOver?: boolean | undefined
  /** Virtual time of the next workload event, `Infinity` when none is left. */
  nextEventAt(): number
  /** Applies the next workload event (its time is the current virtual time). */
  applyEvent(): void | Promise<void>
  /** Change notifications in flight (payload: mailbox index × 2, + 1 for the CRM side). */
  notifications?: TimedHeap<number> | undefined
  onNotification?: ((payload: number, now: number) => void) | undefined
  /** Starts a due sync at `now`; `finish(at, payload)` queues its completion. */
  dispatch(sync: DueSync, now: number, finish: (at: number, payload: C) => void): void | Promise<void>
  /** A sync completes at `now`. */
  complete(payload: C, now: number): void | Promise<void>
  /** Called with every new virtual time. */
  setNow(now: number): void
  onProgress?: ((virtualMs: number) => void) | undefined
}

/**
 * The event loop of every mode: wake at the earliest of the next completion, workload event,
 * notification and scheduler wake-up (ties in that order), until `endMs`; then collect the syncs
 * still in flight (or hand them over: {@link DriverSpec.inFlight}). Returns the virtual time it ended at.
 */
export async function drive<C>(spec: DriverSpec<C>): Promise<number> {
  const { sched, endMs, notifications, onProgress } = spec
  const completions = spec.inFlight ?? new TimedHeap<C>()
  const finish = (at: number, payload: C) => completions.push(at, payload)
  let now = 0
  let lastProgress = 0
  for (;;) {
    const tW = spec.nextEventAt()
    const tC = completions.peekTime()
    const tN = notifications ? notifications.peekTime() : Infinity
    const tS = sched.nextWakeAt() ?? Infinity
    const t = Math.min(tW, tC, tN, tS)
    if (t > endMs || t === Infinity) break
    now = t
    spec.setNow(t)
    if (onProgress && now - lastProgress >= HOUR) {
      lastProgress = now
      onProgress(now)
    }
    if (tC === t) {
      const done = spec.complete(completions.pop()!, t)
      if (done) await done
    } else if (tW === t) {
      const applied = spec.applyEvent()
      if (applied) await applied
    } else if (tN === t) {
      spec.onNotification!(notifications!.pop()!, t)
    } else {
      const due = sched.due(t)
      if (due.length === 0 && (sched.nextWakeAt() ?? Infinity) <= t) throw new SimulatorError('Internal', `scheduler ${spec.policy} reports work due at ${t} but dispatches nothing`)
      for (let i = 0; i < due.length; i++) {
        const started = spec.dispatch(due[i]!, t, finish)
        if (started) await started
      }
    }
  }
  while (!spec.handOver && completions.size > 0) {
    now = Math.max(now, completions.peekTime())
    spec.setNow(now)
    const done = spec.complete(completions.pop()!, now)
    if (done) await done
  }
  return now
}

/** The cycle options of a dispatched sync: both sides, or only the mailbox side when the scheduler says the CRM side is not due. */
export const cycleOptions = (pullCrm: boolean): CycleOptions => (pullCrm ? {} : MAILBOX_ONLY)
const MAILBOX_ONLY: CycleOptions = { pull: ['mailbox'] }

/** Nothing throttled, deferred or rejected: the cycle pulled, merged and pushed everything. */
export const isCleanCycle = (r: CycleReport | undefined): r is CycleReport => r !== undefined && r.throttledMs === undefined && !r.mergeDeferred && r.rejected.crm + r.rejected.mailbox === 0

/** The cycle found and did nothing. */
export const isQuietCycle = (r: CycleReport) => r.logged.crm + r.logged.mailbox + r.merged + r.pushed.crm + r.pushed.mailbox === 0 && !r.mergeDeferred

/** The initial sync of a pair (before the run, not measured): cycles until quiet, at most 10. */
export async function initialSync(runCycle: () => Promise<CycleReport>): Promise<void> {
  for (let i = 0; i < 10; i++) if (isQuietCycle(await runCycle())) break
}

/**
 * The end-of-run drain of one pair (not charged to the policy): cycles until a clean one is quiet,
 * at most 20; `busy` says whether anything is still expected, `onClean` settles the reference
 * after each clean cycle, `wait` advances virtual time between cycles.
 */
export async function drainPair(o: { runCycle: () => Promise<CycleReport>; busy: () => boolean; onClean: () => void | Promise<void>; wait: (ms: number) => void }): Promise<void> {
  for (let i = 0; i < 20 && (i === 0 || o.busy()); i++) {
    let r: CycleReport
    try {
      r = await o.runCycle()
    } catch {
      o.wait(MIN)
      continue
    }
    if (isCleanCycle(r)) {
      await o.onClean()
      if (isQuietCycle(r)) break
    }
    o.wait(r.throttledMs ?? MIN)
  }
}

/** What one measured sync cycle did, as the scheduler and the staleness check need it. */
export interface CycleOutcome {
  /** Records logged on either side. */
  changes: number
  /** Of them, those logged on the CRM side. */
  crmChanges: number
  /** Whether the cycle pulled the CRM side (see `CycleOptions.pull`; false only when it failed or was not asked to and did not have to). */
  crmPulled: boolean
  /** Requests the cycle made (the adapters' call counters before and after). */
  requests: number
  throttledMs?: number | undefined
  error: boolean
  /** See {@link isCleanCycle}. */
  clean: boolean
}

/** What the scheduler is told of a measured cycle that ended at `at`. */
export const pollResultOf = (c: CycleOutcome, at: number): PollResult => ({
  at,
  changes: c.changes,
  crmChanges: c.crmChanges,
  crmPulled: c.crmPulled,
  requests: c.requests,
  throttled: c.throttledMs !== undefined,
  ...(c.throttledMs !== undefined ? { retryAfterMs: c.throttledMs } : {}),
  error: c.error,
})

/**
 * Runs one cycle of a pair under a policy: counts its requests, turns a failure into `error` (and a
 * line for `problems`) instead of ending the run, and says whether it was clean.
 */
export async function measureCycle(runCycle: () => Promise<CycleReport>, calls: () => number, onProblem: (text: string) => void): Promise<CycleOutcome> {
  const before = calls()
  let report: CycleReport | undefined
  let error = false
  try {
    report = await runCycle()
  } catch (err) {
    error = true
    onProblem(`cycle failed: ${(err as Error).message}`)
  }
  return { changes: report ? report.logged.crm + report.logged.mailbox : 0, crmChanges: report?.logged.crm ?? 0, crmPulled: report?.pulledSides.includes('crm') ?? false, requests: calls() - before, throttledMs: report?.throttledMs, error, clean: isCleanCycle(report) }
}
