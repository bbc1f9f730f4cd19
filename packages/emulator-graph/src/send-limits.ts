/**
 * Exchange Online sending limits per mailbox (protocols.md §2.2): 30 messages per minute and 10,000
 * recipients per day (rolling windows). A submission over either limit is refused with 429
 * `ErrorSubmissionQuotaExceeded` and a `Retry-After` (seconds until the window has room again) — see
 * the README for why this shape was chosen.
 */
import type { Clock } from './clock.js'
import { GraphHttpError } from './errors.js'

export interface SendLimitOptions {
  messagesPerMinute: number
  recipientsPerDay: number
}

const MINUTE_MS = 60_000
const DAY_MS = 86_400_000

interface MailboxWindow {
  /** Submission times in the last minute. */
  messages: number[]
  /** [time, recipients] of submissions in the last 24 hours. */
  recipients: Array<[number, number]>
}

export class SendLimits {
  private readonly windows = new Map<string, MailboxWindow>()
  /** Submissions refused (for tests and stats). */
  refused = 0

  constructor(
    private readonly options: SendLimitOptions,
    private readonly clock: Clock,
  ) {}

  /** Records a submission of `recipients` recipients by `mailboxId`, or throws the 429 when over a limit. */
  admit(mailboxId: string, recipients: number): void {
    const now = this.clock.now()
    const w = this.windows.get(mailboxId) ?? { messages: [], recipients: [] }
    this.windows.set(mailboxId, w)
    w.messages = w.messages.filter((t) => t > now - MINUTE_MS)
    w.recipients = w.recipients.filter(([t]) => t > now - DAY_MS)
    if (w.messages.length >= this.options.messagesPerMinute) {
      const retryMs = (w.messages[0] as number) + MINUTE_MS - now
      throw this.refuse(retryMs, `The mailbox has submitted ${w.messages.length} messages in the last minute; the limit is ${this.options.messagesPerMinute}.`)
    }
    const used = w.recipients.reduce((n, [, r]) => n + r, 0)
    if (used + recipients > this.options.recipientsPerDay) {
      // Room comes back when enough of the oldest submissions leave the 24-hour window.
      let freed = 0
      let at = now + DAY_MS
      for (const [t, r] of w.recipients) {
        freed += r
        if (used - freed + recipients <= this.options.recipientsPerDay) {
          at = t + DAY_MS
          break
        }
      }
      throw this.refuse(at - now, `The mailbox has sent to ${used} recipients in the last 24 hours; ${recipients} more would exceed the limit of ${this.options.recipientsPerDay}.`)
    }
    w.messages.push(now)
    w.recipients.push([now, recipients])
  }

  private refuse(retryMs: number, detail: string): GraphHttpError {
    this.refused++
    return new GraphHttpError(429, 'ErrorSubmissionQuotaExceeded', `The message couldn't be sent because the sender's submission quota was exceeded. Please try again later. ${detail}`, {
      headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryMs / 1000))) },
    })
  }

  reset(): void {
    this.windows.clear()
    this.refused = 0
  }
}
