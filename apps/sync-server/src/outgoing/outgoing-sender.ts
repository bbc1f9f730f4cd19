/**
 * Outgoing email (server-side sync's "Pending Send" scan): CRM emails marked to send go out through the
 * owner's mailbox, once. The Message-ID is derived from the CRM email id before anything is sent and
 * recorded in the server's journal, the CRM row is claimed (Pending Send → Sending, with If-Match so
 * two servers cannot both claim it), and the sender checks Sent Items for that Message-ID before
 * sending — so a crash at any point neither loses the email nor sends it twice. Only owners allowed to
 * send from the CRM send; Exchange's sending limits defer the rest to the next scan.
 */
import type { OutgoingEmailQueue, PendingEmail } from '@concord/adapter-crm'
import { MailSender, type OutgoingMail } from '@concord/adapter-exchange'
import { SyncError, ThrottledError, type Logger } from '@concord/engine'
import { AlertCodes, type MailboxDirectoryPort } from '../mailbox/directory.js'
import type { MailboxWorker } from '../mailbox/mailbox-worker.js'
import type { ServerMetrics } from '../metrics.js'
import type { ServerStateStore } from '../state-store.js'
import { type OutgoingMailPort, SmtpMailSender } from './smtp-sender.js'

export interface OutgoingResult {
  sent: number
  failed: number
  deferred: boolean
}

export interface OutgoingDeps {
  queue: OutgoingEmailQueue
  state: ServerStateStore
  directory: MailboxDirectoryPort
  metrics: ServerMetrics
  logger: Logger
  now: () => number
}

/** The Message-ID a CRM email is sent with: stable, so a retry after a crash finds the first attempt. */
export function messageIdFor(emailId: string, mailbox: string): string {
  const domain = mailbox.split('@')[1] ?? 'concord.invalid'
  return `<crm.${emailId.toLowerCase()}@${domain}>`
}

function mailOf(email: PendingEmail, internetMessageId: string): OutgoingMail {
  const addresses = (list: PendingEmail['to']) => list.flatMap((p) => (p.address ? [{ address: p.address }] : []))
  return { internetMessageId, crmEmailId: email.emailId, subject: email.subject, body: email.body, bodyType: 'html', to: addresses(email.to), cc: addresses(email.cc), bcc: addresses(email.bcc) }
}

export class OutgoingEmailSender {
  private readonly senders = new Map<string, OutgoingMailPort>()
  private readonly lastScan = new Map<string, number>()

  constructor(private readonly deps: OutgoingDeps) {}

  /** Whether the mailbox's next scan is due (`intervalMs` after the previous one). */
  due(mailboxId: string, intervalMs: number): boolean {
    return this.deps.now() - (this.lastScan.get(mailboxId) ?? -Infinity) >= intervalMs
  }

  async process(worker: MailboxWorker, signal?: AbortSignal): Promise<OutgoingResult> {
    const { mailboxId, ownerId, email: address } = worker.descriptor
    this.lastScan.set(mailboxId, this.deps.now())
    const result: OutgoingResult = { sent: 0, failed: 0, deferred: false }
    // Exchange: Graph sendMail (checks Sent Items first); imap/pop3: SMTP with a send ledger.
    const sender = this.senders.get(mailboxId) ?? (worker.exchange ? new MailSender(worker.exchange) : new SmtpMailSender(worker.mailServer!, address))
    this.senders.set(mailboxId, sender)
    // First finish what a crash interrupted, then the new Pending Send emails.
    const unfinished = await this.deps.state.unfinishedSends(mailboxId)
    const pending = await this.deps.queue.pendingSends({ ownerId, signal })
    if (pending.length > 0 && !(await this.deps.queue.canSendFromCrm(ownerId, signal))) {
      for (const email of pending) await this.fail(mailboxId, email.emailId, 'the owner may not send email from the CRM', email.etag)
      return { ...result, failed: pending.length }
    }
    const jobs: Array<{ emailId: string; mail: OutgoingMail; etag?: string | undefined }> = unfinished.map((e) => ({ emailId: e.emailId, mail: e.mail as OutgoingMail }))
    for (const email of pending) if (!unfinished.some((u) => u.emailId === email.emailId)) jobs.push({ emailId: email.emailId, mail: mailOf(email, messageIdFor(email.emailId, address)), etag: email.etag })
    for (const job of jobs) {
      signal?.throwIfAborted()
      const outcome = await this.sendOne(worker, sender, job, signal)
      if (outcome === 'deferred') return { ...result, deferred: true }
      result[outcome]++
    }
    return result
  }

  private async sendOne(worker: MailboxWorker, sender: OutgoingMailPort, job: { emailId: string; mail: OutgoingMail; etag?: string | undefined }, signal?: AbortSignal): Promise<'sent' | 'failed' | 'deferred'> {
    const { mailboxId } = worker.descriptor
    const { state, queue, metrics } = this.deps
    const internetMessageId = job.mail.internetMessageId
    if (job.etag !== undefined) {
      await state.putSend({ emailId: job.emailId, mailboxId, internetMessageId, state: 'claimed', at: this.deps.now(), mail: job.mail as Record<string, unknown> })
      const claim = await queue.claimSend(job.emailId, job.etag, signal)
      if (claim.status !== 'claimed') {
        await state.putSend({ emailId: job.emailId, mailboxId, internetMessageId, state: 'failed', at: this.deps.now(), error: claim.status })
        return 'failed'
      }
    }
    let sent: Awaited<ReturnType<OutgoingMailPort['send']>>
    try {
      sent = await sender.send(job.mail)
    } catch (error) {
      if (error instanceof ThrottledError || (error instanceof SyncError && error.retryable)) {
        metrics.sent.inc({ result: 'deferred' })
        return 'deferred' // still claimed in the journal: the next scan finishes it
      }
      const reason = error instanceof Error ? error.message : String(error)
      await this.fail(mailboxId, job.emailId, reason)
      await state.putSend({ emailId: job.emailId, mailboxId, internetMessageId, state: 'failed', at: this.deps.now(), error: reason })
      return 'failed'
    }
    if (sent.status === 'deferred') {
      metrics.sent.inc({ result: 'deferred' })
      return 'deferred'
    }
    // Recording can fail (or the process can die here): the journal still says "claimed", and the next
    // scan finds the Message-ID in Sent Items and only records it.
    await queue.markSent(job.emailId, { messageId: internetMessageId, sentOn: new Date(this.deps.now()).toISOString() }, signal)
    await state.putSend({ emailId: job.emailId, mailboxId, internetMessageId, state: 'sent', at: this.deps.now() })
    metrics.sent.inc({ result: sent.status })
    return 'sent'
  }

  private async fail(mailboxId: string, emailId: string, reason: string, etag?: string): Promise<void> {
    this.deps.metrics.sent.inc({ result: 'failed' })
    await this.deps.queue.markSendFailed(emailId, reason, etag ? { etag } : {})
    await this.deps.directory.raiseAlert(mailboxId, { level: 'error', code: AlertCodes.SendFailed, text: `An email could not be sent (${emailId}): ${reason}` })
    this.deps.logger.warn({ mailboxId, emailId, reason }, 'outgoing email failed')
  }
}
