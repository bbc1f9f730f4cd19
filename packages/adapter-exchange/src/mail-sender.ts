/**
 * Sends a CRM e-mail through its owner's mailbox **exactly once** (the server-side-sync outgoing path,
 * protocols.md §5.3 / §5.8): the caller assigns the Internet Message-ID before sending and records it in
 * the CRM; `send` first looks for that Message-ID (or the CRM e-mail id stamped as the `crmid` MAPI
 * property) in Sent Items and only submits when neither is there. A crash between submission and
 * recording therefore costs a lookup, never a duplicate. Exchange's sending limits are kept by a
 * client-side `SendBudget` (a send over budget is `deferred`, not attempted).
 */
import { SyncError, ValidationError } from '@concord/engine'
import { z } from 'zod'
import type { ExchangeAdapter } from './adapter.js'
import { classifyGraphFailure, invalidRemoteData } from './errors.js'
import type { GraphHttp } from './graph-http.js'
import { SendBudget, type SendLimitsInput } from './send-budget.js'

/**
 * Where the CRM e-mail id is stamped on the sent copy: the `crmid` named property in PS_PUBLIC_STRINGS,
 * the property Dynamics CRM for Outlook uses for the linked CRM record (protocols.md §2.6).
 */
export const CRM_ID_PROPERTY_ID = 'String {00020329-0000-0000-C000-000000000046} Name crmid'

/** Exchange Online: at most 500 recipients per message. */
export const MAX_RECIPIENTS_PER_MESSAGE = 500

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const AddressSchema = z.strictObject({
  address: z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'expected an e-mail address like a@contoso.com'),
  name: z.string().max(256).optional(),
})

export const OutgoingMailSchema = z
  .strictObject({
    /** RFC 5322 Message-ID, angle brackets included, e.g. `<crm-1f2e@contoso.com>`. */
    internetMessageId: z.string().max(500).regex(/^<[^<>\s@]+@[^<>\s@]+>$/, 'expected a Message-ID like <id@domain>'),
    /** The CRM e-mail's activityid. */
    crmEmailId: z.string().regex(GUID, 'expected a GUID (email activityid)'),
    subject: z.string().max(800),
    body: z.string(),
    bodyType: z.enum(['text', 'html']).default('html'),
    to: z.array(AddressSchema).default([]),
    cc: z.array(AddressSchema).default([]),
    bcc: z.array(AddressSchema).default([]),
  })
  .superRefine((m, ctx) => {
    const n = m.to.length + m.cc.length + m.bcc.length
    if (n === 0) ctx.addIssue({ code: 'custom', path: ['to'], message: 'at least one recipient (to, cc or bcc) is required' })
    if (n > MAX_RECIPIENTS_PER_MESSAGE) ctx.addIssue({ code: 'custom', path: ['to'], message: `${n} recipients exceed the limit of ${MAX_RECIPIENTS_PER_MESSAGE} per message` })
  })
export type OutgoingMail = z.input<typeof OutgoingMailSchema>

export type SendResult =
  | { status: 'sent'; internetMessageId: string }
  | { status: 'already-sent'; internetMessageId: string; messageId: string }
  | { status: 'deferred'; retryAfterMs: number; reason: 'messagesPerMinute' | 'recipientsPerDay' }

export interface MailSenderOptions {
  /** Budget shared by every sender of this mailbox in the process; default: a new one with `limits`. */
  budget?: SendBudget | undefined
  /** Limits of a new budget (default 30 messages/minute, 10,000 recipients/day). */
  limits?: SendLimitsInput | undefined
  now?: (() => number) | undefined
}

const FoundSchema = z.looseObject({ value: z.array(z.looseObject({ id: z.string().min(1), internetMessageId: z.string().nullable().optional() })) })
const quote = (s: string) => `'${s.replace(/'/g, "''")}'`
const IMMUTABLE = { Prefer: 'IdType="ImmutableId"' }

export class MailSender {
  readonly budget: SendBudget
  private readonly http: GraphHttp
  private readonly user: string
  private readonly now: () => number

  /** A sender for the adapter's mailbox, over the adapter's authenticated Graph transport. */
  constructor(adapter: ExchangeAdapter, options: MailSenderOptions = {}) {
    this.http = adapter.http
    this.user = `/users/${encodeURIComponent(adapter.options.mailbox)}`
    this.now = options.now ?? Date.now
    this.budget = options.budget ?? new SendBudget(options.limits ?? {}, this.now)
  }

  /**
   * The Sent Items copy of a message sent with `internetMessageId` or stamped with `crmEmailId`, or
   * `undefined`. Throws the classified `SyncError` when Graph fails (429/503 → `ThrottledError`).
   */
  async findSent(internetMessageId: string, crmEmailId?: string): Promise<{ messageId: string } | undefined> {
    const base = `${this.user}/mailFolders/sentitems/messages`
    const byId = await this.http.ok('GET', `${base}?$select=id,internetMessageId&$filter=${encodeURIComponent(`internetMessageId eq ${quote(internetMessageId)}`)}`, IMMUTABLE)
    const a = FoundSchema.safeParse(byId.body)
    if (!a.success) throw invalidRemoteData('Sent Items listing', a.error, base)
    if (a.data.value[0]) return { messageId: a.data.value[0].id }
    if (crmEmailId === undefined) return undefined
    const filter = `singleValueExtendedProperties/Any(ep: ep/id eq ${quote(CRM_ID_PROPERTY_ID)} and ep/value eq ${quote(crmEmailId)})`
    const byStamp = await this.http.ok('GET', `${base}?$select=id,internetMessageId&$filter=${encodeURIComponent(filter)}`, IMMUTABLE)
    const b = FoundSchema.safeParse(byStamp.body)
    if (!b.success) throw invalidRemoteData('Sent Items listing', b.error, base)
    return b.data.value[0] ? { messageId: b.data.value[0].id } : undefined
  }

  /**
   * Sends once: `already-sent` when Sent Items has the message, `deferred` when the sending budget is
   * spent, otherwise `POST sendMail` (with the Message-ID and the `crmid` stamp, `saveToSentItems: true`)
   * → `sent`. Bad input → `ValidationError`; Graph failures → the classified `SyncError`.
   */
  async send(input: OutgoingMail): Promise<SendResult> {
    const parsed = OutgoingMailSchema.safeParse(input)
    if (!parsed.success) throw ValidationError.fromZod('outgoing mail', parsed.error)
    const m = parsed.data
    const found = await this.findSent(m.internetMessageId, m.crmEmailId)
    if (found) return { status: 'already-sent', internetMessageId: m.internetMessageId, messageId: found.messageId }
    const recipients = new Set([...m.to, ...m.cc, ...m.bcc].map((r) => r.address.toLowerCase())).size
    const reservation = this.budget.reserve(recipients)
    if (!reservation.ok) return { status: 'deferred', retryAfterMs: reservation.retryAfterMs, reason: reservation.reason }
    const toGraph = (list: typeof m.to) => list.map((r) => ({ emailAddress: r.name === undefined ? { address: r.address } : { address: r.address, name: r.name } }))
    const body = {
      message: {
        subject: m.subject,
        body: { contentType: m.bodyType, content: m.body },
        toRecipients: toGraph(m.to),
        ccRecipients: toGraph(m.cc),
        bccRecipients: toGraph(m.bcc),
        internetMessageId: m.internetMessageId,
        singleValueExtendedProperties: [{ id: CRM_ID_PROPERTY_ID, value: m.crmEmailId }],
      },
      saveToSentItems: true,
    }
    let res
    try {
      res = await this.http.send('POST', `${this.user}/sendMail`, {}, body)
    } catch (error) {
      // Transport failure: the message may or may not have been submitted; keep the reservation.
      if (error instanceof SyncError) throw error
      throw new SyncError('Transient', `sendMail failed: ${(error as Error).message}`, {}, { cause: error })
    }
    if (res.status === 202 || res.status === 200) return { status: 'sent', internetMessageId: m.internetMessageId }
    // A 4xx (incl. 429) is a definite refusal: nothing was submitted, so the budget gets the reservation
    // back. A 5xx may hide a submission; the reservation stays (the Sent Items lookup prevents a duplicate).
    if (res.status < 500) reservation.release()
    throw classifyGraphFailure(res, { now: this.now() })
  }
}
