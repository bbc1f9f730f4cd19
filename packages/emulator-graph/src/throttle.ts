/**
 * Outlook throttling per app + mailbox: a request budget over a sliding window (10,000 per 10 minutes by
 * default) and a concurrency cap (4). O(1) per request: a ring buffer of the last N admission times.
 */
import type { Clock } from './clock.js'

export interface ThrottleLimits {
  requestsPerWindow: number
  windowMs: number
  concurrentRequests: number
  /** Upload budget (request body bytes of POST/PATCH/PUT) per `uploadWindowMs`. */
  uploadBytesPerWindow: number
  uploadWindowMs: number
}

interface Bucket {
  times: Float64Array
  head: number
  count: number
  inFlight: number
  /** Upload history: [time, bytes] pairs, oldest first, plus their running total. */
  uploads: Array<[number, number]>
  uploadTotal: number
}

export type Admission = { ok: true } | { ok: false; reason: 'rate' | 'concurrency'; retryAfterSeconds: number }

export class Throttle {
  private readonly buckets = new Map<string, Bucket>()
  constructor(
    public limits: ThrottleLimits,
    private readonly clock: Clock,
  ) {}

  private bucket(key: string): Bucket {
    let b = this.buckets.get(key)
    if (!b || b.times.length !== this.limits.requestsPerWindow) {
      b = {
        times: new Float64Array(Math.max(1, this.limits.requestsPerWindow)),
        head: 0,
        count: 0,
        inFlight: b?.inFlight ?? 0,
        uploads: [],
        uploadTotal: 0,
      }
      this.buckets.set(key, b)
    }
    return b
  }

  /** Admits a request (counting it) or says why not. Call `release` when an admitted request ends. */
  acquire(key: string, uploadBytes = 0): Admission {
    const b = this.bucket(key)
    const now = this.clock.now()
    if (uploadBytes > 0) {
      const cutoff = now - this.limits.uploadWindowMs
      let drop = 0
      while (drop < b.uploads.length && (b.uploads[drop] as [number, number])[0] <= cutoff) {
        b.uploadTotal -= (b.uploads[drop] as [number, number])[1]
        drop++
      }
      if (drop > 0) b.uploads.splice(0, drop)
      if (b.uploadTotal + uploadBytes > this.limits.uploadBytesPerWindow && b.uploads.length > 0) {
        const oldest = (b.uploads[0] as [number, number])[0]
        const retry = Math.max(0.001, (oldest + this.limits.uploadWindowMs - now) / 1000)
        return { ok: false, reason: 'rate', retryAfterSeconds: Math.round(retry * 1000) / 1000 }
      }
    }
    const cap = b.times.length
    if (b.count === cap) {
      const oldest = b.times[b.head] as number
      if (now - oldest < this.limits.windowMs) {
        const retry = Math.max(0.001, (oldest + this.limits.windowMs - now) / 1000)
        return { ok: false, reason: 'rate', retryAfterSeconds: Math.round(retry * 1000) / 1000 }
      }
    }
    if (b.inFlight >= this.limits.concurrentRequests) {
      return { ok: false, reason: 'concurrency', retryAfterSeconds: 1 }
    }
    b.times[b.head] = now
    b.head = (b.head + 1) % cap
    if (b.count < cap) b.count++
    b.inFlight++
    if (uploadBytes > 0) {
      b.uploads.push([now, uploadBytes])
      b.uploadTotal += uploadBytes
    }
    return { ok: true }
  }

  release(key: string): void {
    const b = this.buckets.get(key)
    if (b && b.inFlight > 0) b.inFlight--
  }

  inFlight(key: string): number {
    return this.buckets.get(key)?.inFlight ?? 0
  }

  inFlightForMailbox(mailboxId: string): number {
    let n = 0
    for (const [k, b] of this.buckets) if (k.endsWith(`|${mailboxId}`)) n += b.inFlight
    return n
  }

  reset(): void {
    this.buckets.clear()
  }
}
