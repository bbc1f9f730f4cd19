/** Fault-injection and observation state, driven by the `/_emulator` API and the programmatic handle. */

export interface ForcedFault {
  status: 429 | 503 | 504
  remaining: number
  retryAfterSeconds: number | undefined
  /** Mailbox id; undefined = any Graph request. */
  mailboxId: string | undefined
}

export type NotificationMode = 'deliver' | 'drop' | 'delay'

export class Faults {
  extraLatencyMs = 0
  forced: ForcedFault[] = []
  emptyPages = 0
  duplicates = false
  shuffle = false
  notificationMode: NotificationMode = 'deliver'
  notificationDelayMs = 0
  /** In drop mode, only drop this many (undefined = all until the mode changes). */
  dropRemaining: number | undefined = undefined
  /** Send a `missed` lifecycle notification when a notification is dropped. */
  missedOnDrop = false
  /** When set, a 410 SyncStateNotFound also carries a Location header with the initial delta URL. */
  goneWithLocation = true

  /** While set, Graph responses are held back (in flight) until `openGate` is called. */
  gate: Promise<void> | undefined = undefined
  private releaseGate: (() => void) | undefined = undefined

  closeGate(): void {
    if (this.gate) return
    this.gate = new Promise((resolve) => {
      this.releaseGate = resolve
    })
  }

  openGate(): void {
    this.releaseGate?.()
    this.gate = undefined
    this.releaseGate = undefined
  }

  takeForced(mailboxId: string | undefined): ForcedFault | undefined {
    const idx = this.forced.findIndex((f) => f.remaining > 0 && (f.mailboxId === undefined || f.mailboxId === mailboxId))
    if (idx < 0) return undefined
    const f = this.forced[idx] as ForcedFault
    f.remaining--
    if (f.remaining <= 0) this.forced.splice(idx, 1)
    return f
  }

  reset(): void {
    this.openGate()
    this.extraLatencyMs = 0
    this.forced = []
    this.emptyPages = 0
    this.duplicates = false
    this.shuffle = false
    this.notificationMode = 'deliver'
    this.notificationDelayMs = 0
    this.dropRemaining = undefined
    this.missedOnDrop = false
  }
}

export interface MailboxStats {
  requests: number
  throttled: number
  byStatus: Record<string, number>
  maxInFlight: number
}

export interface RequestLogEntry {
  at: string
  method: string
  path: string
  status: number
  mailbox: string | undefined
  inBatch: boolean
}

export class Stats {
  total = 0
  readonly byMailbox = new Map<string, MailboxStats>()
  private readonly log: RequestLogEntry[] = []
  private head = 0
  constructor(private readonly logSize = 1000) {}

  record(entry: RequestLogEntry, throttled: boolean, inFlight: number): void {
    this.total++
    if (entry.mailbox !== undefined) {
      let s = this.byMailbox.get(entry.mailbox)
      if (!s) {
        s = { requests: 0, throttled: 0, byStatus: {}, maxInFlight: 0 }
        this.byMailbox.set(entry.mailbox, s)
      }
      s.requests++
      if (throttled) s.throttled++
      s.byStatus[entry.status] = (s.byStatus[entry.status] ?? 0) + 1
      if (inFlight > s.maxInFlight) s.maxInFlight = inFlight
    }
    // ring buffer: O(1) per request
    if (this.log.length < this.logSize) this.log.push(entry)
    else {
      this.log[this.head] = entry
      this.head = (this.head + 1) % this.logSize
    }
  }

  /** The request log, oldest first. */
  entries(): RequestLogEntry[] {
    return [...this.log.slice(this.head), ...this.log.slice(0, this.head)]
  }

  reset(): void {
    this.total = 0
    this.byMailbox.clear()
    this.log.length = 0
    this.head = 0
  }
}
