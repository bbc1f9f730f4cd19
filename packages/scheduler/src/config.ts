import { z } from 'zod'
import { SchedulerConfigError } from './errors.js'

const MIN = 60_000
const posMs = () => z.number().finite().positive()

/** A policy name: `adaptive`, `sss`, `oracle` or `fixed:<minutes>` (e.g. `fixed:15`, `fixed:0.5`). */
export const PolicyNameSchema = z
  .string()
  .regex(/^(adaptive|sss|oracle|fixed:(\d+(\.\d+)?))$/, 'policy must be "adaptive", "sss", "oracle" or "fixed:<minutes>"')
  .refine((s) => !s.startsWith('fixed:') || Number(s.slice(6)) > 0, 'fixed:<minutes> needs minutes > 0')
  .describe('Scheduling policy: adaptive (Concord), sss (Dynamics server-side sync 2/5/12 min), oracle (simulator reference, needs oracle.rate) or fixed:<minutes> (Outlook client: fixed:15)')
/** See {@link PolicyNameSchema}. */
export type PolicyName = z.infer<typeof PolicyNameSchema>

/** The global request budget (Graph requests across all mailboxes). */
export const BudgetSchema = z
  .object({
    requestsPerWindow: z.number().int().positive().optional().describe('Total requests allowed per window across all mailboxes'),
    perMailboxRequestsPerWindow: z
      .number()
      .positive()
      .optional()
      .describe('Alternative to requestsPerWindow: the budget scales with the number of mailboxes (e.g. 288 per day = fixed:5)'),
    windowMs: posMs().describe('Length of the sliding budget window in ms (a day lets the adaptive policy move calls from night to day)'),
  })
  .refine((b) => (b.requestsPerWindow === undefined) !== (b.perMailboxRequestsPerWindow === undefined), {
    message: 'give exactly one of requestsPerWindow or perMailboxRequestsPerWindow',
  })
  .describe('Global request budget; a hard limit for every policy, and what the adaptive/oracle policies allocate')
/** See {@link BudgetSchema}. */
export type Budget = z.infer<typeof BudgetSchema>

const WindowLimitSchema = (requests: number, windowMs: number, concurrency: number, what: string) =>
  z
    .object({
      requestsPerWindow: z.number().int().positive().default(requests).describe(`${what}: requests per window`),
      windowMs: posMs().default(windowMs).describe(`${what}: window length in ms`),
      concurrency: z.number().int().positive().default(concurrency).describe(`${what}: concurrent requests`),
    })
    .prefault({})

/** Service limits the scheduler never exceeds (published Graph / Dataverse limits by default). */
export const LimitsSchema = z
  .object({
    mailbox: WindowLimitSchema(10_000, 10 * MIN, 4, 'Graph, per app + mailbox').describe(
      'Graph Outlook limits per app and mailbox: 10,000 requests / 10 min, 4 concurrent',
    ),
    crm: WindowLimitSchema(6_000, 5 * MIN, 52, 'Dataverse, per app user').describe(
      'Dataverse service protection per app user and web server: 6,000 requests / 5 min, 52 concurrent',
    ),
  })
  .prefault({})
/** See {@link LimitsSchema}. */
export type Limits = z.infer<typeof LimitsSchema>

/** Tunables of the `sss` baseline (documented Dynamics server-side sync behaviour). */
export const SssOptionsSchema = z
  .object({
    typicalMs: posMs().default(5 * MIN).describe('Wait after a cycle that saw some changes (5 min)'),
    busyMs: posMs().default(2 * MIN).describe('Wait after a busy cycle (2 min)'),
    idleMs: posMs().default(12 * MIN).describe('Wait once the mailbox is idle (12 min, also the cap)'),
    busyChanges: z.number().int().positive().default(10).describe('Changes in one cycle that make the mailbox busy'),
    idleCycles: z.number().int().positive().default(3).describe('Consecutive empty cycles that make the mailbox idle'),
    errorRetryMs: posMs().default(5 * MIN).describe('Transient errors are retried at this interval (5 min)'),
  })
  .prefault({})
/** See {@link SssOptionsSchema}. */
export type SssOptions = z.infer<typeof SssOptionsSchema>

/** Tunables of the `adaptive` policy. */
export const AdaptiveOptionsSchema = z
  .object({
    longHalfLifeMs: posMs().default(24 * 60 * MIN).describe('Half-life of the long-timescale (level) rate estimate'),
    shortHalfLifeMs: posMs().default(30 * MIN).describe('Half-life of the short-timescale (burst) rate estimate'),
    burstWeight: z.number().min(0).max(1).default(0.5).describe('How much of a short-term excess over the level counts (0 = ignore bursts)'),
    priorChangesPerDay: z.number().positive().default(122).describe('Prior mean change rate of a new mailbox (changes/day)'),
    priorStrengthMs: posMs().default(2 * 60 * MIN).describe('Weight of the prior, as equivalent observed time'),
    profileSlotMs: posMs().default(30 * MIN).describe('Slot length of the learned diurnal profile'),
    profilePeriodMs: posMs().default(24 * 60 * MIN).describe('Period of the diurnal profile (a day; a week also works)'),
    profileOriginMs: z.number().finite().default(0).describe('Virtual time at which a profile period starts (local midnight)'),
    profileDecay: z.number().gt(0).max(1).default(0.5).describe('Weight kept by a profile slot each time a new period reaches it'),
    profileShrinkSlots: z
      .number()
      .min(0)
      .default(2)
      .describe('Each profile slot is shrunk toward the overall rate with the weight of this many mailbox-slots of exposure (more = flatter profile while little is observed)'),
    rebalanceMs: posMs().default(15 * MIN).describe('How often the √rate allocation is re-solved against the budget'),
    floorReserveMs: posMs()
      .default(12 * MIN)
      .describe('Syncs before their max-interval deadline leave the floor\'s cost for this long free in the budget window (for the whole rest of the first window)'),
    notificationCoverMs: posMs()
      .default(3 * MIN)
      .describe('With notifications: a lost change is also found by the sync of the next notified change if that comes within this time, so polls go where changes are lost and not soon covered'),
    crmPriorChangesPerDay: z
      .number()
      .positive()
      .default(6)
      .describe('Prior mean CRM-side change rate of a new mailbox (changes/day), for mailboxes whose syncs pull the CRM side on its own schedule (crmPullRequests > 0)'),
    notificationTailMs: posMs()
      .default(3 * MIN)
      .describe(
        'With notifications: the staleness a change whose notification was lost should not exceed. Polls go to the mailboxes with the most uncovered lost changes per extra request, at this interval (less the sync time); the others stay at the max-interval floor',
      ),
    budgetHeadroom: z.number().gt(0).max(1).default(0.98).describe('Fraction of the budget the allocation plans to spend; above it, rate-driven polls slow down linearly to none at a full window'),
  })
  .prefault({})
/** See {@link AdaptiveOptionsSchema}. */
export type AdaptiveOptions = z.infer<typeof AdaptiveOptionsSchema>

/** The true change rate used by the `oracle` policy: changes per ms of `mailboxId` at virtual time `t`. */
export type TrueRateFn = (mailboxId: string, t: number) => number

/** Options of the `oracle` policy (simulator only). */
export const OracleOptionsSchema = z.object({
  rate: z
    .custom<TrueRateFn>((v) => typeof v === 'function', { message: 'oracle.rate must be a function (mailboxId, t) => changes per ms' })
    .describe('The true rate function (changes per ms)'),
  crmRate: z
    .custom<TrueRateFn>((v) => typeof v === 'function', { message: 'oracle.crmRate must be a function (mailboxId, t) => changes per ms' })
    .optional()
    .describe('The true CRM-side rate (part of `rate`); with it, the oracle pulls the CRM side of mailboxes with crmPullRequests > 0 on its own schedule'),
  sampleMs: posMs().default(15 * MIN).describe('Sampling step used to integrate the true rate over the budget window'),
  rateStepMs: posMs()
    .optional()
    .describe('Set when `rate` and `crmRate` are constant on every [k·rateStepMs, (k+1)·rateStepMs) (e.g. hourly counts): the scheduler then asks them once per mailbox and step'),
})
/** See {@link OracleOptionsSchema}. */
export type OracleOptions = z.infer<typeof OracleOptionsSchema>

/** The scheduler configuration. Parsed once by `createScheduler`; defaults live here. */
export const SchedulerConfigSchema = z
  .object({
    policy: PolicyNameSchema.default('adaptive'),
    budget: BudgetSchema.optional(),
    limits: LimitsSchema,
    debounceMs: z.number().finite().min(0).default(3_000).describe('Delay between a change notification (or new pending CRM writes) and the sync'),
    notificationSpacingMs: z
      .number()
      .finite()
      .min(0)
      .default(0)
      .describe(
        'adaptive/oracle: a notification (or new pending CRM writes) starts a sync no sooner than this after the previous sync started, so a busy mailbox\'s notifications share syncs and leave budget for the polls that find lost notifications (off by default: with mailbox-only polls, crmPullRequests, the budget pays for notification syncs as they come; 90 s helps when it is tight)',
      ),
    maxIntervalMs: posMs().default(12 * MIN).describe('adaptive/oracle: every mailbox is synced at least this often (12 min)'),
    minIntervalMs: posMs().default(30_000).describe('adaptive/oracle: no rate-driven poll more often than this'),
    explainCapacity: z.number().int().min(0).max(1024).default(32).describe('Entries kept per mailbox in the explanation ring buffer'),
    jitter: z.number().min(0).max(1).default(0.2).describe('Retry-After is stretched by up to this fraction (random)'),
    throttleBackoffMs: posMs().default(2_000).describe('First backoff after a 429 without Retry-After (doubles, capped)'),
    errorBackoffMs: posMs().default(30_000).describe('First backoff after a failed sync (doubles, capped at maxIntervalMs)'),
    maxBackoffMs: posMs().default(5 * MIN).describe('Cap for throttle backoff without Retry-After'),
    staggerInitial: z.boolean().default(true).describe('Spread first syncs of new mailboxes over one interval'),
    random: z
      .custom<() => number>((v) => typeof v === 'function', { message: 'random must be a function returning [0, 1)' })
      .optional()
      .describe('Injected RNG in [0, 1) for jitter and staggering (default: seeded mulberry32(1))'),
    randomFor: z
      .custom<(mailboxId: string) => () => number>((v) => typeof v === 'function', { message: 'randomFor must be a function of a mailbox id returning an RNG in [0, 1)' })
      .optional()
      .describe(
        "Per-mailbox RNGs: when set, every draw made for a mailbox (its first sync's stagger, its backoff and budget jitter) comes from randomFor(id), called once when it is added, instead of the shared `random`: a mailbox's schedule then does not depend on the order of other mailboxes' events (common random numbers across scenarios, and runs that can be split by mailbox)",
      ),
    sss: SssOptionsSchema,
    adaptive: AdaptiveOptionsSchema,
    oracle: OracleOptionsSchema.optional(),
  })
  .refine((c) => c.policy !== 'oracle' || c.oracle !== undefined, { message: 'policy "oracle" needs oracle.rate', path: ['oracle'] })
  .refine((c) => c.minIntervalMs <= c.maxIntervalMs, { message: 'minIntervalMs must be <= maxIntervalMs', path: ['minIntervalMs'] })
/** Input shape of the configuration (all defaults optional). */
export type SchedulerConfigInput = z.input<typeof SchedulerConfigSchema>
/** The configuration after parsing (defaults applied). */
export type SchedulerConfig = z.output<typeof SchedulerConfigSchema>

/** Per-mailbox facts the scheduler needs (costs of one sync). */
export const MailboxInfoSchema = z
  .object({
    requestsPerSync: z.number().int().positive().default(1).describe('Graph requests one sync of this mailbox costs (e.g. one delta call per folder)'),
    parallelRequests: z.number().int().positive().default(1).describe('Graph requests a sync runs in parallel (≤ limits.mailbox.concurrency)'),
    crmPullRequests: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        'Requests of requestsPerSync that pull the CRM side. With > 0, adaptive/oracle pull the CRM side only when it is due (its own √-rate allocation from the CRM-side change rate, new pending CRM writes, the max interval); other syncs cost requestsPerSync − crmPullRequests (see DueSync.pullCrm)',
      ),
    crmRequestsPerSync: z.number().int().min(0).default(0).describe('Dataverse requests reserved per sync (actuals beyond it are charged on recordPoll)'),
    crmParallelRequests: z.number().int().min(0).default(1).describe('Dataverse concurrent requests a sync holds while in flight'),
    firstSyncAt: z.number().finite().optional().describe('Virtual time of the first sync (default: staggered from `at`)'),
  })
  .prefault({})
/** Input shape of {@link MailboxInfoSchema}. */
export type MailboxInfoInput = z.input<typeof MailboxInfoSchema>
/** Parsed mailbox info. */
export type MailboxInfo = z.output<typeof MailboxInfoSchema>

/** What the caller reports when a sync finishes (also usable to validate it at an HTTP edge). */
export const PollResultSchema = z.object({
  at: z.number().finite().describe('Virtual time the sync finished'),
  changes: z.number().int().min(0).default(0).describe('Changes the sync found'),
  requests: z.number().int().min(0).optional().describe('Graph requests actually made (default: the reservation)'),
  crmRequests: z.number().int().min(0).optional().describe('Dataverse requests actually made (default: the reservation)'),
  crmChanges: z.number().int().min(0).optional().describe('Of `changes`, those found on the CRM side (default 0)'),
  crmPulled: z.boolean().optional().describe('Whether the sync pulled the CRM side (default: as dispatched, DueSync.pullCrm; a cycle may pull it although not asked)'),
  throttled: z.boolean().default(false).describe('The sync was throttled (429/503)'),
  retryAfterMs: z.number().finite().min(0).optional().describe('Retry-After in ms, if the response carried one'),
  error: z.boolean().default(false).describe('The sync failed for another (transient) reason'),
})
/** Input shape of {@link PollResultSchema}. */
export type PollResult = z.input<typeof PollResultSchema>

/** Parse `input` with `schema` or throw a {@link SchedulerConfigError} naming each bad field and value. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const r = schema.safeParse(input)
  if (r.success) return r.data
  const lines = r.error.issues.map((i) => {
    const path = i.path.join('.') || '(root)'
    let value: unknown = input
    for (const k of i.path) value = value != null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[k as PropertyKey] : undefined
    const shown = typeof value === 'function' ? '[function]' : JSON.stringify(value)
    return `${path}: ${i.message} (got ${shown === undefined ? 'undefined' : shown})`
  })
  throw new SchedulerConfigError(`Invalid ${what}: ${lines.join('; ')}`, r.error.issues)
}

/** Parse the `fixed:<minutes>` interval in ms, or null for other policies. */
export function fixedIntervalMs(policy: PolicyName): number | null {
  return policy.startsWith('fixed:') ? Number(policy.slice(6)) * MIN : null
}
