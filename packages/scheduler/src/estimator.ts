import type { AdaptiveOptions } from './config.js'
import { float64, int32, workArray } from './work-array.js'

const DAY = 86_400_000

/**
 * A diurnal profile shared by all mailboxes: g(t) ≥ 0 with mean 1 over a period, learned online from the
 * change counts of all polls (each poll adds its changes and its exposure time to the slot it ended in).
 * Slots are shrunk toward the overall rate so sparse slots stay near 1. Each time a new period reaches a
 * slot, its old counts are multiplied by `decay` (exponential forgetting per period).
 */
export class DiurnalProfile {
  readonly slots: number
  private readonly c: Float64Array
  private readonly e: Float64Array
  private readonly periodIdx: Float64Array
  private readonly g: Float64Array
  private readonly slotMs: number
  private readonly periodMs: number
  private readonly origin: number
  private readonly decay: number
  private readonly shrinkSlots: number

  constructor(opts: Pick<AdaptiveOptions, 'profileSlotMs' | 'profilePeriodMs' | 'profileOriginMs' | 'profileDecay'> & { profileShrinkSlots?: number | undefined }) {
    this.slotMs = opts.profileSlotMs
    this.periodMs = opts.profilePeriodMs
    this.origin = opts.profileOriginMs
    this.decay = opts.profileDecay
    this.shrinkSlots = opts.profileShrinkSlots ?? 2
    this.slots = Math.max(1, Math.round(this.periodMs / this.slotMs))
    this.c = new Float64Array(this.slots)
    this.e = new Float64Array(this.slots)
    this.periodIdx = new Float64Array(this.slots).fill(-Infinity)
    this.g = new Float64Array(this.slots).fill(1)
  }

  /** Slot index of virtual time `t`. */
  slotOf(t: number): number {
    const x = (t - this.origin) / this.slotMs
    const k = Math.floor(x) % this.slots
    return k < 0 ? k + this.slots : k
  }

  /** The current profile value at `t` (1 until learned). Updated only by {@link recompute}. */
  at(t: number): number {
    return this.g[this.slotOf(t)] as number
  }

  /** Record `changes` seen over `exposureMs` of one mailbox, ending at `t`. */
  observe(t: number, changes: number, exposureMs: number): void {
    const k = this.slotOf(t)
    const p = Math.floor((t - this.origin) / this.periodMs)
    const last = this.periodIdx[k] as number
    if (p > last) {
      if (last !== -Infinity) {
        const f = Math.pow(this.decay, p - last)
        this.c[k] = (this.c[k] as number) * f
        this.e[k] = (this.e[k] as number) * f
      }
      this.periodIdx[k] = p
    }
    this.c[k] = (this.c[k] as number) + changes
    this.e[k] = (this.e[k] as number) + exposureMs
  }

  /** Re-derive g from the counts (cheap: one pass over the slots). */
  recompute(): void {
    let cs = 0
    let es = 0
    for (let k = 0; k < this.slots; k++) {
      cs += this.c[k] as number
      es += this.e[k] as number
    }
    if (es <= 0 || cs <= 0) {
      this.g.fill(1)
      return
    }
    const overall = cs / es
    // shrink each slot toward the overall rate with the weight of `profileShrinkSlots` mailbox-slots of exposure
    const s = this.shrinkSlots * this.slotMs
    let mean = 0
    for (let k = 0; k < this.slots; k++) {
      const r = ((this.c[k] as number) + overall * s) / ((this.e[k] as number) + s)
      this.g[k] = r
      mean += r
    }
    mean /= this.slots
    for (let k = 0; k < this.slots; k++) this.g[k] = (this.g[k] as number) / mean
  }

  /** A copy of the current profile (mean 1). */
  values(): number[] {
    return Array.from(this.g)
  }
}

/*
 * Per-mailbox change-rate estimate: a gamma-Poisson posterior with exponential forgetting on two
 * timescales, with the diurnal profile as exposure offset (so the estimate is a *level* a with
 * λ(t) ≈ a·g(t)). The long timescale gives the level; the short one catches bursts, and the effective
 * level adds `burstWeight` of the short-term excess. Rates are in changes per ms. The state is four
 * numbers at `f[o..o+4)` — inside the mailbox's row, so a sync reaches it without a pointer to follow:
 * decayed changes and exposure on the long timescale (`o`, `o + 1`), then on the short one (`o + 2`, `o + 3`).
 */

/** Add an observation of `changes` over `dtMs` with profile value `g` during it to the estimate at `f[o]`. */
export function observeRate(f: Float64Array, o: number, changes: number, dtMs: number, g: number, opts: AdaptiveOptions): void {
  if (dtMs <= 0) {
    f[o] = f[o]! + changes
    f[o + 2] = f[o + 2]! + changes
    return
  }
  // 2^(−dt/halfLife) as e^(−dt·ln2/halfLife): Math.exp costs about a tenth of Math.pow, and this runs every sync
  const dL = Math.exp((-dtMs * Math.LN2) / opts.longHalfLifeMs)
  const dS = Math.exp((-dtMs * Math.LN2) / opts.shortHalfLifeMs)
  const u = g * dtMs
  f[o] = f[o]! * dL + changes
  f[o + 1] = f[o + 1]! * dL + u
  f[o + 2] = f[o + 2]! * dS + changes
  f[o + 3] = f[o + 3]! * dS + u
}

/** The long-timescale level of the estimate at `f[o]` (posterior mean with the configured prior), changes per ms at g = 1. */
export function rateLevel(f: Float64Array, o: number, opts: AdaptiveOptions): number {
  const prior = opts.priorChangesPerDay / DAY
  return (f[o]! + prior * opts.priorStrengthMs) / (f[o + 1]! + opts.priorStrengthMs)
}

/** Level plus `burstWeight` × the short-term excess over it. */
export function effectiveRate(f: Float64Array, o: number, opts: AdaptiveOptions): number {
  const l = rateLevel(f, o, opts)
  if (opts.burstWeight === 0) return l
  const ps = opts.shortHalfLifeMs
  const short = (f[o + 2]! + l * ps) / (f[o + 3]! + ps)
  return short > l ? l + opts.burstWeight * (short - l) : l
}

/**
 * Scratch arrays reused by every solve: a solve allocates no large typed array (those are external memory, and
 * allocating a few per plan made the GC re-mark the whole heap of a simulation holding a large workload).
 * Solves are synchronous, so one set of scratch arrays serves all schedulers of the process.
 */
const scratchF: Float64Array[] = []
const scratchI: Int32Array[] = []
let usedF = 0
let usedI = 0
const scratchFloat = (len: number): Float64Array => workArray(scratchF, usedF++, len, float64)
const scratchInt = (len: number): Int32Array => workArray(scratchI, usedI++, len, int32)

/**
 * Solve the √-rate allocation under a budget (water-filling with a floor and a ceiling).
 * Given, for each time slot j of the planning horizon (length `durs[j]` ms), the per-mailbox weights
 * `w[j][i]` = √(λᵢ(tⱼ)/costᵢ) (times the slot's optional `scale`) and costs `cost[i]` (requests per sync), find the scale y such that
 * Σⱼ durⱼ Σᵢ costᵢ·clamp(wⱼᵢ·y, lo, hi) = budget, where lo = 1/maxInterval and hi = 1/minInterval
 * (polls per ms). Returns y (0 if even the floor exceeds the budget; the hard limiter then decides).
 * `hint` (e.g. the previous solution) only speeds up the search.
 *
 * Why √: minimising mean detection delay Σλᵢ/(2fᵢ) / Σλᵢ subject to Σcostᵢfᵢ = B gives, by Lagrange,
 * λᵢ/(2fᵢ²) = μ·costᵢ, i.e. fᵢ ∝ √(λᵢ/costᵢ) (performance.md §6a); the clamp is the KKT solution with
 * box constraints.
 */
export function solveSqrtAllocation(
  slots: ReadonlyArray<{ dur: number; weights: Float64Array; scale?: number }>,
  cost: Float64Array,
  budget: number,
  lo: number,
  hi: number,
  hint?: number,
): number {
  usedF = 0
  usedI = 0
  // per distinct weights array (slots may share one with different scales): weights sorted with prefix sums of cost and cost·w, so spend(y) costs O(log n) per slot
  const cache = new Map<Float64Array, { ws: Float64Array; pc: Float64Array; pcw: Float64Array }>()
  // every mailbox costing the same (the usual case): a plain numeric sort of the weights suffices
  let uniformCost: number | undefined = cost.length > 0 ? (cost[0] as number) : undefined
  for (let i = 1; i < cost.length && uniformCost !== undefined; i++) if (cost[i] !== uniformCost) uniformCost = undefined
  // consecutive slots often hold equal weights (the oracle's rates are hourly, its slots shorter): sort those once
  let lastWeights: Float64Array | undefined
  let lastPrepared: { ws: Float64Array; pc: Float64Array; pcw: Float64Array } | undefined
  const prepare = (weights: Float64Array) => {
    const hit = cache.get(weights) ?? (lastWeights && lastPrepared && sameValues(lastWeights, weights) ? lastPrepared : undefined)
    if (hit) {
      cache.set(weights, hit)
      return hit
    }
    const out = prepareSorted(weights)
    lastWeights = weights
    lastPrepared = out
    return out
  }
  const prepareSorted = (weights: Float64Array) => {
    const n = weights.length
    if (uniformCost !== undefined && n === cost.length) {
      const c = uniformCost
      const ws = scratchFloat(n)
      ws.set(weights)
      ws.sort()
      const pc = scratchFloat(n + 1)
      const pcw = scratchFloat(n + 1)
      pc[0] = 0
      pcw[0] = 0
      for (let r = 0; r < n; r++) {
        pc[r + 1] = (pc[r] as number) + c
        pcw[r + 1] = (pcw[r] as number) + c * (ws[r] as number)
      }
      const out = { ws, pc, pcw }
      cache.set(weights, out)
      return out
    }
    const idx = scratchInt(n)
    for (let i = 0; i < n; i++) idx[i] = i
    idx.sort((a, b) => (weights[a] as number) - (weights[b] as number))
    const ws = scratchFloat(n)
    const pc = scratchFloat(n + 1)
    const pcw = scratchFloat(n + 1)
    pc[0] = 0
    pcw[0] = 0
    for (let r = 0; r < n; r++) {
      const i = idx[r] as number
      const w = weights[i] as number
      const c = cost[i] as number
      ws[r] = w
      pc[r + 1] = (pc[r] as number) + c
      pcw[r + 1] = (pcw[r] as number) + c * w
    }
    const out = { ws, pc, pcw }
    cache.set(weights, out)
    return out
  }
  // (the bisection moves y a little per step: each slot's search starts where the previous one ended)
  const prepared = slots.map(({ dur, weights, scale }) => ({ dur, scale: scale ?? 1, ...prepare(weights), hintA: weights.length >> 1, hintB: weights.length >> 1 }))
  const spend = (y0: number): number => {
    let total = 0
    for (const slot of prepared) {
      const { dur, scale, ws, pc, pcw } = slot
      const n = ws.length
      if (n === 0) continue
      const y = y0 * scale
      if (y <= 0) {
        total += dur * lo * (pc[n] as number)
        continue
      }
      const a = (slot.hintA = lowerBoundFrom(ws, lo / y, slot.hintA)) // below: at the floor
      const b = (slot.hintB = lowerBoundFrom(ws, hi / y, slot.hintB)) // from b on: at the ceiling
      const floorPart = lo * (pc[a] as number)
      const midPart = y * ((pcw[b] as number) - (pcw[a] as number))
      const above = (pc[n] as number) - (pc[b] as number)
      const ceilPart = above > 0 ? hi * above : 0
      total += dur * (floorPart + midPart + ceilPart)
    }
    return total
  }
  if (spend(0) >= budget) return 0
  // bracket around the previous solution (plans change slowly), then geometric bisection to 1e-11
  const start = hint !== undefined && hint > 0 && Number.isFinite(hint) ? hint : 1e-3
  let yLo = start / 2
  let yHi = start * 2
  for (let i = 0; i < 60 && spend(yHi) <= budget; i++) {
    yLo = yHi
    yHi *= 16
  }
  if (spend(yHi) <= budget) return yHi
  for (let i = 0; i < 60 && spend(yLo) > budget; i++) {
    yHi = yLo
    yLo /= 16
  }
  if (spend(yLo) > budget) return yLo
  while (yHi / yLo > 1 + 1e-11) {
    const mid = Math.sqrt(yLo * yHi)
    if (spend(mid) > budget) yHi = mid
    else yLo = mid
  }
  return yLo
}

/** Whether two arrays hold the same values (bit for bit, so NaN never matches). */
function sameValues(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * The first index of sorted `a` whose value is not below `x` (`a.length` if none), found by galloping from `hint`
 * (near the answer, it touches a few neighbouring elements instead of a binary search's spread-out ones).
 */
export function lowerBoundFrom(a: Float64Array, x: number, hint: number): number {
  const n = a.length
  let l: number
  let h: number
  if (hint < n && (a[hint] as number) < x) {
    // the answer is above hint
    l = hint + 1
    h = l
    let step = 1
    while (h < n && (a[h] as number) < x) {
      l = h + 1
      h = l + step
      step *= 2
    }
    if (h > n) h = n
  } else {
    // the answer is at most hint
    h = Math.min(hint, n)
    let probe = h - 1
    let step = 1
    while (probe >= 0 && !((a[probe] as number) < x)) {
      h = probe
      probe = h - step
      step *= 2
    }
    l = probe < 0 ? 0 : probe + 1
  }
  while (l < h) {
    const m = (l + h) >> 1
    if ((a[m] as number) < x) l = m + 1
    else h = m
  }
  return l
}
