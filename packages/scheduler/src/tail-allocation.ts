/**
 * The poll allocation with change notifications: a tail rule instead of √-rate.
 *
 * With notifications, most changes are synced within seconds of their notification; polls only have to find the
 * changes whose notification was lost and that no later notified sync covers (rate u per mailbox, see the
 * scheduler's `uncovered`). The target is then the tail: the share of such changes older than τ (`tailTargetMs`).
 * A mailbox polled every T ≤ τ leaves none of them older than τ; at the floor (T = maxInterval) a share of about
 * 1 − τ/T does. That share is linear in the poll rate 1/T, so spending the budget to minimise Σ u·max(0, 1 − τ/T)
 * is a fractional knapsack: poll the mailbox-times with the most uncovered changes per extra request at T = τ and
 * leave the rest at the floor — a threshold on u / Δcost, not √-rate.
 *
 * The cost of polling every T counts the polls that notified syncs pre-empt: the next poll is due T after the
 * last sync of any kind, so with notified syncs at rate ν (Poisson) only a share of the intervals ends in a poll.
 */

/**
 * Polls per ms of a mailbox polled `intervalMs` after its last sync while notified syncs come at rate `nu` (per
 * ms): a sync interval ends in a poll with probability e^{−νT} and lasts (1 − e^{−νT})/ν on average, so
 * ν·e^{−νT} / (1 − e^{−νT}) — 1/T without notifications.
 */
export function pollRate(nu: number, intervalMs: number): number {
  const x = nu * intervalMs
  if (x < 1e-9) return 1 / intervalMs
  return nu / Math.expm1(x)
}

/** The two poll intervals the tail rule chooses between, in ms. */
export interface TailIntervals {
  /** Interval of a selected mailbox (a lost change is found within it). */
  tailMs: number
  /** Interval of the others (the max-interval floor). */
  floorMs: number
}

/**
 * Uncovered lost changes per extra request when a mailbox moves from the floor to the tail interval: the rank of
 * the tail rule. `u` uncovered changes per ms, `nu` notified syncs per ms, `cost` requests per sync.
 */
export function tailPriority(u: number, nu: number, cost: number, iv: TailIntervals): number {
  if (!(u > 0)) return 0
  const extra = cost * (pollRate(nu, iv.tailMs) - pollRate(nu, iv.floorMs))
  return extra > 0 ? u / extra : Infinity
}

/** One slot of the planning horizon: its length and, per mailbox, uncovered changes and notified syncs per ms. */
export interface TailSlot {
  dur: number
  uncovered: Float64Array
  notified: Float64Array
}

const BINS = 2048
/** scratch of {@link solveTailThreshold}, reused across solves (solves are synchronous) */
let scratchPriority = new Float64Array(0)
let scratchExtra = new Float64Array(0)

/**
 * The threshold θ on {@link tailPriority} that spends `budget` requests over the slots: every mailbox-slot with
 * priority ≥ θ polls at `tailMs`, the others at `floorMs`. Infinity when even the floor spends the budget; 0 when
 * the budget covers every mailbox-slot with uncovered changes. The priorities are binned on a log scale (2,048
 * bins, O(mailboxes × slots), no sort), and θ is the lower edge of the last bin that fits whole, so the plan
 * spends at most the budget.
 */
export function solveTailThreshold(slots: ReadonlyArray<TailSlot>, cost: Float64Array, budget: number, iv: TailIntervals): number {
  const n = cost.length
  const size = n * slots.length
  if (scratchPriority.length < size) {
    scratchPriority = new Float64Array(size)
    scratchExtra = new Float64Array(size)
  }
  const priority = scratchPriority
  const extra = scratchExtra
  let floorSpend = 0
  let lo = Infinity
  let hi = 0
  for (let j = 0; j < slots.length; j++) {
    const { dur, uncovered, notified } = slots[j] as TailSlot
    for (let i = 0; i < n; i++) {
      const k = j * n + i
      const c = cost[i] as number
      priority[k] = 0
      if (c <= 0) continue
      const nu = notified[i] as number
      const atFloor = pollRate(nu, iv.floorMs)
      floorSpend += dur * c * atFloor
      const u = uncovered[i] as number
      if (!(u > 0)) continue
      const more = c * (pollRate(nu, iv.tailMs) - atFloor)
      const p = more > 0 ? u / more : Infinity
      priority[k] = p
      extra[k] = dur * Math.max(0, more)
      if (Number.isFinite(p)) {
        if (p < lo) lo = p
        if (p > hi) hi = p
      }
    }
  }
  if (floorSpend >= budget) return Infinity
  if (hi === 0) return Infinity
  // extra requests per log-priority bin (bin BINS−1 holds the top; infinite priorities cost nothing)
  const logLo = Math.log(lo)
  const span = Math.max(Math.log(hi) - logLo, 1e-12)
  const extraIn = new Float64Array(BINS)
  for (let k = 0; k < size; k++) {
    const p = priority[k] as number
    if (!(p > 0) || !Number.isFinite(p)) continue
    const b = Math.min(BINS - 1, Math.floor(((Math.log(p) - logLo) / span) * BINS))
    extraIn[b] = (extraIn[b] as number) + (extra[k] as number)
  }
  let spend = floorSpend
  for (let b = BINS - 1; b >= 0; b--) {
    spend += extraIn[b] as number
    if (spend > budget) return b === BINS - 1 ? Infinity : Math.exp(logLo + ((b + 1) / BINS) * span)
  }
  return 0
}
