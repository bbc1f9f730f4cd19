/**
 * A conservative sliding-window request counter with O(1) memory: the window is split into `buckets`
 * slots and every slot that overlaps `(now - windowMs, now]` counts in full. The counted total is therefore
 * never below the exact sliding-window count, so admitting a request only when `count + n <= limit`
 * guarantees that **no** exact window of length `windowMs` ever holds more than `limit` requests.
 */
export class SlidingWindow {
  private readonly counts: Float64Array
  private readonly epochs: Float64Array
  private readonly bucketMs: number
  private total = 0
  private syncedEpoch = Number.NaN

  constructor(
    public limit: number,
    readonly windowMs: number,
    readonly buckets = 60,
  ) {
    this.bucketMs = windowMs / buckets
    // one spare slot: a window of length windowMs overlaps up to buckets+1 slots
    this.counts = new Float64Array(buckets + 1)
    this.epochs = new Float64Array(buckets + 1).fill(-1)
  }

  /**
   * Requests counted (conservatively) in the window ending at `now`. `now` must not decrease between
   * calls (the scheduler enforces monotonic virtual time); the total is cached per bucket epoch.
   */
  count(now: number): number {
    const cur = Math.floor(now / this.bucketMs)
    if (cur !== this.syncedEpoch) {
      const oldest = Math.floor((now - this.windowMs) / this.bucketMs)
      let sum = 0
      for (let i = 0; i < this.counts.length; i++) {
        const e = this.epochs[i] as number
        if (e >= oldest && e <= cur) sum += this.counts[i] as number
        else if (e >= 0 && e < oldest) {
          this.epochs[i] = -1
          this.counts[i] = 0
        }
      }
      this.total = sum
      this.syncedEpoch = cur
    }
    return this.total
  }

  /** Whether `n` more requests fit at `now`. */
  fits(now: number, n: number): boolean {
    return this.count(now) + n <= this.limit
  }

  /** Record `n` requests at `now` (no limit check; call {@link fits} first). */
  add(now: number, n: number): void {
    if (n <= 0) return
    const e = Math.floor(now / this.bucketMs)
    const i = e % this.counts.length
    this.count(now)
    if (this.epochs[i] !== e) {
      this.epochs[i] = e
      this.counts[i] = 0
    }
    this.counts[i] = (this.counts[i] as number) + n
    this.total += n
  }

  /**
   * The earliest time ≥ `now` at which `n` more requests fit, assuming nothing else is added
   * (`Infinity` if `n` exceeds the limit on its own).
   */
  nextFitAt(now: number, n: number): number {
    if (n > this.limit) return Infinity
    if (this.fits(now, n)) return now
    // buckets expire in epoch order; walk them oldest first
    const live: Array<[number, number]> = []
    const cur = Math.floor(now / this.bucketMs)
    const oldest = Math.floor((now - this.windowMs) / this.bucketMs)
    for (let i = 0; i < this.counts.length; i++) {
      const e = this.epochs[i] as number
      if (e >= oldest && e <= cur) live.push([e, this.counts[i] as number])
    }
    live.sort((a, b) => a[0] - b[0])
    let total = live.reduce((s, x) => s + x[1], 0)
    for (const [e, c] of live) {
      total -= c
      if (total + n <= this.limit) {
        // bucket e stops overlapping once (t - windowMs) falls in bucket e+1
        return Math.max(now, (e + 1) * this.bucketMs + this.windowMs)
      }
    }
    return now
  }
}
