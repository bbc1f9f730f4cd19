/**
 * Outgoing CRM email for imap/pop3 mailboxes: sent over SMTP through adapter-mailserver, which
 * records the Message-ID in its send ledger before handing the message to SMTP (a replay sends
 * nothing; a crash while the message was with SMTP is never resent automatically) and, for IMAP,
 * files the sent copy in the Sent folder. The ledger lives in the server's LevelDB.
 */
import { type OutgoingMail, type SendResult, OutgoingMailSchema } from '@concord/adapter-exchange'
import { type MailServerAdapter, type SendLedger, type SendLedgerEntry, SendLedgerEntrySchema } from '@concord/adapter-mailserver'
import { type StoreDatabase, ValidationError, asConcordId, asOpId } from '@concord/engine'

/** What the outgoing scan needs from a mailbox's sender (Exchange `MailSender` or SMTP). */
export interface OutgoingMailPort {
  send(mail: OutgoingMail): Promise<SendResult>
}

export class SmtpMailSender implements OutgoingMailPort {
  constructor(
    private readonly adapter: MailServerAdapter,
    /** The mailbox's address: the sender of every message. */
    private readonly from: string,
  ) {}

  async send(input: OutgoingMail): Promise<SendResult> {
    const parsed = OutgoingMailSchema.safeParse(input)
    if (!parsed.success) throw ValidationError.fromZod('outgoing mail', parsed.error)
    const m = parsed.data
    const res = await this.adapter.push([
      {
        opId: asOpId(`send-${m.crmEmailId}`),
        type: 'create',
        concordId: asConcordId(`crm-email-${m.crmEmailId.toLowerCase()}`),
        kind: 'email',
        fields: { subject: m.subject, body: m.bodyType === 'html' ? htmlToText(m.body) : m.body, from: { address: this.from }, to: m.to, cc: m.cc, bcc: m.bcc, direction: 'outgoing', internetMessageId: m.internetMessageId },
      },
    ])
    const rejected = res.rejected[0]
    if (rejected) throw rejected.error
    return { status: 'sent', internetMessageId: m.internetMessageId }
  }
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' }

/**
 * adapter-mailserver composes text/plain: the CRM's HTML body is sent as its text (paragraphs and line
 * breaks kept, tags dropped, common entities decoded).
 */
export function htmlToText(html: string): string {
  return html
    .replace(/<(script|style)[^>]*>[\s\S]*?<\/\1>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|li|tr|h[1-6])>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (all, e: string) => {
      if (e[0] === '#') {
        const code = e[1]?.toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)
        return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : all
      }
      return ENTITIES[e.toLowerCase()] ?? all
    })
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim()
}

/** adapter-mailserver's send ledger on a part of the server's LevelDB (one per mailbox). */
export class LevelSendLedger implements SendLedger {
  constructor(private readonly db: StoreDatabase) {}

  async get(concordId: string): Promise<SendLedgerEntry | undefined> {
    const raw = await this.db.get(concordId)
    if (raw === undefined) return undefined
    return SendLedgerEntrySchema.parse(JSON.parse(raw))
  }

  async put(entry: SendLedgerEntry): Promise<void> {
    await this.db.put(entry.concordId, JSON.stringify(SendLedgerEntrySchema.parse(entry)))
  }

  async delete(concordId: string): Promise<void> {
    await this.db.del(concordId)
  }
}
