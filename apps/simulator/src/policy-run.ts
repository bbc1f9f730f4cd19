import type { Fields } from '@concord/engine'
import { type Limits, type PolicyName, type Scheduler, type TrueRateFn, createScheduler } from '@concord/scheduler'
import { hashString, mixSeed, mulberry32 } from './rng.js'
import type { Workload } from './workload.js'

/** What a run's scheduler is made from (the scheduler-facing part of `RunOptions`). */
export interface RunSchedulerOptions {
  policy: PolicyName
  seed: number
  budget?: { requestsPerWindow: number; windowMs: number } | undefined
  trueRate: TrueRateFn
  trueCrmRate: TrueRateFn
  /** The step the true rates are constant on, when known (the oracle then asks them once per step). */
  trueRateStepMs?: number | undefined
  scheduler?: Record<string, unknown> | undefined
}

/**
 * The scheduler of one policy run, in every mode: the policy with its budget, the oracle's true rates,
 * a seeded random stream per mailbox (its stagger and jitter depend on its own events only, so policies
 * and scenarios draw the same numbers for a mailbox); `defaults` come first, so the caller's `scheduler`
 * options override them.
 */
export function createRunScheduler(o: RunSchedulerOptions, defaults: Record<string, unknown> = {}): Scheduler {
  return createScheduler({
    ...defaults,
    ...o.scheduler,
    policy: o.policy,
    ...(o.budget ? { budget: o.budget } : {}),
    ...(o.policy === 'oracle' ? { oracle: { rate: o.trueRate, crmRate: o.trueCrmRate, ...(o.trueRateStepMs !== undefined ? { rateStepMs: o.trueRateStepMs } : {}) } } : {}),
    random: mulberry32(mixSeed(o.seed, 0xabc)),
    randomFor: (mailboxId: string) => mulberry32(mixSeed(mixSeed(o.seed, 0xabd), hashString(mailboxId))),
  })
}

/** Wire mode runs at most this many mailboxes (each is a CRM user and an Exchange mailbox on the emulators). */
export const WIRE_MAX_MAILBOXES = 20
/** The item kinds wire mode replays: contacts map losslessly both ways (Dataverse `contacts` ⇄ Graph contacts). */
export const WIRE_KINDS = ['contact'] as const
/** The contact fields the workload writes; final state is compared on these. */
export const WIRE_FIELDS = ['givenName', 'surname', 'email1', 'jobTitle', 'businessPhone', 'mobilePhone', 'department'] as const

/** The part of a workload wire mode replays (contacts; no moves). Fast mode on this workload is the comparison basis. */
export function wireWorkload(workload: Workload): Workload {
  return { mailboxes: workload.mailboxes, durationMs: workload.durationMs, events: workload.events.filter((e) => (WIRE_KINDS as readonly string[]).includes(e.kind) && e.op !== 'move') }
}

/** Canonical live records of one side, projected on `WIRE_FIELDS` (nulls dropped), as sorted JSON strings. */
export function canonicalRecords(records: Iterable<Fields>): string[] {
  const out: string[] = []
  for (const fields of records) {
    const o: Record<string, unknown> = {}
    for (const name of WIRE_FIELDS) if (fields[name] !== undefined && fields[name] !== null && fields[name] !== '') o[name] = fields[name]
    out.push(JSON.stringify(o))
  }
  return out.sort()
}

/** Final state of one mailbox's pair: canonical live records per side. */
export interface FinalState {
  mailbox: string
  crm: string[]
  mailboxSide: string[]
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

/** No pending change propagated: a cycle that was not clean, or found nothing pending. */
export const NONE_PROPAGATED: ReadonlySet<never> = new Set()

/**
 * A sync's requests ended at `at`: each pending change it propagated (judged on the state it left, right after it
 * ran — a change made while its requests were in flight must not hold back one it carried) is charged its
 * staleness, if measured, and leaves `box.pending`.
 */
export function chargePropagated<P extends { t: number; measured: boolean }>(box: { pending: P[]; stalenessSum: number; measured: number }, propagated: ReadonlySet<P>, at: number, staleness: number[]): void {
  if (propagated.size === 0) return
  const keep: P[] = []
  for (const p of box.pending) {
    if (!propagated.has(p)) keep.push(p)
    else if (p.measured) {
      const s = (at - p.t) / 1000
      staleness.push(s)
      box.stalenessSum += s
      box.measured++
    }
  }
  box.pending = keep
}

/** A run's problems kept: at most this many, the first ones in mailbox order. */
export const MAX_PROBLEMS = 20

/**
 * A run's problem notes, at most {@link MAX_PROBLEMS} per mailbox, reported in mailbox order: so a run split by
 * mailbox ({@link mergeShardRuns}) reports the same ones as the whole run.
 */
export class MailboxProblems {
  private readonly byMailbox = new Map<number, string[]>()

  note(mailboxIndex: number, text: string): void {
    let list = this.byMailbox.get(mailboxIndex)
    if (!list) this.byMailbox.set(mailboxIndex, (list = []))
    if (list.length < MAX_PROBLEMS) list.push(text)
  }

  /** The first `n` in mailbox order. */
  first(n: number): string[] {
    return [...this.byMailbox].sort((a, b) => a[0] - b[0]).flatMap(([, list]) => list).slice(0, n)
  }
}

/** The mailboxes `from` ≤ index < `to` of a workload: a part of a run (see `RunOptions.shard`). */
export interface MailboxShard {
  from: number
  to: number
}

/** The sum of `f` over `items`. */
function total<T>(items: readonly T[], f: (item: T) => number): number {
  return items.reduce((n, item) => n + f(item), 0)
}

/**
 * One run from the runs of its shards (in mailbox order; they cover the workload's mailboxes once). Exact when
 * nothing coupled the shards' mailboxes: no budget, per-mailbox random streams, no notifications, and the CRM
 * limits never holding a sync back ({@link crmLimitsHeld}).
 */
export function mergeShardRuns(parts: readonly PolicyRun[]): PolicyRun {
  const sum = (f: (r: PolicyRun) => number) => total(parts, f)
  const sumOrNull = (f: (r: PolicyRun) => number | null) => (parts.some((r) => f(r) === null) ? null : sum((r) => f(r)!))
  const stats = parts.map((r) => r.schedulerStats)
  const statSum = (f: (s: PolicyRun['schedulerStats']) => number) => total(stats, f)
  const byReason: PolicyRun['schedulerStats']['byReason'] = {}
  for (const s of stats) for (const [reason, n] of Object.entries(s.byReason) as Array<[keyof typeof byReason, number]>) byReason[reason] = (byReason[reason] ?? 0) + n
  const first = stats[0]!
  const staleness = new Float64Array(sum((r) => r.staleness.length))
  let at = 0
  for (const r of parts) {
    staleness.set(r.staleness, at)
    at += r.staleness.length
  }
  return {
    apiCalls: sum((r) => r.apiCalls),
    schedulerRequests: sum((r) => r.schedulerRequests),
    graphCalls: sum((r) => r.graphCalls),
    crmCalls: sum((r) => r.crmCalls),
    tokenRefreshes: sum((r) => r.tokenRefreshes),
    cycles: sum((r) => r.cycles),
    throttled: sum((r) => r.throttled),
    conflicts: sumOrNull((r) => r.conflicts),
    lostUpdates: sumOrNull((r) => r.lostUpdates),
    duplicates: sumOrNull((r) => r.duplicates),
    converged: parts.some((r) => r.converged === null) ? null : parts.every((r) => r.converged),
    changes: sum((r) => r.changes),
    measuredChanges: sum((r) => r.measuredChanges),
    unresolved: sum((r) => r.unresolved),
    skippedEvents: sum((r) => r.skippedEvents),
    notificationsSent: sum((r) => r.notificationsSent),
    notificationsDropped: sum((r) => r.notificationsDropped),
    staleness,
    callsPerHour: parts[0]!.callsPerHour.map((_, hour) => sum((r) => r.callsPerHour[hour] ?? 0)),
    perMailbox: parts.flatMap((r) => r.perMailbox),
    problems: parts.flatMap((r) => r.problems).slice(0, MAX_PROBLEMS),
    referenceConflicts: sum((r) => r.referenceConflicts),
    schedulerStats: {
      ...first,
      mailboxes: statSum((s) => s.mailboxes),
      inFlight: statSum((s) => s.inFlight),
      crmInFlight: statSum((s) => s.crmInFlight),
      dispatched: statSum((s) => s.dispatched),
      completed: statSum((s) => s.completed),
      throttled: statSum((s) => s.throttled),
      errors: statSum((s) => s.errors),
      notifications: statSum((s) => s.notifications),
      requests: statSum((s) => s.requests),
      byReason,
      deferred: { budget: statSum((s) => s.deferred.budget), mailboxRate: statSum((s) => s.deferred.mailboxRate), crmRate: statSum((s) => s.deferred.crmRate), concurrency: statSum((s) => s.deferred.concurrency) },
      maxIntervalViolations: statSum((s) => s.maxIntervalViolations),
      maxGapMs: Math.max(...stats.map((s) => s.maxGapMs)),
      // upper bounds: the shards' peaks need not have coincided
      crmWindowPeak: statSum((s) => s.crmWindowPeak),
      crmInFlightPeak: statSum((s) => s.crmInFlightPeak),
      plans: statSum((s) => s.plans),
      budgetOverrun: statSum((s) => s.budgetOverrun),
    },
  }
}

/**
 * Whether the shards of a run may have been held back by the CRM limits of the whole run. The whole run's
 * CRM window and in-flight counts are the sums of its shards' as long as nothing was held back, so when the
 * sums of the shards' peaks fit within the limits, the whole run never met them either, and the shards
 * decided exactly as it would have.
 */
export function crmLimitsHeld(parts: readonly PolicyRun[], limits: Pick<Limits, 'crm'>): boolean {
  const window = total(parts, (r) => r.schedulerStats.crmWindowPeak)
  const inFlight = total(parts, (r) => r.schedulerStats.crmInFlightPeak)
  const deferred = parts.some((r) => r.schedulerStats.deferred.crmRate > 0 || r.schedulerStats.deferred.concurrency > 0)
  return deferred || window > limits.crm.requestsPerWindow || inFlight > limits.crm.concurrency
}

/** Percentile of sorted values (nearest rank). */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

/** What a driver (fast or wire mode) counted per mailbox. */
export interface BoxTally {
  id: string
  changes: number
  measured: number
  stalenessSum: number
  /** Changes still waiting to be seen on both sides. */
  pendingCount: number
}

/** The run-level totals a driver hands to {@link assemblePolicyRun}. */
export interface RunTotals {
  sched: Scheduler
  boxes: Iterable<BoxTally>
  graphCalls: number
  crmCalls: number
  tokenRefreshes: number
  throttled: number
  cycles: number
  conflicts: number | null
  referenceConflicts: number
  lostUpdates: number | null
  duplicates: number | null
  converged: boolean | null
  unresolved: number
  skippedEvents: number
  notificationsSent: number
  notificationsDropped: number
  staleness: ArrayLike<number>
  callsPerHour: number[]
  problems: string[]
}

/** Assembles a `PolicyRun` the same way for every driver. */
export function assemblePolicyRun(t: RunTotals): PolicyRun {
  const perMailbox: MailboxStat[] = []
  let changes = 0
  let measuredChanges = 0
  for (const b of t.boxes) {
    perMailbox.push({ mailbox: b.id, changes: b.changes, measured: b.measured, meanStalenessSec: b.measured > 0 ? b.stalenessSum / b.measured : 0 })
    changes += b.changes
    measuredChanges += b.pendingCount + b.measured
  }
  const stats = t.sched.stats()
  return {
    apiCalls: t.graphCalls + t.crmCalls,
    schedulerRequests: stats.requests,
    schedulerStats: stats,
    graphCalls: t.graphCalls,
    crmCalls: t.crmCalls,
    tokenRefreshes: t.tokenRefreshes,
    cycles: t.cycles,
    throttled: t.throttled,
    conflicts: t.conflicts,
    referenceConflicts: t.referenceConflicts,
    lostUpdates: t.lostUpdates,
    duplicates: t.duplicates,
    converged: t.converged,
    changes,
    measuredChanges,
    unresolved: t.unresolved,
    skippedEvents: t.skippedEvents,
    notificationsSent: t.notificationsSent,
    notificationsDropped: t.notificationsDropped,
    staleness: Float64Array.from(t.staleness),
    callsPerHour: t.callsPerHour,
    perMailbox,
    problems: t.problems,
  }
}
