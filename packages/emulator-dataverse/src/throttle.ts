import { DataverseError } from './errors.js'

export interface ThrottleLimits {
  /** Requests per window per user (Dataverse: 6,000 per 300 s). */
  requestsPerWindow: number
  windowMs: number
  /** Combined execution time per window (Dataverse: 1,200,000 ms). */
  executionMsPerWindow: number
  /** Concurrent requests per user (Dataverse: 52). */
  concurrent: number
}

export const DEFAULT_LIMITS: ThrottleLimits = {
  requestsPerWindow: 6000,
  windowMs: 300_000,
  executionMsPerWindow: 1_200_000,
  concurrent: 52,
}

interface CallerState {
  starts: number[]
  head: number
  exec: Array<[number, number]>
  execHead: number
  execTotal: number
  inFlight: number
  total: number
  throttled: number
}

export interface CallerStats {
  caller: string
  total: number
  inWindow: number
  inFlight: number
  throttled: number
}

/** Sliding-window service protection limits per user. */
export class Throttle {
  limits: ThrottleLimits
  private readonly callers = new Map<string, CallerState>()
  /** Remaining budget of the caller admitted last (for x-ms-ratelimit-* response headers). */
  lastRemaining = { requests: 0, executionMs: 0 }

  constructor(limits: Partial<ThrottleLimits> = {}, private readonly now: () => number = Date.now) {
    this.limits = { ...DEFAULT_LIMITS, ...limits }
  }

  private state(caller: string): CallerState {
    let s = this.callers.get(caller)
    if (!s) this.callers.set(caller, (s = { starts: [], head: 0, exec: [], execHead: 0, execTotal: 0, inFlight: 0, total: 0, throttled: 0 }))
    return s
  }

  private prune(s: CallerState, now: number): void {
    const from = now - this.limits.windowMs
    while (s.head < s.starts.length && (s.starts[s.head] as number) <= from) s.head++
    if (s.head > 4096 && s.head * 2 > s.starts.length) {
      s.starts = s.starts.slice(s.head)
      s.head = 0
    }
    while (s.execHead < s.exec.length && (s.exec[s.execHead] as [number, number])[0] <= from) {
      s.execTotal -= (s.exec[s.execHead] as [number, number])[1]
      s.execHead++
    }
    if (s.execHead > 4096 && s.execHead * 2 > s.exec.length) {
      s.exec = s.exec.slice(s.execHead)
      s.execHead = 0
    }
  }

  /** Admit a request or throw a 429. Returns a release function to call when the request ends. */
  admit(caller: string): () => void {
    const now = this.now()
    const s = this.state(caller)
    this.prune(s, now)
    if (s.inFlight >= this.limits.concurrent) {
      s.throttled++
      throw new DataverseError('ConcurrencyLimitExceeded', 429, `Number of concurrent requests exceeded the limit of ${this.limits.concurrent}.`, {
        headers: { 'Retry-After': '1' },
      })
    }
    if (s.starts.length - s.head >= this.limits.requestsPerWindow) {
      s.throttled++
      const oldest = s.starts[s.head] as number
      const retry = Math.max(1, Math.ceil((oldest + this.limits.windowMs - now) / 1000))
      throw new DataverseError(
        'RequestLimitExceeded',
        429,
        `Number of requests exceeded the limit of ${this.limits.requestsPerWindow} over time window of ${Math.round(this.limits.windowMs / 1000)} seconds.`,
        { headers: { 'Retry-After': String(retry) } },
      )
    }
    if (s.execTotal >= this.limits.executionMsPerWindow) {
      s.throttled++
      const oldest = (s.exec[s.execHead] as [number, number] | undefined)?.[0] ?? now
      const retry = Math.max(1, Math.ceil((oldest + this.limits.windowMs - now) / 1000))
      throw new DataverseError(
        'ExecutionTimeLimitExceeded',
        429,
        `Combined execution time of incoming requests exceeded limit of ${this.limits.executionMsPerWindow} milliseconds over time window of ${Math.round(this.limits.windowMs / 1000)} seconds.`,
        { headers: { 'Retry-After': String(retry) } },
      )
    }
    s.starts.push(now)
    s.total++
    s.inFlight++
    this.lastRemaining = {
      requests: this.limits.requestsPerWindow - (s.starts.length - s.head),
      executionMs: Math.max(0, this.limits.executionMsPerWindow - s.execTotal),
    }
    let released = false
    return () => {
      if (released) return
      released = true
      s.inFlight--
      const end = this.now()
      const ms = Math.max(0, end - now)
      s.exec.push([end, ms])
      s.execTotal += ms
    }
  }

  stats(): CallerStats[] {
    const now = this.now()
    return [...this.callers].map(([caller, s]) => {
      this.prune(s, now)
      return { caller, total: s.total, inWindow: s.starts.length - s.head, inFlight: s.inFlight, throttled: s.throttled }
    })
  }

  reset(): void {
    this.callers.clear()
  }
}
