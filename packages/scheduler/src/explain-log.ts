/** What happened, as recorded in a mailbox's explanation log. */
export const ExplainEvents = ['scheduled', 'dispatched', 'completed', 'throttled', 'failed', 'deferred', 'notified', 'pending-writes', 'ignored'] as const
/** One of {@link ExplainEvents}. */
export type ExplainEvent = (typeof ExplainEvents)[number]

/**
 * Why a sync was (re)scheduled or deferred. Closed set, stable (the simulator aggregates by it).
 *
 * - `initial` first sync of a newly added mailbox (staggered)
 * - `fixed-interval` the `fixed:<minutes>` cadence
 * - `sss-busy` / `sss-typical` / `sss-idle` the server-side-sync 2 / 5 / 12-minute rule
 * - `rate-allocation` adaptive: interval from the √rate allocation under the budget
 * - `oracle-allocation` oracle: same with the true rate
 * - `max-interval` the "at least once every maxIntervalMs" floor decided the time
 * - `min-interval` the per-mailbox minimum interval capped a very busy mailbox
 * - `notification` a change notification (debounced)
 * - `notification-follow-up` a notification arrived while a sync was in flight
 * - `pending-crm-writes` the CRM has writes waiting for this mailbox
 * - `retry-after` throttled with Retry-After (jittered)
 * - `throttle-backoff` throttled without Retry-After: exponential backoff (jittered)
 * - `error-backoff` the sync failed: backoff (SSS: fixed 5 minutes)
 * - `limit-budget` / `limit-mailbox-rate` / `limit-crm-rate` / `limit-concurrency` deferred by a limit
 * - `external-sync` a sync the scheduler did not dispatch was reported
 */
export const SyncReasons = [
  'initial',
  'fixed-interval',
  'sss-busy',
  'sss-typical',
  'sss-idle',
  'rate-allocation',
  'oracle-allocation',
  'max-interval',
  'min-interval',
  'notification',
  'notification-follow-up',
  'pending-crm-writes',
  'retry-after',
  'throttle-backoff',
  'error-backoff',
  'limit-budget',
  'limit-mailbox-rate',
  'limit-crm-rate',
  'limit-concurrency',
  'external-sync',
] as const
/** One of {@link SyncReasons}. */
export type SyncReason = (typeof SyncReasons)[number]

/** One entry of a mailbox's bounded explanation log. */
export interface ExplainEntry {
  /** Virtual time (ms) the entry was written. */
  at: number
  event: ExplainEvent
  reason: SyncReason | null
  /** For `scheduled`/`deferred`: the time the next sync is due. Otherwise null. */
  dueAt: number | null
  /**
   * Event-specific number: `completed` → changes seen; `scheduled` by rate → interval ms; `throttled` → delay ms;
   * `pending-writes` → pending count; `dispatched` → requests reserved. Null when not applicable.
   */
  value: number | null
}

/**
 * Ring buffers for all mailboxes in one flat Float64Array (4 numbers per entry: at, dueAt, value,
 * event·256 + reason+1; slot = handle × capacity + i), so writing an entry allocates nothing and touches
 * one cache line. Materialised into objects only by {@link ExplainLog.read}.
 */
export class ExplainLog {
  private d: Float64Array
  /** head, len per handle */
  private hl: Int32Array

  constructor(
    readonly capacity: number,
    handles = 64,
  ) {
    this.d = new Float64Array(handles * capacity * 4)
    this.hl = new Int32Array(handles * 2)
  }

  /** Forget everything about handle `h` (it is being reused). */
  reset(h: number): void {
    this.ensure(h + 1)
    this.hl[2 * h] = 0
    this.hl[2 * h + 1] = 0
  }

  /** Append an entry (overwrites the oldest when full). `reason` -1 = none; NaN = null for due/value. */
  write(h: number, at: number, event: number, reason: number, dueAt: number, value: number): void {
    const cap = this.capacity
    if (cap === 0) return
    const hl = this.hl
    const head = hl[2 * h] as number
    const s = (h * cap + head) * 4
    const d = this.d
    d[s] = at
    d[s + 1] = dueAt
    d[s + 2] = value
    d[s + 3] = event * 256 + reason + 1
    hl[2 * h] = head + 1 === cap ? 0 : head + 1
    if ((hl[2 * h + 1] as number) < cap) hl[2 * h + 1] = (hl[2 * h + 1] as number) + 1
  }

  /** The entries of handle `h`, oldest first. */
  read(h: number): ExplainEntry[] {
    const cap = this.capacity
    const n = this.hl[2 * h + 1] as number
    const start = ((this.hl[2 * h] as number) - n + cap) % (cap || 1)
    const out: ExplainEntry[] = []
    for (let i = 0; i < n; i++) {
      const s = (h * cap + ((start + i) % cap)) * 4
      const code = this.d[s + 3] as number
      const r = (code % 256) - 1
      const dd = this.d[s + 1] as number
      const v = this.d[s + 2] as number
      out.push({
        at: this.d[s] as number,
        event: ExplainEvents[Math.floor(code / 256)] as ExplainEvent,
        reason: r >= 0 ? (SyncReasons[r] as SyncReason) : null,
        dueAt: Number.isNaN(dd) ? null : dd,
        value: Number.isNaN(v) ? null : v,
      })
    }
    return out
  }

  /** Grow to hold at least `handles` handles. */
  ensure(handles: number): void {
    if (handles * 2 <= this.hl.length) return
    let c = this.hl.length / 2
    while (c < handles) c *= 2
    const d = new Float64Array(c * this.capacity * 4)
    d.set(this.d)
    const hl = new Int32Array(c * 2)
    hl.set(this.hl)
    this.d = d
    this.hl = hl
  }
}
