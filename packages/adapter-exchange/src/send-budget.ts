/**
 * A client-side budget for the Exchange Online sending limits of one mailbox (protocols.md §2.2):
 * **30 messages per minute** and **10,000 recipients per day**, as rolling windows. `MailSender` asks
 * it before every submission so a server stays inside the limits instead of learning them from 429s.
 * It is in-memory: share one instance per mailbox within a process (a sync server that runs a
 * mailbox on one node at a time needs nothing more).
 */
import { ValidationError } from '@concord/engine'
import { z } from 'zod'

export const SendLimitsSchema = z.strictObject({
  messagesPerMinute: z.number().int().min(1).max(10_000).default(30),
  recipientsPerDay: z.number().int().min(1).max(1_000_000).default(10_000),
})
export type SendLimits = z.output<typeof SendLimitsSchema>
export type SendLimitsInput = z.input<typeof SendLimitsSchema>

const MINUTE_MS = 60_000
const DAY_MS = 86_400_000

export type Reservation = { ok: true; release(): void } | { ok: false; retryAfterMs: number; reason: 'messagesPerMinute' | 'recipientsPerDay' }

export class SendBudget {
  readonly limits: SendLimits
  private messages: number[] = []
  private recipients: Array<{ at: number; n: number }> = []

  constructor(limits: SendLimitsInput = {}, private readonly now: () => number = Date.now) {
    const r = SendLimitsSchema.safeParse(limits)
    if (!r.success) throw ValidationError.fromZod('send limits', r.error)
    this.limits = r.data
  }

  private prune(now: number): void {
    this.messages = this.messages.filter((t) => t > now - MINUTE_MS)
    this.recipients = this.recipients.filter((e) => e.at > now - DAY_MS)
  }

  /** Recipients counted in the last 24 hours and messages in the last minute. */
  usage(): { messagesLastMinute: number; recipientsLastDay: number } {
    this.prune(this.now())
    return { messagesLastMinute: this.messages.length, recipientsLastDay: this.recipients.reduce((n, e) => n + e.n, 0) }
  }

  /**
   * Reserves one message to `recipients` recipients. When over a limit, returns how long to wait.
   * `release()` gives the reservation back (the submission did not happen).
   */
  reserve(recipients: number): Reservation {
    const now = this.now()
    this.prune(now)
    if (!Number.isInteger(recipients) || recipients < 1) throw new ValidationError('send reservation', [{ path: 'recipients', message: `must be a positive integer, got ${recipients}` }])
    if (recipients > this.limits.recipientsPerDay) throw new ValidationError('send reservation', [{ path: 'recipients', message: `one message to ${recipients} recipients exceeds the daily limit of ${this.limits.recipientsPerDay}` }])
    if (this.messages.length >= this.limits.messagesPerMinute) {
      return { ok: false, reason: 'messagesPerMinute', retryAfterMs: Math.max(1, (this.messages[0] as number) + MINUTE_MS - now) }
    }
    const used = this.recipients.reduce((n, e) => n + e.n, 0)
    if (used + recipients > this.limits.recipientsPerDay) {
      let freed = 0
      let at = now + DAY_MS
      for (const e of this.recipients) {
        freed += e.n
        if (used - freed + recipients <= this.limits.recipientsPerDay) {
          at = e.at + DAY_MS
          break
        }
      }
      return { ok: false, reason: 'recipientsPerDay', retryAfterMs: Math.max(1, at - now) }
    }
    this.messages.push(now)
    const entry = { at: now, n: recipients }
    this.recipients.push(entry)
    let released = false
    return {
      ok: true,
      release: () => {
        if (released) return
        released = true
        const i = this.messages.indexOf(now)
        if (i >= 0) this.messages.splice(i, 1)
        this.recipients = this.recipients.filter((e) => e !== entry)
      },
    }
  }
}
