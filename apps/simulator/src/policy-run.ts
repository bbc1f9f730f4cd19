import type { Fields } from '@concord/engine'
import { type PolicyName, type Scheduler, type TrueRateFn, createScheduler } from '@concord/scheduler'
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
