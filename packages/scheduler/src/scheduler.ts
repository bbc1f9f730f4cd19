import {
  MailboxInfoSchema,
  SchedulerConfigSchema,
  fixedIntervalMs,
  parseOrThrow,
  type MailboxInfo,
  type MailboxInfoInput,
  type PollResult,
  type SchedulerConfig,
  type SchedulerConfigInput,
  type TrueRateFn,
} from './config.js'
import { SchedulerError } from './errors.js'
import { ExplainEvents, ExplainLog, SyncReasons, type ExplainEntry, type ExplainEvent, type SyncReason } from './explain-log.js'
import { DiurnalProfile, effectiveRate, observeRate, solveSqrtAllocation } from './estimator.js'
import { IndexedMinHeap } from './heap.js'
import { mulberry32 } from './rng.js'
import { SlidingWindow } from './sliding-window.js'
import { float64, workArray } from './work-array.js'
import { pollRate, solveTailThreshold, tailPriority, type TailIntervals, type TailSlot } from './tail-allocation.js'

/** A mailbox id as known to the scheduler. */
export type MailboxId = string & { readonly __brand: 'MailboxId' }

/** A sync the caller should start now. */
export interface DueSync {
  mailboxId: MailboxId
  /** When it was due (≤ the `now` passed to `due`). */
  at: number
  /** Why it was scheduled. */
  reason: SyncReason
  /** Graph requests reserved for it (report actuals in `recordPoll`). */
  requests: number
  /** Whether it pulls the CRM side (always, unless the mailbox has `crmPullRequests` > 0 and its CRM side is not due). */
  pullCrm: boolean
  /**
   * Dense index of the mailbox (0 ≤ slot < number of mailboxes ever live at once; reused after
   * `removeMailbox`), so a driver can keep per-mailbox state in arrays instead of a Map.
   */
  slot: number
}

/** Counters returned by {@link Scheduler.stats}. */
export interface SchedulerStats {
  policy: string
  mailboxes: number
  inFlight: number
  crmInFlight: number
  dispatched: number
  completed: number
  throttled: number
  errors: number
  notifications: number
  /** Graph requests charged (reserved + reported extra). */
  requests: number
  /** Dispatches by the reason they were scheduled for. */
  byReason: Partial<Record<SyncReason, number>>
  /** Times a due sync had to wait for a limit, by limit. */
  deferred: { budget: number; mailboxRate: number; crmRate: number; concurrency: number }
  /** adaptive/oracle: dispatches that came later than maxIntervalMs after the previous one (a limit or Retry-After forced it). */
  maxIntervalViolations: number
  /** Largest dispatch-to-dispatch gap seen for any mailbox (ms). */
  maxGapMs: number
  /** The most CRM requests the CRM rate window held (as counted, after each charge): how close `limits.crm` came. */
  crmWindowPeak: number
  /** The most CRM requests in flight at once. */
  crmInFlightPeak: number
  /** adaptive/oracle: how often the √-rate allocation was re-solved. */
  plans: number
  /** adaptive/oracle: requests of max-interval syncs dispatched although the budget window was full (the floor wins; 0 when the budget covers the floor). */
  budgetOverrun: number
  /** The global budget window, if a budget is configured. */
  budget: { limit: number; windowMs: number; usedInWindow: number } | null
  /** adaptive/oracle: the current allocation scale (polls/ms per √(changes/ms)); null before the first plan. */
  allocationScale: number | null
}

/** Per-mailbox view returned by {@link Scheduler.mailbox}. */
export interface MailboxView {
  mailboxId: MailboxId
  inFlight: boolean
  /** Next due time (null while in flight or waiting for a concurrency slot). */
  dueAt: number | null
  reason: SyncReason
  lastDispatchAt: number | null
  pendingCrmWrites: number
  /** adaptive: estimated change rate now (changes per ms; the mailbox side when the CRM side is pulled on its own schedule); null for other policies. */
  estimatedRate: number | null
  /** When the CRM side is next due to be pulled; null when every sync pulls it. */
  crmPullDueAt: number | null
}

/** The scheduler: decides when to sync which mailbox. All times are virtual milliseconds. */
export interface Scheduler {
  /** The parsed configuration (defaults applied). */
  readonly config: SchedulerConfig
  /** Register a mailbox at virtual time `at`; its first sync is staggered over one interval unless `info.firstSyncAt` is set. */
  addMailbox(id: string, at: number, info?: MailboxInfoInput): void
  /** Forget a mailbox (an in-flight sync's reservation is released; a later `recordPoll` for it throws `UnknownMailbox`). */
  removeMailbox(id: string): void
  /** Whether `id` is registered. */
  hasMailbox(id: string): boolean
  /** The dense slot of a registered mailbox (see {@link DueSync.slot}). */
  slotOf(id: string): number
  /**
   * The syncs to start at `now` (at most `maxCount`), best first. Each returned mailbox is marked in flight,
   * its requests are charged to every window, and it gets no new sync until `recordPoll` reports the end.
   * Due syncs held back by a limit are re-queued for when the limit frees (see `explain`).
   */
  due(now: number, maxCount?: number): DueSync[]
  /**
   * {@link due} for hot loops, allocation-free: starts the same syncs (at most `out.length`), writes their slots to
   * `out` best first and returns how many; `slotOf`/`DueSync.slot` map mailboxes to slots.
   */
  dueSlots(now: number, out: Int32Array): number
  /** Earliest time something is due (`null` if nothing is queued). A driver sleeps until min(this, next completion). */
  nextWakeAt(): number | null
  /** Report the end of a sync (dispatched by `due`, or external such as a manual "sync now"). */
  recordPoll(id: string, result: PollResult): void
  /**
   * {@link recordPoll} of a successful sync by slot, allocation-free: `changes` found (`crmChanges` of them on the
   * CRM side), `requests` made (charged beyond the reservation).
   */
  recordPollSlot(slot: number, at: number, changes: number, requests: number, crmChanges?: number): void
  /** Whether the sync in flight in `slot` pulls the CRM side (see {@link DueSync.pullCrm}). */
  pullsCrm(slot: number): boolean
  /** A change notification for the mailbox arrived at `at` (adaptive/oracle sync within `debounceMs`). */
  recordNotification(id: string, at: number): void
  /** {@link recordNotification} by slot. */
  recordNotificationSlot(slot: number, at: number): void
  /** The CRM has `count` writes waiting for this mailbox (an increase triggers a prompt, prioritised sync). */
  setPendingCrmWrites(id: string, count: number, at: number): void
  /** {@link setPendingCrmWrites} by slot. */
  setPendingCrmWritesSlot(slot: number, count: number, at: number): void
  /** The bounded explanation log of the mailbox, oldest first. */
  explain(id: string): ExplainEntry[]
  /** A snapshot of one mailbox's scheduling state. */
  mailbox(id: string): MailboxView
  /** Counters. */
  stats(): SchedulerStats
}

const R = Object.fromEntries(SyncReasons.map((r, i) => [r, i])) as Record<SyncReason, number>
const E = Object.fromEntries(ExplainEvents.map((e, i) => [e, i])) as Record<ExplainEvent, number>
const MIN = 60_000

type Kind = 'fixed' | 'sss' | 'adaptive' | 'oracle'

/** Offsets in a mailbox's row (see {@link Mailbox}) of its costs, copied from its info, and of the CRM side's rate estimate. */
const REQ = 16
const G_REQ = 17
const CRM_REQ = 18
const CRM_PAR = 19
const CRM_PULL = 20
const PAR = 21
/** the mailbox's change-rate estimate (its mailbox side when split), and its CRM side's */
const RATE = 24
const CRM_RATE = 41
/** Doubles per mailbox row: a multiple of 8, so rows of 64-byte-aligned storage start on a cache line. */
const ROW = 48

/**
 * Per-mailbox state: every number and flag lives in the mailbox's row of one Float64Array shared by all
 * mailboxes (the scheduler's `rows`, by handle), hottest fields first: a sync touches two or three cache
 * lines of it. As plain fields, every double would sit in a heap box of its own (V8 keeps no double
 * inline in an object), and at 10,000 mailboxes those scattered cache misses were the largest part of a
 * sync's cost (the oracle's stub run at 10,000 mailboxes: 14 % faster in rows).
 */
class Mailbox {
  /** this mailbox's row starts at f[o] */
  readonly o: number
  /** its own random stream (`randomFor`), else undefined: the scheduler's shared one */
  random: (() => number) | undefined
  constructor(
    readonly id: MailboxId,
    readonly h: number,
    info: MailboxInfo,
    public f: Float64Array,
  ) {
    this.o = h * ROW
    f.fill(0, this.o, this.o + ROW)
    this.dueAt = Infinity
    this.lastCrmAt = Number.NaN
    this.reason = R.initial
    this.lastDispatchAt = Number.NaN
    this.wE = -Infinity
    this.pullsCrm = true
    this.followUpAt = Infinity
    this.blockedUntil = -Infinity
    this.lastObsAt = Number.NaN
    this.crmDueAt = -Infinity
    this.rateStep = Number.NaN
    this.followUpReason = R.notification
    f[this.o + REQ] = info.requestsPerSync
    f[this.o + G_REQ] = info.requestsPerSync
    f[this.o + CRM_REQ] = info.crmRequestsPerSync
    f[this.o + CRM_PAR] = info.crmParallelRequests
    f[this.o + CRM_PULL] = info.crmPullRequests
    f[this.o + PAR] = info.parallelRequests
  }

  /** The rows moved to bigger storage. */
  rebind(f: Float64Array): void {
    this.f = f
  }

  get dueAt(): number { return this.f[this.o]! }
  set dueAt(v: number) { this.f[this.o] = v }
  /** the CRM side is pulled on its own schedule (crmPullRequests > 0 under adaptive/oracle) */
  get split(): boolean { return this.f[this.o + 1] !== 0 }
  set split(v: boolean) { this.f[this.o + 1] = v ? 1 : 0 }
  get pendingCrm(): number { return this.f[this.o + 2]! }
  set pendingCrm(v: number) { this.f[this.o + 2] = v }
  /** start of the last sync that pulled the CRM side */
  get lastCrmAt(): number { return this.f[this.o + 3]! }
  set lastCrmAt(v: number) { this.f[this.o + 3] = v }
  get reason(): number { return this.f[this.o + 4]! }
  set reason(v: number) { this.f[this.o + 4] = v }
  get lastDispatchAt(): number { return this.f[this.o + 5]! }
  set lastDispatchAt(v: number) { this.f[this.o + 5] = v }
  /** per-mailbox Graph window: three buckets of windowMs/2 (conservative, see windowCount) */
  get wE(): number { return this.f[this.o + 6]! }
  set wE(v: number) { this.f[this.o + 6] = v }
  get w0(): number { return this.f[this.o + 7]! }
  set w0(v: number) { this.f[this.o + 7] = v }
  get w1(): number { return this.f[this.o + 8]! }
  set w1(v: number) { this.f[this.o + 8] = v }
  get w2(): number { return this.f[this.o + 9]! }
  set w2(v: number) { this.f[this.o + 9] = v }
  get inFlight(): boolean { return this.f[this.o + 10] !== 0 }
  set inFlight(v: boolean) { this.f[this.o + 10] = v ? 1 : 0 }
  get dispatchedAt(): number { return this.f[this.o + 11]! }
  set dispatchedAt(v: number) { this.f[this.o + 11] = v }
  /** when the sync in flight was due */
  get dueWas(): number { return this.f[this.o + 12]! }
  set dueWas(v: number) { this.f[this.o + 12] = v }
  get reservedReq(): number { return this.f[this.o + 13]! }
  set reservedReq(v: number) { this.f[this.o + 13] = v }
  get reservedCrm(): number { return this.f[this.o + 14]! }
  set reservedCrm(v: number) { this.f[this.o + 14] = v }
  /** whether the sync in flight pulls the CRM side */
  get pullsCrm(): boolean { return this.f[this.o + 15] !== 0 }
  set pullsCrm(v: boolean) { this.f[this.o + 15] = v ? 1 : 0 }
  get req(): number { return this.f[this.o + REQ]! }
  /** requests of a sync that does not pull the CRM side (req when not split) */
  get gReq(): number { return this.f[this.o + G_REQ]! }
  set gReq(v: number) { this.f[this.o + G_REQ] = v }
  get crmReq(): number { return this.f[this.o + CRM_REQ]! }
  get crmPar(): number { return this.f[this.o + CRM_PAR]! }
  get crmPull(): number { return this.f[this.o + CRM_PULL]! }
  get par(): number { return this.f[this.o + PAR]! }
  get followUpAt(): number { return this.f[this.o + 22]! }
  set followUpAt(v: number) { this.f[this.o + 22] = v }
  get blockedUntil(): number { return this.f[this.o + 23]! }
  set blockedUntil(v: number) { this.f[this.o + 23] = v }
  get lastObsAt(): number { return this.f[this.o + 28]! }
  set lastObsAt(v: number) { this.f[this.o + 28] = v }
  /** adaptive: √(effective level / cost) as last folded into the scheduler's weight sum */
  get wt(): number { return this.f[this.o + 29]! }
  set wt(v: number) { this.f[this.o + 29] = v }
  /** longest sync seen (ms, capped): the floor starts the next sync this much before 12 minutes are up, so a change is applied within them */
  get maxDur(): number { return this.f[this.o + 30]! }
  set maxDur(v: number) { this.f[this.o + 30] = v }
  get idleStreak(): number { return this.f[this.o + 31]! }
  set idleStreak(v: number) { this.f[this.o + 31] = v }
  /** when the CRM side is next due */
  get crmDueAt(): number { return this.f[this.o + 32]! }
  set crmDueAt(v: number) { this.f[this.o + 32] = v }
  /** adaptive, split: √(CRM level / crmPull) */
  get wc(): number { return this.f[this.o + 33]! }
  set wc(v: number) { this.f[this.o + 33] = v }
  /** oracle with `rateStepMs`: the step the cached true rates (whole mailbox, CRM side) belong to */
  get rateStep(): number { return this.f[this.o + 34]! }
  set rateStep(v: number) { this.f[this.o + 34] = v }
  get rateAll(): number { return this.f[this.o + 35]! }
  set rateAll(v: number) { this.f[this.o + 35] = v }
  get rateCrm(): number { return this.f[this.o + 36]! }
  set rateCrm(v: number) { this.f[this.o + 36] = v }
  get throttles(): number { return this.f[this.o + 37]! }
  set throttles(v: number) { this.f[this.o + 37] = v }
  get errors(): number { return this.f[this.o + 38]! }
  set errors(v: number) { this.f[this.o + 38] = v }
  get waiting(): boolean { return this.f[this.o + 39] !== 0 }
  set waiting(v: boolean) { this.f[this.o + 39] = v ? 1 : 0 }
  get followUpReason(): number { return this.f[this.o + 40]! }
  set followUpReason(v: number) { this.f[this.o + 40] = v }
}

/**
 * Per-mailbox sliding window in three buckets of windowMs/2 held in the mailbox: every bucket overlapping
 * (now − windowMs, now] counts in full, so the count never undercounts the exact window (it may count up to
 * 1.5 windows: conservative).
 */
function windowCount(mb: Mailbox, now: number, bucketMs: number): number {
  const e = Math.floor(now / bucketMs)
  const d = e - mb.wE
  if (d !== 0) {
    if (d === 1) {
      mb.w2 = mb.w1
      mb.w1 = mb.w0
    } else if (d === 2) {
      mb.w2 = mb.w0
      mb.w1 = 0
    } else {
      mb.w2 = 0
      mb.w1 = 0
    }
    mb.w0 = 0
    mb.wE = e
  }
  return mb.w0 + mb.w1 + mb.w2
}

/** Earliest time ≥ now at which `n` more requests fit in the per-mailbox window. */
function windowNextFit(mb: Mailbox, now: number, n: number, limit: number, bucketMs: number): number {
  if (n > limit) return Infinity
  const c = windowCount(mb, now, bucketMs)
  if (c + n <= limit) return now
  if (mb.w1 + mb.w0 + n <= limit) return (mb.wE + 1) * bucketMs
  if (mb.w0 + n <= limit) return (mb.wE + 2) * bucketMs
  return (mb.wE + 3) * bucketMs
}

/**
 * Create a scheduler. `config` is validated with zod ({@link SchedulerConfigSchema}); a bad value throws
 * `SchedulerConfigError` naming the field and the value.
 */
export function createScheduler(config: SchedulerConfigInput = {}): Scheduler {
  return new SchedulerImpl(parseOrThrow(SchedulerConfigSchema, config, 'scheduler config'))
}

class SchedulerImpl implements Scheduler {
  private readonly kind: Kind
  private readonly fixedMs: number
  private readonly random: () => number
  private readonly heap = new IndexedMinHeap(1024)
  private readonly log: ExplainLog
  private readonly byId = new Map<string, Mailbox>()
  private readonly byHandle: Array<Mailbox | undefined> = []
  /** the mailboxes' rows, `ROW` doubles per handle (grown by doubling; the mailboxes are rebound) */
  private rows = new Float64Array(ROW * 64)
  private readonly freeHandles: number[] = []
  private waitingForSlot: Mailbox[] = []
  private readonly candidates: Mailbox[] = []
  private readonly planArrays: Float64Array[] = []
  private readonly tailArrays: Float64Array[] = []
  /** reused outputs of dispatchDue / dueSlots */
  private readonly started: Mailbox[] = []
  private readonly compareFn = (a: Mailbox, b: Mailbox): number => this.compare(a, b)
  private readonly budgetWin: SlidingWindow | null
  private readonly unplannedWin: SlidingWindow | null
  private readonly plannedWin: SlidingWindow | null
  /** with notifications: requests the tail plans predicted planned syncs to spend (→ tailCalibration) */
  private readonly predictedWin: SlidingWindow | null
  /** predicted requests per ms of planned syncs since tailRateSince; first tail plan at tailSince */
  private tailRate = 0
  private tailRateSince = -Infinity
  private tailSince = Infinity
  /** with notifications: when the governor last slowed a tail poll */
  private governedAt = -Infinity
  /** Σ requestsPerSync over mailboxes: budget kept free for max-interval syncs */
  private costSum = 0
  private readonly crmWin: SlidingWindow
  private crmInFlight = 0
  private inFlight = 0
  private now = -Infinity
  private readonly profile: DiurnalProfile
  private y: number | null = null
  /** adaptive: Σ cost·√(level/cost) now, and at the last plan (the allocation is rescaled by their ratio between plans) */
  private wSum = 0
  private planWSum = 0
  private planDirty = true
  private nextPlanAt = -Infinity
  private lastPlanAt = -Infinity
  private startedAt = Number.NaN
  private planBudget = 0
  /** notifications (and pending-write increases) and changes found by syncs, decayed per plan → {@link loss} */
  private notesSum = 0
  private changesSum = 0
  /** estimated share of changes no notification announces (1: notifications off) */
  private loss = 1
  /** with notifications (loss < 1): the tail rule's threshold on {@link tailPriority} (Infinity: every mailbox at the floor) */
  private tailTheta = Infinity
  /** requests reserved at dispatch (counters.requests adds the extras reported later) */
  private reservedTotal = 0
  private readonly counters = {
    dispatched: 0,
    completed: 0,
    throttled: 0,
    errors: 0,
    notifications: 0,
    requests: 0,
    maxIntervalViolations: 0,
    maxGapMs: 0,
    crmWindowPeak: 0,
    crmInFlightPeak: 0,
    plans: 0,
    budgetOverrun: 0,
  }
  private readonly byReason = new Float64Array(SyncReasons.length)
  private readonly deferred = { budget: 0, mailboxRate: 0, crmRate: 0, concurrency: 0 }
  private readonly lo: number
  private readonly hi: number
  private readonly mbBucketMs: number
  private readonly maxIntervalMs: number
  private readonly mbLimit: number
  private readonly crmConcurrency: number
  /** reason chosen by the last policyNext call (avoids allocating a tuple per sync) */
  private nextReason = 0
  /** adaptive/oracle: the reason of a poll the allocation chose */
  private readonly allocationReason: number
  /** adaptive/oracle: the allocation scale used by the last policyNext call (the CRM side's interval uses it too) */
  private scale = 0
  /** mailboxes whose CRM side is pulled on its own schedule (the plan then has a CRM item per mailbox) */
  private splitCount = 0
  /** the adaptive options with the CRM side's prior */
  private readonly crmOpts: SchedulerConfig['adaptive']
  /** oracle: `oracle.rateStepMs`, or 0 (the true rates are asked at every use) */
  private readonly rateStepMs: number
  /** the row fields dispatchDue loads ahead, summed (stored, so that the loads stay) */
  private touched = 0

  constructor(readonly config: SchedulerConfig) {
    const p = config.policy
    // literals, not `p`: the hot paths compare `kind` with literals, which is a pointer comparison only for internalized strings
    this.kind = p === 'adaptive' ? 'adaptive' : p === 'sss' ? 'sss' : p === 'oracle' ? 'oracle' : 'fixed'
    this.fixedMs = fixedIntervalMs(p) ?? 0
    this.random = config.random ?? mulberry32(1)
    this.log = new ExplainLog(config.explainCapacity, 1024)
    let budget = config.budget
    if (!budget && this.reacts()) {
      // default allocation budget: what fixed:5 reserves over a day, 288 syncs per mailbox (× its requestsPerSync)
      budget = { perMailboxRequestsPerWindow: 288, windowMs: 24 * 60 * MIN }
      this.budgetPerSync = true
    }
    this.budgetWin = budget ? new SlidingWindow(budget.requestsPerWindow ?? 0, budget.windowMs, 240) : null
    this.unplannedWin = budget ? new SlidingWindow(Infinity, budget.windowMs, 240) : null
    this.plannedWin = budget ? new SlidingWindow(Infinity, budget.windowMs, 240) : null
    this.predictedWin = budget ? new SlidingWindow(Infinity, budget.windowMs, 240) : null
    this.perMailboxBudget = budget?.perMailboxRequestsPerWindow ?? null
    this.crmWin = new SlidingWindow(config.limits.crm.requestsPerWindow, config.limits.crm.windowMs, 60)
    this.profile = new DiurnalProfile(config.adaptive)
    this.mbBucketMs = config.limits.mailbox.windowMs / 2
    this.maxIntervalMs = config.maxIntervalMs
    this.mbLimit = config.limits.mailbox.requestsPerWindow
    this.crmConcurrency = config.limits.crm.concurrency
    this.lo = 1 / config.maxIntervalMs
    this.hi = 1 / config.minIntervalMs
    this.crmOpts = { ...config.adaptive, priorChangesPerDay: config.adaptive.crmPriorChangesPerDay }
    this.allocationReason = this.kind === 'oracle' ? R['oracle-allocation'] : R['rate-allocation']
    this.rateStepMs = config.oracle?.rateStepMs ?? 0
  }
  private readonly perMailboxBudget: number | null
  /** the default budget counts syncs (× requestsPerSync), not requests */
  private budgetPerSync = false

  // ---------------------------------------------------------------- mailboxes

  addMailbox(id: string, at: number, info?: MailboxInfoInput): void {
    this.checkId(id)
    this.advance(at, 'at')
    if (this.byId.has(id)) throw new SchedulerError('DuplicateMailbox', `Mailbox ${JSON.stringify(id)} is already registered`)
    const parsed = parseOrThrow(MailboxInfoSchema, info ?? {}, `mailbox info for ${JSON.stringify(id)}`)
    if (parsed.parallelRequests > this.config.limits.mailbox.concurrency) {
      throw new SchedulerError(
        'InvalidInput',
        `mailbox info for ${JSON.stringify(id)}: parallelRequests ${parsed.parallelRequests} exceeds limits.mailbox.concurrency ${this.config.limits.mailbox.concurrency}`,
      )
    }
    if (parsed.crmParallelRequests > this.config.limits.crm.concurrency) {
      throw new SchedulerError(
        'InvalidInput',
        `mailbox info for ${JSON.stringify(id)}: crmParallelRequests ${parsed.crmParallelRequests} exceeds limits.crm.concurrency ${this.config.limits.crm.concurrency}`,
      )
    }
    if (parsed.crmPullRequests >= parsed.requestsPerSync) {
      throw new SchedulerError(
        'InvalidInput',
        `mailbox info for ${JSON.stringify(id)}: crmPullRequests ${parsed.crmPullRequests} must be less than requestsPerSync ${parsed.requestsPerSync} (a sync always pulls the mailbox side)`,
      )
    }
    const h = this.freeHandles.pop() ?? this.byHandle.length
    if ((h + 1) * ROW > this.rows.length) this.growRows()
    const mb = new Mailbox(id as MailboxId, h, parsed, this.rows)
    mb.random = this.config.randomFor?.(id)
    this.byId.set(id, mb)
    this.byHandle[h] = mb
    if (mb.crmPull > 0 && (this.kind === 'adaptive' || (this.kind === 'oracle' && this.config.oracle?.crmRate !== undefined))) {
      mb.split = true
      mb.gReq = mb.req - mb.crmPull
      this.splitCount++
    }
    if (this.kind === 'adaptive') {
      this.setWeight(mb)
      if (mb.split) this.setCrmWeight(mb)
    }
    this.costSum += mb.req
    this.log.reset(h)
    this.updateBudgetLimit()
    this.planDirty = true
    let first = parsed.firstSyncAt
    if (first === undefined) {
      const spread = this.kind === 'fixed' ? this.fixedMs : this.kind === 'sss' ? this.config.sss.typicalMs : Math.min(5 * MIN, this.config.maxIntervalMs)
      first = at + (this.config.staggerInitial ? this.draw(mb) * spread : 0)
    }
    this.schedule(mb, Math.max(first, at), R.initial, at)
  }

  /** Charges CRM requests to the CRM rate window, keeping its peak. */
  private chargeCrm(at: number, n: number): void {
    this.crmWin.add(at, n)
    const count = this.crmWin.count(at)
    if (count > this.counters.crmWindowPeak) this.counters.crmWindowPeak = count
  }

  /** A random number in [0, 1) drawn for `mb`: from its own stream when `randomFor` gave it one. */
  private draw(mb: Mailbox): number {
    return mb.random ? mb.random() : this.random()
  }

  private growRows(): void {
    const rows = new Float64Array(this.rows.length * 2)
    rows.set(this.rows)
    this.rows = rows
    for (const mb of this.byHandle) mb?.rebind(rows)
  }

  removeMailbox(id: string): void {
    const mb = this.get(id)
    if (mb.inFlight) this.release(mb)
    if (mb.waiting) this.waitingForSlot = this.waitingForSlot.filter((m) => m !== mb)
    this.heap.delete(mb.h)
    this.wSum -= mb.gReq * mb.wt + mb.crmPull * mb.wc
    if (mb.split) this.splitCount--
    this.costSum -= mb.req
    this.byId.delete(id)
    this.byHandle[mb.h] = undefined
    this.freeHandles.push(mb.h)
    this.updateBudgetLimit()
    this.planDirty = true
  }

  hasMailbox(id: string): boolean {
    return this.byId.has(id)
  }

  slotOf(id: string): number {
    return this.get(id).h
  }

  // ---------------------------------------------------------------- dispatch

  due(now: number, maxCount = Infinity): DueSync[] {
    this.advance(now, 'now')
    if (!(maxCount >= 0)) throw new SchedulerError('InvalidInput', `maxCount must be >= 0 (got ${maxCount})`)
    const n = this.dispatchDue(now, maxCount)
    const out: DueSync[] = []
    for (let i = 0; i < n; i++) {
      const mb = this.started[i] as Mailbox
      out.push({ mailboxId: mb.id, at: mb.dueWas, reason: SyncReasons[mb.reason] as SyncReason, requests: mb.reservedReq, pullCrm: mb.pullsCrm, slot: mb.h })
    }
    return out
  }

  dueSlots(now: number, out: Int32Array): number {
    this.advance(now, 'now')
    const n = this.dispatchDue(now, out.length)
    const started = this.started
    for (let i = 0; i < n; i++) out[i] = (started[i] as Mailbox).h
    return n
  }

  /**
   * Start what is due at `now` (at most `maxCount`), best first; the started mailboxes are `started[0..n)`. The
   * work arrays are reused and never shrunk (setting an array's length reallocates its backing store).
   */
  private dispatchDue(now: number, maxCount: number): number {
    this.maybePlan(now)
    const candidates = this.candidates
    let nc = 0
    const heap = this.heap
    const rows = this.rows
    let touched = 0
    while (heap.size > 0 && heap.peekKey() <= now) {
      const h = heap.pop()
      const mb = this.byHandle[h] as Mailbox
      // Load the mailbox object and its row (by handle) side by side, now: otherwise the first read of the row waits
      // for the object, then for the row — two cache misses one after the other, half of dispatchDue's time at
      // 10,000 mailboxes. (Summed and stored, so that the loads are kept.)
      touched += mb.o + rows[h * ROW + 1]!
      candidates[nc++] = mb
    }
    this.touched = touched
    if (nc > 1) this.sortCandidates(nc)
    const out = this.started
    let no = 0
    for (let ci = 0; ci < nc; ci++) {
      const mb = candidates[ci] as Mailbox
      if (no >= maxCount) {
        this.heap.set(mb.h, mb.dueAt)
        continue
      }
      const pullCrm = this.pullsCrmNow(mb, now)
      const req = pullCrm ? mb.req : mb.gReq
      const crm = mb.crmReq
      if (windowCount(mb, now, this.mbBucketMs) + req > this.mbLimit) {
        this.deferred.mailboxRate++
        this.defer(mb, windowNextFit(mb, now, req, this.mbLimit, this.mbBucketMs), R['limit-mailbox-rate'], now)
        continue
      }
      // The budget never holds back a sync at its max-interval deadline (adaptive/oracle: the floor wins; fixed/sss
      // have no floor). Every other sync leaves the floor's share of the budget free (floorReserve), so the deadline
      // syncs still fit when notifications, retries or a cold start ate the rest.
      const bw = this.budgetWin
      if (bw !== null) {
        const floor = this.reacts()
        const critical = floor && (Number.isNaN(mb.lastDispatchAt) || now >= this.floorDeadline(mb) - 1)
        const used = bw.count(now)
        if (critical) {
          if (used + req > bw.limit) this.counters.budgetOverrun += req
        } else {
          // with notifications, planned polls also leave (1 − budgetHeadroom) of the budget to notification and
          // pending-write syncs (otherwise polls planned to use the whole budget would hold them back)
          const reserve = floor ? this.floorReserve(now) : 0
          const cap = floor && this.loss < 1 && this.isPlanned(mb.reason) ? (bw.limit - reserve) * this.config.adaptive.budgetHeadroom : bw.limit - reserve
          if (used + req > cap) {
            this.deferred.budget++
            // spread the retries over one bucket so a held-back cohort does not stay synchronised
            const free = bw.nextFitAt(now, Math.min(bw.limit, req + bw.limit - cap)) + (this.draw(mb) * bw.windowMs) / 240
            this.defer(mb, floor && !Number.isNaN(mb.lastDispatchAt) ? Math.min(free, this.floorDeadline(mb)) : free, R['limit-budget'], now)
            continue
          }
        }
      }
      if (crm > 0 && !this.crmWin.fits(now, crm)) {
        this.deferred.crmRate++
        this.defer(mb, this.crmWin.nextFitAt(now, crm), R['limit-crm-rate'], now)
        continue
      }
      if (this.crmInFlight + mb.crmPar > this.crmConcurrency) {
        this.deferred.concurrency++
        mb.waiting = true
        this.waitingForSlot.push(mb)
        this.log.write(mb.h, now, E.deferred, R['limit-concurrency'], Number.NaN, Number.NaN)
        continue
      }
      // dispatch
      this.reservedTotal += req
      mb.w0 += req
      this.budgetWin?.add(now, req)
      if (crm > 0) this.chargeCrm(now, crm)
      if (this.unplannedWin && !this.isPlanned(mb.reason)) this.unplannedWin.add(now, req)
      else this.plannedWin?.add(now, req)
      this.crmInFlight += mb.crmPar
      if (this.crmInFlight > this.counters.crmInFlightPeak) this.counters.crmInFlightPeak = this.crmInFlight
      this.inFlight++
      mb.inFlight = true
      mb.reservedReq = req
      mb.reservedCrm = crm
      mb.pullsCrm = pullCrm
      mb.dispatchedAt = now
      // the floor's gap: since the last sync (and, when this sync pulls a split mailbox's CRM side, since its last CRM pull)
      const since = this.floorStart(mb, pullCrm)
      if (!Number.isNaN(since)) {
        const gap = now - since
        if (gap > this.counters.maxGapMs) this.counters.maxGapMs = gap
        if (gap > this.maxIntervalMs + 1e-6 && this.reacts()) this.counters.maxIntervalViolations++
      }
      mb.lastDispatchAt = now
      this.counters.dispatched++
      this.counters.requests += req
      this.byReason[mb.reason] = (this.byReason[mb.reason] as number) + 1
      this.log.write(mb.h, now, E.dispatched, mb.reason, Number.NaN, req)
      mb.dueWas = mb.dueAt
      out[no++] = mb
      mb.dueAt = Infinity
    }
    return no
  }

  /** Sort candidates[0..n) best first (insertion sort for the usual handful, the built-in sort beyond). */
  private sortCandidates(n: number): void {
    const c = this.candidates
    if (n > 16) {
      const sorted = c.slice(0, n).sort(this.compareFn)
      for (let i = 0; i < n; i++) c[i] = sorted[i] as Mailbox
      return
    }
    for (let i = 1; i < n; i++) {
      const x = c[i] as Mailbox
      let j = i - 1
      while (j >= 0 && this.compare(c[j] as Mailbox, x) > 0) {
        c[j + 1] = c[j] as Mailbox
        j--
      }
      c[j + 1] = x
    }
  }

  nextWakeAt(): number | null {
    return this.heap.size === 0 ? null : this.heap.peekKey()
  }

  // ---------------------------------------------------------------- observations

  recordPoll(id: string, result: PollResult): void {
    const mb = this.get(id)
    checkPollResult(result)
    const r = result
    const changes = r.changes ?? 0
    const crmChanges = r.crmChanges ?? 0
    if (crmChanges > changes) throw new SchedulerError('InvalidInput', `result.crmChanges ${crmChanges} exceeds result.changes ${changes}`)
    this.poll(mb, r.at, changes, crmChanges, r.crmPulled ?? (mb.inFlight ? mb.pullsCrm : true), r.requests, r.crmRequests, r.throttled === true, r.retryAfterMs, r.error === true)
  }

  recordPollSlot(slot: number, at: number, changes: number, requests: number, crmChanges = 0): void {
    const mb = this.atSlot(slot)
    if (badCount(changes)) throw new SchedulerError('InvalidInput', `changes must be an integer >= 0 (got ${String(changes)})`)
    if (badCount(requests)) throw new SchedulerError('InvalidInput', `requests must be an integer >= 0 (got ${String(requests)})`)
    if (badCount(crmChanges) || crmChanges > changes) throw new SchedulerError('InvalidInput', `crmChanges must be an integer in [0, changes] (got ${String(crmChanges)})`)
    this.poll(mb, at, changes, crmChanges, mb.inFlight ? mb.pullsCrm : true, requests, undefined, false, undefined, false)
  }

  pullsCrm(slot: number): boolean {
    return this.atSlot(slot).pullsCrm
  }

  private poll(mb: Mailbox, at: number, changes: number, crmChanges: number, crmPulled: boolean, requests: number | undefined, crmRequests: number | undefined, throttled: boolean, retryAfterMs: number | undefined, error: boolean): void {
    this.advance(at, 'result.at')
    let startAt: number
    if (mb.inFlight) {
      if (at < mb.dispatchedAt) throw new SchedulerError('InvalidInput', `result.at ${at} is before the sync was dispatched (${mb.dispatchedAt})`)
      startAt = mb.dispatchedAt
      // a sync that took long shortens the floor interval by as much (capped: a stuck sync cannot make it a hot loop)
      if (at - startAt > mb.maxDur) mb.maxDur = Math.min(at - startAt, this.maxIntervalMs / 4)
      const extra = (requests ?? mb.reservedReq) - mb.reservedReq
      if (extra > 0) this.charge(mb, at, extra)
      const extraCrm = (crmRequests ?? mb.reservedCrm) - mb.reservedCrm
      if (extraCrm > 0) this.chargeCrm(at, extraCrm)
      this.release(mb)
    } else {
      // a sync the scheduler did not dispatch (manual "sync now", another process)
      startAt = at
      const req = requests ?? mb.req
      if (req > 0) this.charge(mb, at, req)
      if (crmRequests) this.chargeCrm(at, crmRequests)
      if (mb.waiting) {
        mb.waiting = false
        this.waitingForSlot = this.waitingForSlot.filter((m) => m !== mb)
      }
      this.log.write(mb.h, at, E.dispatched, R['external-sync'], Number.NaN, req)
      mb.lastDispatchAt = at
    }
    this.counters.completed++

    if (throttled) {
      this.counters.throttled++
      mb.throttles++
      let delay: number
      let reason: number
      // exponential backoff over consecutive 429s (jitter in [0.5, 1]); Retry-After, stretched by up to
      // `jitter`, wins when it is longer — and a repeated Retry-After: 0 cannot turn into a hot loop
      const base = Math.min(this.config.maxBackoffMs, this.config.throttleBackoffMs * 2 ** Math.min(30, mb.throttles - 1))
      const backoff = base * (0.5 + 0.5 * this.draw(mb))
      if (retryAfterMs !== undefined) {
        const ra = retryAfterMs * (1 + this.config.jitter * this.draw(mb))
        delay = mb.throttles > 1 ? Math.max(ra, backoff) : ra
        reason = R['retry-after']
      } else {
        delay = backoff
        reason = R['throttle-backoff']
      }
      mb.blockedUntil = at + delay
      this.log.write(mb.h, at, E.throttled, reason, mb.blockedUntil, delay)
      this.schedule(mb, mb.blockedUntil, reason, at)
      this.releaseWaiting(at)
      return
    }
    mb.throttles = 0
    if (error) {
      this.counters.errors++
      mb.errors++
      const delay =
        this.kind === 'sss'
          ? this.config.sss.errorRetryMs
          : Math.min(this.config.maxIntervalMs, this.config.errorBackoffMs * 2 ** Math.min(30, mb.errors - 1)) * (0.5 + 0.5 * this.draw(mb))
      let next = at + delay
      // the max-interval promise holds through errors (only Retry-After may override it)
      if (this.reacts()) next = Math.max(at, Math.min(next, this.floorDeadline(mb)))
      this.log.write(mb.h, at, E.failed, R['error-backoff'], next, delay)
      this.schedule(mb, next, R['error-backoff'], at)
      this.releaseWaiting(at)
      return
    }
    mb.errors = 0
    this.changesSum += changes
    this.log.write(mb.h, at, E.completed, -1, Number.NaN, changes)
    this.observe(mb, startAt, mb.split ? changes - crmChanges : changes)
    if (crmPulled) {
      if (mb.split && this.kind === 'adaptive') this.observeCrm(mb, startAt, crmChanges)
      mb.lastCrmAt = startAt
    }

    let next = this.policyNext(mb, startAt, at, changes)
    let reason = this.nextReason
    if (mb.split) {
      const crmNext = this.crmNext(mb, at)
      if (crmNext < next) {
        next = crmNext
        reason = this.nextReason
      }
    }
    if (mb.followUpAt !== Infinity) {
      const t = Math.max(mb.followUpAt + this.config.debounceMs, at, this.promptSpacedFrom(mb))
      if (t < next) {
        next = t
        reason = mb.followUpReason
      }
      mb.followUpAt = Infinity
    }
    this.schedule(mb, Math.max(next, at), reason, at)
    this.releaseWaiting(at)
  }

  recordNotification(id: string, at: number): void {
    this.notify(this.get(id), at)
  }

  recordNotificationSlot(slot: number, at: number): void {
    this.notify(this.atSlot(slot), at)
  }

  private notify(mb: Mailbox, at: number): void {
    this.advance(at, 'at')
    this.counters.notifications++
    this.notesSum++
    if (!this.reacts()) {
      this.log.write(mb.h, at, E.ignored, R.notification, Number.NaN, Number.NaN)
      return
    }
    this.log.write(mb.h, at, E.notified, R.notification, Number.NaN, Number.NaN)
    this.prompt(mb, at, mb.inFlight ? R['notification-follow-up'] : R.notification)
  }

  setPendingCrmWrites(id: string, count: number, at: number): void {
    this.pendingWrites(this.get(id), count, at)
  }

  setPendingCrmWritesSlot(slot: number, count: number, at: number): void {
    this.pendingWrites(this.atSlot(slot), count, at)
  }

  private pendingWrites(mb: Mailbox, count: number, at: number): void {
    if (!Number.isInteger(count) || count < 0) throw new SchedulerError('InvalidInput', `count must be an integer >= 0 (got ${count})`)
    this.advance(at, 'at')
    const prev = mb.pendingCrm
    mb.pendingCrm = count
    this.log.write(mb.h, at, E['pending-writes'], R['pending-crm-writes'], Number.NaN, count)
    if (count > prev) this.notesSum += count - prev
    if (count > prev && this.reacts()) this.prompt(mb, at, R['pending-crm-writes'])
  }

  // ---------------------------------------------------------------- introspection

  explain(id: string): ExplainEntry[] {
    return this.log.read(this.get(id).h)
  }

  mailbox(id: string): MailboxView {
    const mb = this.get(id)
    return {
      mailboxId: mb.id,
      inFlight: mb.inFlight,
      dueAt: this.heap.has(mb.h) ? mb.dueAt : null,
      reason: SyncReasons[mb.reason] as SyncReason,
      lastDispatchAt: Number.isNaN(mb.lastDispatchAt) ? null : mb.lastDispatchAt,
      pendingCrmWrites: mb.pendingCrm,
      estimatedRate: this.kind === 'adaptive' ? effectiveRate(mb.f, mb.o + RATE, this.config.adaptive) * this.profile.at(Math.max(this.now, 0)) : null,
      crmPullDueAt: mb.split ? mb.crmDueAt : null,
    }
  }

  stats(): SchedulerStats {
    const byReason: Partial<Record<SyncReason, number>> = {}
    SyncReasons.forEach((r, i) => {
      const n = this.byReason[i] as number
      if (n > 0) byReason[r] = n
    })
    return {
      policy: this.config.policy,
      mailboxes: this.byId.size,
      inFlight: this.inFlight,
      crmInFlight: this.crmInFlight,
      ...this.counters,
      byReason,
      deferred: { ...this.deferred },
      budget: this.budgetWin
        ? {
            limit: this.budgetWin.limit,
            windowMs: this.budgetWin.windowMs,
            usedInWindow: Number.isFinite(this.now) ? this.budgetWin.count(this.now) : 0,
          }
        : null,
      allocationScale: this.y,
    }
  }

  // ---------------------------------------------------------------- policies

  private policyNext(mb: Mailbox, startAt: number, end: number, changes: number): number {
    switch (this.kind) {
      case 'fixed':
        this.nextReason = R['fixed-interval']
        return startAt + this.fixedMs
      case 'sss': {
        const s = this.config.sss
        if (changes >= s.busyChanges) {
          mb.idleStreak = 0
          this.nextReason = R['sss-busy']
          return end + s.busyMs
        }
        if (changes > 0) {
          mb.idleStreak = 0
          this.nextReason = R['sss-typical']
          return end + s.typicalMs
        }
        mb.idleStreak++
        if (mb.idleStreak >= s.idleCycles) {
          this.nextReason = R['sss-idle']
          return end + s.idleMs
        }
        this.nextReason = R['sss-typical']
        return end + s.typicalMs
      }
      case 'adaptive':
      case 'oracle': {
        this.maybePlan(end)
        if (this.loss < 1) return startAt + this.tailInterval(mb, this.rateAt(mb, end), mb.gReq, end)
        this.scale = this.scaleNow(end)
        return startAt + this.intervalOf(mb, this.weight(mb, end) * this.scale)
      }
    }
  }

  /**
   * The allocation scale y now (polls per ms per unit weight): the plan's, rescaled between plans to keep the total
   * spend constant when estimates move, and slowed by the governor once the budget window is fuller than planned.
   */
  private scaleNow(end: number): number {
    const y = this.kind === 'adaptive' && this.wSum > 0 && this.planWSum > 0 ? ((this.y ?? 0) * this.planWSum) / this.wSum : (this.y ?? 0)
    return y * this.governor(end)
  }

  /**
   * The governor's factor on rate-driven polls: 1 until the budget window is fuller than planned, then falling to 0
   * (the max-interval floor) at a full window, instead of running into the hard limit — of the budget that
   * rate-driven polls may use: the floor's reserve stays free.
   */
  private governor(end: number): number {
    const win = this.budgetWin as SlidingWindow
    const head = this.config.adaptive.budgetHeadroom
    const fill = win.count(end) / Math.max(1, (win.limit - this.floorReserve(end)) * (this.loss < 1 ? head : 1))
    return fill > head ? Math.max(0, (1 - fill) / (1 - head)) : 1
  }

  /**
   * When the mailbox's 12-minute floor runs out: the longest sync duration seen before maxIntervalMs after its last
   * sync — or, for a split mailbox, after its last CRM pull when that was longer ago.
   */
  private floorDeadline(mb: Mailbox): number {
    return this.floorStart(mb, true) + this.maxIntervalMs - mb.maxDur
  }

  /** Where the mailbox's floor interval started: its last sync, or its last CRM pull when `crmSide` and that was longer ago. */
  private floorStart(mb: Mailbox, crmSide: boolean): number {
    return crmSide && mb.split && mb.lastCrmAt < mb.lastDispatchAt ? mb.lastCrmAt : mb.lastDispatchAt
  }

  /**
   * The poll interval for poll rate `f` (clamped to the floor and the ceiling); sets `nextReason`. `f` is NaN for a
   * mailbox without weight under an unbounded scale (a budget larger than polling everything at the ceiling
   * costs: 0 × ∞): it has nothing to poll for, so the floor.
   */
  private intervalOf(mb: Mailbox, f: number): number {
    if (!(f > this.lo)) {
      this.nextReason = R['max-interval']
      return this.config.maxIntervalMs - mb.maxDur
    }
    this.nextReason = this.allocationReason
    if (f >= this.hi) {
      this.nextReason = R['min-interval']
      return this.config.minIntervalMs
    }
    return Math.min(1 / f, this.config.maxIntervalMs - mb.maxDur)
  }

  /** When the CRM side of a split mailbox is next due (its own interval from its last pull: √-rate or, with notifications, the tail rule); sets `nextReason`. */
  private crmNext(mb: Mailbox, end: number): number {
    const interval = this.loss < 1 ? this.tailInterval(mb, this.crmRateAt(mb, end), mb.crmPull, end) : this.intervalOf(mb, this.crmWeight(mb, end) * this.scale)
    mb.crmDueAt = Number.isNaN(mb.lastCrmAt) ? end : mb.lastCrmAt + interval
    return mb.crmDueAt
  }

  /**
   * Whether a sync of `mb` starting now pulls the CRM side: always unless split; for a split mailbox when CRM writes
   * are pending, before its first CRM pull, or when the CRM side is due before about the middle of the coming
   * interval (so a CRM pull rides on a mailbox sync instead of costing a sync of its own shortly after).
   */
  private pullsCrmNow(mb: Mailbox, now: number): boolean {
    if (!mb.split || mb.pendingCrm > 0 || Number.isNaN(mb.lastCrmAt) || mb.reason === R.initial) return true
    const gap = Number.isNaN(mb.lastDispatchAt) ? 0 : now - mb.lastDispatchAt
    return now + gap / 2 >= mb.crmDueAt
  }

  /** The tail rule's two intervals (a selected mailbox's poll finds a lost change within notificationTailMs). */
  private tailIntervals(): TailIntervals {
    return { tailMs: Math.min(this.config.adaptive.notificationTailMs, this.maxIntervalMs), floorMs: this.maxIntervalMs }
  }

  /** Change rate λ(t) of a mailbox (its mailbox side when split), changes per ms: estimated (adaptive) or true (oracle). */
  private rateAt(mb: Mailbox, t: number): number {
    if (this.kind === 'oracle') {
      if (this.rateStepMs > 0) {
        this.cacheTrueRates(mb, t)
        return mb.split ? Math.max(0, mb.rateAll - mb.rateCrm) : mb.rateAll
      }
      const oracle = this.config.oracle as NonNullable<SchedulerConfig['oracle']>
      return mb.split ? Math.max(0, oracle.rate(mb.id, t) - (oracle.crmRate as TrueRateFn)(mb.id, t)) : oracle.rate(mb.id, t)
    }
    return mb.wt * mb.wt * mb.gReq * this.profile.at(t)
  }

  /** Change rate λ(t) of a split mailbox's CRM side (0 when not split). */
  private crmRateAt(mb: Mailbox, t: number): number {
    if (!mb.split) return 0
    if (this.kind === 'oracle') {
      if (!(this.rateStepMs > 0)) return (this.config.oracle?.crmRate as TrueRateFn)(mb.id, t)
      this.cacheTrueRates(mb, t)
      return mb.rateCrm
    }
    return mb.wc * mb.wc * mb.crmPull * this.profile.at(t)
  }

  /** oracle with `rateStepMs`: the true rates of `mb` at `t` in `rateAll` / `rateCrm` (split mailboxes), asked once per step. */
  private cacheTrueRates(mb: Mailbox, t: number): void {
    const step = Math.floor(t / this.rateStepMs)
    if (step === mb.rateStep) return
    const oracle = this.config.oracle as NonNullable<SchedulerConfig['oracle']>
    mb.rateStep = step
    mb.rateAll = oracle.rate(mb.id, t)
    mb.rateCrm = mb.split ? (oracle.crmRate as TrueRateFn)(mb.id, t) : 0
  }

  /**
   * With notifications: the next poll's interval, under the tail rule (see tail-allocation.ts) with the governor, of
   * an item with change rate `lam` and poll cost `cost` (a mailbox, or the CRM side of a split one).
   */
  private tailInterval(mb: Mailbox, lam: number, cost: number, end: number): number {
    const iv = this.tailIntervals()
    const priority = tailPriority(this.uncovered(lam), (1 - this.loss) * lam, cost, iv)
    let f = priority > 0 && priority >= this.tailTheta ? 1 / iv.tailMs : 0
    const slowed = f > 0 ? this.governor(end) : 1
    if (slowed < 1) {
      f *= slowed
      this.governedAt = end
    }
    const floor = this.config.maxIntervalMs - mb.maxDur
    if (f <= this.lo) {
      this.nextReason = R['max-interval']
      return floor
    }
    this.nextReason = this.allocationReason
    return Math.max(this.config.minIntervalMs, Math.min(1 / f - mb.maxDur, floor))
  }

  /** √(λ(t)/cost) of a mailbox (its mailbox side when split) for the √-rate plan: estimated (adaptive) or true (oracle). */
  private weight(mb: Mailbox, t: number): number {
    if (this.kind === 'oracle') return Math.sqrt(this.rateAt(mb, t) / mb.gReq)
    return mb.wt * Math.sqrt(this.profile.at(t))
  }

  /** √(λ(t)/cost) of a split mailbox's CRM side (0 when not split). */
  private crmWeight(mb: Mailbox, t: number): number {
    if (!mb.split) return 0
    if (this.kind === 'oracle') return Math.sqrt(this.crmRateAt(mb, t) / mb.crmPull)
    return mb.wc * Math.sqrt(this.profile.at(t))
  }

  /**
   * The part of a change rate λ that polls have to find: with notifications, a change is announced unless its
   * notification is lost (share p, estimated), and a lost change is also found by the sync of the next notified
   * change if that comes within `notificationCoverMs`: u = p·λ·e^{−(1−p)·λ·cover}. Without notifications p = 1, u = λ.
   */
  private uncovered(lam: number): number {
    const p = this.loss
    return p >= 1 ? lam : p * lam * Math.exp(-(1 - p) * lam * this.config.adaptive.notificationCoverMs)
  }

  /** Share of changes no notification announced (1 until notifications were seen): 1 − notifications / changes found. */
  private updateLoss(): void {
    if (this.notesSum === 0 || this.changesSum < 20 ) this.loss = 1
    else this.loss = Math.min(1, Math.max(0.01, 1 - this.notesSum / this.changesSum))
    // forget slowly (each plan), so a subscription that stops working shows within hours
    this.notesSum *= 0.97
    this.changesSum *= 0.97
  }

  private observe(mb: Mailbox, startAt: number, changes: number): void {
    if (this.kind !== 'adaptive') {
      mb.lastObsAt = startAt
      return
    }
    const from = Number.isNaN(mb.lastObsAt) ? startAt : mb.lastObsAt
    const dt = startAt - from
    mb.lastObsAt = startAt
    if (Number.isNaN(from) || dt < 0) return
    if (dt === 0 && changes === 0) return
    this.profile.observe(startAt, changes, dt)
    observeRate(mb.f, mb.o + RATE, changes, dt, this.profile.at(startAt - dt / 2), this.config.adaptive)
    this.setWeight(mb)
  }

  private setWeight(mb: Mailbox): void {
    const w = Math.sqrt(effectiveRate(mb.f, mb.o + RATE, this.config.adaptive) / mb.gReq)
    this.wSum += mb.gReq * (w - mb.wt)
    mb.wt = w
  }

  /** adaptive, split: the CRM side's changes found by a sync that pulled it, over the time since the last such sync. */
  private observeCrm(mb: Mailbox, startAt: number, changes: number): void {
    const dt = startAt - mb.lastCrmAt
    if (Number.isNaN(dt) || dt < 0 || (dt === 0 && changes === 0)) return
    observeRate(mb.f, mb.o + CRM_RATE, changes, dt, this.profile.at(startAt - dt / 2), this.crmOpts)
    this.setCrmWeight(mb)
  }

  private setCrmWeight(mb: Mailbox): void {
    const w = Math.sqrt(effectiveRate(mb.f, mb.o + CRM_RATE, this.crmOpts) / mb.crmPull)
    this.wSum += mb.crmPull * (w - mb.wc)
    mb.wc = w
  }

  /** Re-solve the √-rate allocation against the budget (adaptive: every rebalanceMs; oracle: every budget window). */
  private maybePlan(now: number): void {
    if (!this.reacts()) return
    // fast path: early re-plans are at most once a minute, so nothing to check before then
    if (!this.planDirty && now < this.nextPlanAt && now < this.lastPlanAt + MIN) return
    const win = this.budgetWin as SlidingWindow
    // Unplanned syncs (notifications, retries, backoffs) come on top of the planned ones: plan for
    // budget / (1 + ρ), ρ = unplanned / planned requests in the current window.
    const unplanned = (this.unplannedWin as SlidingWindow).count(now)
    const planned = (this.plannedWin as SlidingWindow).count(now)
    const rho = unplanned / Math.max(planned, 1)
    // Cold start: during the first budget window the window is not yet full of history, so plan what is
    // left of it over the time that is left of it (otherwise a profile learned mid-window would spend a
    // whole window's budget on top of what the first hours already used).
    if (Number.isNaN(this.startedAt)) this.startedAt = now
    const cold = now < this.startedAt + win.windowMs
    // (what rate-driven polls may use: the floor's steady reserve stays free, as in the governor)
    const limit = win.limit - (this.costSum * this.config.adaptive.floorReserveMs) / this.maxIntervalMs
    const budgetNow = cold
      ? Math.max(0, limit * this.config.adaptive.budgetHeadroom - win.count(now)) / (1 + rho)
      : (limit * this.config.adaptive.budgetHeadroom) / (1 + rho)
    if (!this.planDirty && now < this.nextPlanAt) {
      // re-plan early (at most once a minute) when estimates or the unplanned share moved
      if (now < this.lastPlanAt + MIN) return
      const drift = this.kind === 'adaptive' && this.planWSum > 0 ? this.wSum / this.planWSum : 1
      const moved = !cold && Math.abs(budgetNow - this.planBudget) > 0.05 * this.planBudget
      if (drift > 0.8 && drift < 1.25 && !moved) return
    }
    this.lastPlanAt = now
    this.counters.plans++
    const horizon = cold ? Math.max(MIN, this.startedAt + win.windowMs - now) : win.windowMs
    // one item per mailbox (its mailbox side when split), then one per CRM side when any mailbox is split
    const n = this.byHandle.length
    const items = this.splitCount > 0 ? 2 * n : n
    const cost = this.planArray(0, items)
    for (let h = 0; h < n; h++) {
      const mb = this.byHandle[h]
      cost[h] = mb?.gReq ?? 0
      if (items > n) cost[n + h] = mb?.split ? mb.crmPull : 0
    }
    const budget = budgetNow
    this.planBudget = budget
    const slots: Array<{ dur: number; weights: Float64Array; scale?: number }> = []
    this.updateLoss()
    if (this.kind === 'adaptive') {
      this.profile.recompute()
      const weights = this.planArray(1, items)
      let sum = 0
      for (let h = 0; h < n; h++) {
        const mb = this.byHandle[h]
        weights[h] = 0
        if (items > n) weights[n + h] = 0
        if (!mb) continue
        // re-derive (also re-syncs the running sum against float drift)
        mb.wt = Math.sqrt(effectiveRate(mb.f, mb.o + RATE, this.config.adaptive) / mb.gReq)
        weights[h] = mb.wt
        sum += mb.gReq * mb.wt
        if (mb.split) {
          mb.wc = Math.sqrt(effectiveRate(mb.f, mb.o + CRM_RATE, this.crmOpts) / mb.crmPull)
          weights[n + h] = mb.wc
          sum += mb.crmPull * mb.wc
        }
      }
      this.wSum = sum
      this.planWSum = sum
      const slotMs = this.config.adaptive.profileSlotMs
      // (with notifications the tail rule plans instead, from the same estimates: planTail)
      if (this.loss >= 1) {
        for (let t = now; t < now + horizon; t += slotMs) {
          const dur = Math.min(slotMs, now + horizon - t)
          slots.push({ dur, weights, scale: Math.sqrt(this.profile.at(t + dur / 2)) })
        }
      }
      this.nextPlanAt = now + this.config.adaptive.rebalanceMs
    } else if (this.loss >= 1) {
      const oracle = this.config.oracle as NonNullable<SchedulerConfig['oracle']>
      // the times the rates are sampled at, each with its weights; with rateStepMs, slots whose middles fall in the
      // same step have the same weights and share the array (the solver then prepares it once)
      const mids: number[] = []
      const sampled: Float64Array[] = []
      for (let t = now; t < now + horizon; t += oracle.sampleMs) {
        const dur = Math.min(oracle.sampleMs, now + horizon - t)
        const mid = t + dur / 2
        const last = mids.length - 1
        if (last < 0 || !(this.rateStepMs > 0) || Math.floor(mid / this.rateStepMs) !== Math.floor((mids[last] as number) / this.rateStepMs)) {
          mids.push(mid)
          sampled.push(this.planArray(2 + sampled.length, items).fill(0))
        }
        slots.push({ dur, weights: sampled[sampled.length - 1] as Float64Array })
      }
      // mailbox by mailbox, in time order (the rate functions see one mailbox's times in a row: cheap for a per-mailbox lookup, and asked once per rateStepMs)
      for (let h = 0; h < n; h++) {
        const mb = this.byHandle[h]
        if (!mb) continue
        for (let j = 0; j < mids.length; j++) {
          const weights = sampled[j] as Float64Array
          weights[h] = this.weight(mb, mids[j] as number)
          if (mb.split) weights[n + h] = this.crmWeight(mb, mids[j] as number)
        }
      }
    }
    if (this.kind === 'oracle') this.nextPlanAt = now + Math.min(horizon, this.config.adaptive.rebalanceMs * 4)
    if (this.loss < 1) this.tailTheta = this.planTail(now, horizon, cost, cold ? budget : budget / this.tailCalibration(now))
    else this.y = solveSqrtAllocation(slots, cost, budget, this.lo, this.hi, this.y ?? undefined)
    this.planDirty = false
  }

  /**
   * With notifications: the tail rule's threshold that spends `budget` requests of planned polls over the horizon,
   * in slots of profileSlotMs (adaptive) or the oracle's sampleMs; see tail-allocation.ts.
   */
  private planTail(now: number, horizon: number, cost: Float64Array, budget: number): number {
    // the plan's items: one per mailbox (its mailbox side when split), then one per CRM side (see maybePlan)
    const items = cost.length
    const n = this.byHandle.length
    const slotMs = this.kind === 'oracle' ? (this.config.oracle as NonNullable<SchedulerConfig['oracle']>).sampleMs : this.config.adaptive.profileSlotMs
    const slots: TailSlot[] = []
    for (let t = now, k = 0; t < now + horizon; t += slotMs, k++) {
      const dur = Math.min(slotMs, now + horizon - t)
      slots.push({ dur, uncovered: this.tailArray(2 * k, items), notified: this.tailArray(2 * k + 1, items) })
    }
    for (let h = 0; h < items; h++) {
      const mb = this.byHandle[h < n ? h : h - n]
      for (let k = 0; k < slots.length; k++) {
        const slot = slots[k] as TailSlot
        const t = now + k * slotMs + slot.dur / 2
        const lam = !mb ? 0 : h < n ? this.rateAt(mb, t) : this.crmRateAt(mb, t)
        slot.uncovered[h] = this.uncovered(lam)
        slot.notified[h] = (1 - this.loss) * lam
      }
    }
    const iv = this.tailIntervals()
    const theta = solveTailThreshold(slots, cost, budget, iv)
    // what the plan expects planned syncs to spend until the next plan (→ tailCalibration)
    const pred = this.predictedWin as SlidingWindow
    if (Number.isFinite(this.tailRateSince)) pred.add(now, this.tailRate * (now - this.tailRateSince))
    else this.tailSince = now
    const first = slots[0] as TailSlot
    let rate = 0
    for (let h = 0; h < items; h++) {
      const c = cost[h] as number
      if (c <= 0) continue
      const nu = first.notified[h] as number
      const p = tailPriority(first.uncovered[h] as number, nu, c, iv)
      rate += c * pollRate(nu, p > 0 && p >= theta ? iv.tailMs : iv.floorMs)
    }
    this.tailRate = rate
    this.tailRateSince = now
    return theta
  }

  /** Requests planned syncs made per request the tail plans predicted, over the budget window (1 until a quarter window was predicted). */
  private tailCalibration(now: number): number {
    const win = this.predictedWin as SlidingWindow
    if (!(now - this.tailSince >= win.windowMs / 4)) return 1
    const predicted = win.count(now)
    const planned = (this.plannedWin as SlidingWindow).count(now)
    const k = predicted > 0 ? Math.min(2, Math.max(0.5, planned / predicted)) : 1
    // polls the governor held back are no model error: spending more for them would only feed the governor
    return k < 1 && now - this.governedAt < win.windowMs / 4 ? 1 : k
  }

  // ---------------------------------------------------------------- helpers

  /** The k-th work array of the planner, length n, reused across plans (see {@link workArray}). */
  private planArray(k: number, n: number): Float64Array {
    return workArray(this.planArrays, k, n, float64)
  }

  /** The k-th work array of the tail plans (as {@link planArray}, kept apart from the √-rate plan's arrays). */
  private tailArray(k: number, n: number): Float64Array {
    return workArray(this.tailArrays, k, n, float64)
  }

  /**
   * Budget that syncs before their max-interval deadline must leave free: what the floor costs (every mailbox once
   * per maxIntervalMs, with the observed ratio of charged to reserved requests) until the window frees up again —
   * for the rest of the first window (nothing expires before it ends), afterwards for `floorReserveMs`.
   */
  private floorReserve(now: number): number {
    const win = this.budgetWin as SlidingWindow
    const horizon = Math.max(this.config.adaptive.floorReserveMs, Number.isNaN(this.startedAt) ? win.windowMs : this.startedAt + win.windowMs - now)
    const overhead = this.reservedTotal > 0 ? Math.max(1, this.counters.requests / this.reservedTotal) : 1
    return Math.min(win.limit, (this.costSum * overhead * horizon) / this.maxIntervalMs)
  }

  private reacts(): boolean {
    return this.kind === 'adaptive' || this.kind === 'oracle'
  }

  private isPlanned(reason: number): boolean {
    return reason === R['rate-allocation'] || reason === R['oracle-allocation'] || reason === R['max-interval'] || reason === R['min-interval'] || reason === R.initial
  }

  /** Earliest start of a notification-driven sync: notificationSpacingMs after the previous sync started. */
  private promptSpacedFrom(mb: Mailbox): number {
    return Number.isNaN(mb.lastDispatchAt) ? -Infinity : mb.lastDispatchAt + this.config.notificationSpacingMs
  }

  /** Bring a sync forward to `at + debounceMs` (or remember it for after the in-flight sync). */
  private prompt(mb: Mailbox, at: number, reason: number): void {
    if (mb.inFlight) {
      if (at < mb.followUpAt) mb.followUpAt = at
      mb.followUpReason = reason === R['pending-crm-writes'] ? reason : R['notification-follow-up']
      return
    }
    if (mb.waiting) return // already due, waiting for a concurrency slot
    const t = Math.max(at + this.config.debounceMs, mb.blockedUntil, this.promptSpacedFrom(mb))
    if (t < mb.dueAt) this.schedule(mb, t, reason, at)
  }

  private schedule(mb: Mailbox, t: number, reason: number, now: number): void {
    mb.dueAt = t
    mb.reason = reason
    this.heap.set(mb.h, t)
    this.log.write(mb.h, now, E.scheduled, reason, t, Number.NaN)
  }

  private defer(mb: Mailbox, t: number, limitReason: number, now: number): void {
    // keep the original reason for accounting; the log says which limit held it back
    // strictly in the future, so a driver that wakes at nextWakeAt() always makes progress
    const at = Number.isFinite(t) ? Math.max(t, now + 1) : now + this.config.maxIntervalMs
    mb.dueAt = at
    this.heap.set(mb.h, at)
    this.log.write(mb.h, now, E.deferred, limitReason, at, Number.NaN)
  }

  private release(mb: Mailbox): void {
    mb.inFlight = false
    this.inFlight--
    this.crmInFlight -= mb.crmPar
  }

  /** A slot freed: put as many waiting syncs back in the queue as there are free CRM slots (FIFO). */
  private releaseWaiting(now: number): void {
    if (this.waitingForSlot.length === 0) return
    let free = this.crmConcurrency - this.crmInFlight
    let i = 0
    const waiting = this.waitingForSlot
    while (i < waiting.length && free > 0) {
      const mb = waiting[i++] as Mailbox
      mb.waiting = false
      mb.dueAt = now
      this.heap.set(mb.h, now)
      free -= Math.max(1, mb.crmPar)
    }
    this.waitingForSlot = i === waiting.length ? [] : waiting.slice(i)
  }

  private charge(mb: Mailbox, at: number, n: number): void {
    windowCount(mb, at, this.mbBucketMs)
    mb.w0 += n
    this.budgetWin?.add(at, n)
    this.unplannedWin?.add(at, n)
    this.counters.requests += n
  }

  private compare(a: Mailbox, b: Mailbox): number {
    // pending CRM writes first, then notifications, then the mailbox closest to its max-interval deadline, then due time
    const pa = a.pendingCrm > 0 ? 0 : 1
    const pb = b.pendingCrm > 0 ? 0 : 1
    if (pa !== pb) return pa - pb
    const na = a.reason === R.notification || a.reason === R['notification-follow-up'] ? 0 : 1
    const nb = b.reason === R.notification || b.reason === R['notification-follow-up'] ? 0 : 1
    if (na !== nb) return na - nb
    const da = Number.isNaN(a.lastDispatchAt) ? -Infinity : a.lastDispatchAt
    const db = Number.isNaN(b.lastDispatchAt) ? -Infinity : b.lastDispatchAt
    if (da !== db) return da - db
    return a.dueAt - b.dueAt || a.h - b.h
  }

  private updateBudgetLimit(): void {
    if (this.budgetWin && this.perMailboxBudget !== null) this.budgetWin.limit = Math.floor(this.perMailboxBudget * (this.budgetPerSync ? this.costSum : this.byId.size))
  }

  private advance(t: number, field: string): void {
    if (typeof t !== 'number' || !Number.isFinite(t)) throw new SchedulerError('InvalidInput', `${field} must be a finite number of virtual ms (got ${String(t)})`)
    if (t < this.now) throw new SchedulerError('TimeWentBackwards', `${field} ${t} is earlier than ${this.now}, a time already seen; feed events in time order`)
    this.now = t
  }

  private checkId(id: string): void {
    if (typeof id !== 'string' || id.length === 0) throw new SchedulerError('InvalidInput', `mailbox id must be a non-empty string (got ${JSON.stringify(id)})`)
  }

  private atSlot(slot: number): Mailbox {
    const mb = this.byHandle[slot]
    if (!mb) throw new SchedulerError('UnknownMailbox', `No mailbox in slot ${String(slot)}`)
    return mb
  }

  private get(id: string): Mailbox {
    const mb = this.byId.get(id)
    if (!mb) throw new SchedulerError('UnknownMailbox', `Unknown mailbox ${JSON.stringify(id)}; call addMailbox first`)
    return mb
  }
}

function badCount(v: unknown): boolean {
  return v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
}

/** Cheap hand-written validation for the hot path (PollResultSchema is the zod equivalent for edges). */
function checkPollResult(r: PollResult): void {
  if (r === null || typeof r !== 'object') throw new SchedulerError('InvalidInput', `poll result must be an object (got ${String(r)})`)
  if (badCount(r.changes)) throw new SchedulerError('InvalidInput', `result.changes must be an integer >= 0 (got ${String(r.changes)})`)
  if (badCount(r.requests)) throw new SchedulerError('InvalidInput', `result.requests must be an integer >= 0 (got ${String(r.requests)})`)
  if (badCount(r.crmRequests)) throw new SchedulerError('InvalidInput', `result.crmRequests must be an integer >= 0 (got ${String(r.crmRequests)})`)
  if (r.retryAfterMs !== undefined && (typeof r.retryAfterMs !== 'number' || !(r.retryAfterMs >= 0) || !Number.isFinite(r.retryAfterMs))) {
    throw new SchedulerError('InvalidInput', `result.retryAfterMs must be a finite number >= 0 (got ${String(r.retryAfterMs)})`)
  }
}
