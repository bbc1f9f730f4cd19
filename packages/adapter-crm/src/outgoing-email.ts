/**
 * The CRM side of outgoing e-mail under server-side sync (protocols.md §5.3, §4.2): e-mails the CRM's
 * `SendEmail` action marked **Pending Send** (statecode 1 / statuscode 6) wait for the owner's mailbox
 * to send them. A server claims one (→ 7 Sending, guarded by `If-Match` so two servers cannot both
 * claim it), sends it, and records the outcome: 3 Sent (statecode 1, `messageid` recorded; the platform
 * stamps `senton`) or 8 Failed (statecode 0). Every call runs as the application user.
 */
import { SyncError, type Logger } from '@concord/engine'
import { z } from 'zod'
import { parseJson, type WebApiClient } from './http.js'
import { SEND_AS_PRIVILEGE, PrivilegesResponseSchema } from './masks.js'
import { writeAlert } from './mailbox-directory.js'
import { PARTY } from './mapping.js'
import { createServiceClient, getAllPages, guidArg, parseCrmServiceOptions, type CrmServiceDeps, type CrmServiceOptions, type CrmServiceOptionsInput } from './service.js'

/** email statecode / statuscode pairs used by the outgoing path (protocols.md §4.2). */
export const EMAIL_STATUS = {
  Draft: { statecode: 0, statuscode: 1 },
  Failed: { statecode: 0, statuscode: 8 },
  Sent: { statecode: 1, statuscode: 3 },
  PendingSend: { statecode: 1, statuscode: 6 },
  Sending: { statecode: 1, statuscode: 7 },
} as const

const LOOKUP_TYPE = '@Microsoft.Dynamics.CRM.lookuplogicalname'

export interface EmailParty {
  /** `addressused` (the resolved or typed address); null when the party has none. */
  address: string | null
  /** The bound record (systemuser, contact, account, …), if any. */
  partyId: string | null
  partyType: string | null
}

const PartyRowSchema = z.looseObject({
  participationtypemask: z.number().int().min(1).max(13),
  addressused: z.string().nullable().optional(),
  _partyid_value: z.string().nullable().optional(),
  [`_partyid_value${LOOKUP_TYPE}`]: z.string().nullable().optional(),
})

const PendingRowSchema = z
  .looseObject({
    '@odata.etag': z.string().min(1),
    activityid: z.string().regex(/^[0-9a-fA-F-]{36}$/),
    subject: z.string().nullable().optional(),
    description: z.string().nullable().optional(),
    sender: z.string().nullable().optional(),
    messageid: z.string().nullable().optional(),
    trackingtoken: z.string().nullable().optional(),
    statecode: z.literal(1),
    statuscode: z.literal(6),
    _ownerid_value: z.string().nullable().optional(),
    email_activity_parties: z.array(PartyRowSchema).default([]),
  })
  .transform((r) => {
    const parties = (mask: number): EmailParty[] =>
      r.email_activity_parties
        .filter((p) => p.participationtypemask === mask)
        .map((p) => ({ address: p.addressused ?? null, partyId: p._partyid_value?.toLowerCase() ?? null, partyType: (p[`_partyid_value${LOOKUP_TYPE}`] as string | null | undefined) ?? null }))
    return {
      emailId: r.activityid.toLowerCase(),
      ownerId: r._ownerid_value?.toLowerCase() ?? null,
      etag: r['@odata.etag'],
      subject: r.subject ?? '',
      /** `description` (HTML). */
      body: r.description ?? '',
      /** The `sender` column (from address string). */
      sender: r.sender ?? null,
      from: parties(PARTY.from)[0] ?? null,
      to: parties(PARTY.to),
      cc: parties(PARTY.cc),
      bcc: parties(PARTY.bcc),
      /** The CRM's `messageid`: a Message-ID recorded before a crash, if any — reuse it. */
      messageId: r.messageid ?? null,
      trackingToken: r.trackingtoken ?? null,
    }
  })
export type PendingEmail = z.output<typeof PendingRowSchema>

export type ClaimResult = { status: 'claimed'; etag: string } | { status: 'already-claimed' } | { status: 'not-found' }

const Instant = z.union([z.date(), z.iso.datetime({ offset: true })]).transform((d) => new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z'))
export const MarkSentSchema = z.strictObject({
  /** The Internet Message-ID the message was sent with, `<id@domain>`. */
  messageId: z.string().max(320).regex(/^<[^<>\s]+@[^<>\s]+>$/, 'expected a Message-ID like <id@domain>'),
  /** When Exchange accepted it; recorded as `actualend` (`senton` is read-only and stamped by the platform). */
  sentOn: Instant,
  /** ETag from `claimSend`; when given the update is conditional. */
  etag: z.string().min(1).optional(),
})
export type MarkSent = z.input<typeof MarkSentSchema>

export interface MarkFailedOptions {
  /** Also write an error alert regarding this mailbox (the owner's). */
  mailboxId?: string | undefined
  /** The alert's tracecode (default 0). */
  code?: number | undefined
  etag?: string | undefined
}

const EtagOnly = z.looseObject({ '@odata.etag': z.string().min(1) })

export class OutgoingEmailQueue {
  readonly options: CrmServiceOptions
  readonly http: WebApiClient
  private readonly logger: Logger | undefined
  private readonly now: () => number
  private readonly sendCache = new Map<string, { value: boolean; until: number }>()
  private readonly permissionTtlMs: number

  constructor(options: CrmServiceOptionsInput, deps: CrmServiceDeps & { now?: (() => number) | undefined; permissionTtlMs?: number | undefined } = {}) {
    this.options = parseCrmServiceOptions(options)
    this.http = createServiceClient(this.options, deps)
    this.logger = deps.logger
    this.now = deps.now ?? Date.now
    this.permissionTtlMs = deps.permissionTtlMs ?? 5 * 60_000
  }

  /** E-mails in Pending Send owned by `ownerId`, with their parties (all pages). */
  async pendingSends(args: { ownerId: string; signal?: AbortSignal | undefined }): Promise<PendingEmail[]> {
    const owner = guidArg('ownerId', args.ownerId)
    const select = 'activityid,subject,description,sender,messageid,trackingtoken,statecode,statuscode,_ownerid_value'
    const filter = encodeURIComponent(`statecode eq 1 and statuscode eq 6 and _ownerid_value eq ${owner}`)
    const expand = `email_activity_parties($select=participationtypemask,addressused,_partyid_value)`
    return getAllPages(this.http, `emails?$select=${select}&$filter=${filter}&$expand=${expand}`, PendingRowSchema, this.options.pageSize, 'pending e-mail', args.signal, [
      `odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"`,
    ])
  }

  /**
   * Claims an e-mail for sending: Pending Send → Sending, only if it is unchanged since it was read
   * (`If-Match: etag`). Another server's claim (or any change) → `already-claimed`; gone → `not-found`.
   */
  async claimSend(emailId: string, etag: string, signal?: AbortSignal): Promise<ClaimResult> {
    const id = guidArg('emailId', emailId)
    if (typeof etag !== 'string' || etag === '' || etag === '*') throw new SyncError('Validation', `etag must be the row's @odata.etag, got ${JSON.stringify(etag)}`)
    const res = await this.http.raw('PATCH', `emails(${id})?$select=statuscode`, {
      body: JSON.stringify(EMAIL_STATUS.Sending),
      headers: { 'If-Match': etag, Prefer: 'return=representation' },
      signal,
    })
    if (res.status === 412) return { status: 'already-claimed' }
    if (res.status === 404) return { status: 'not-found' }
    if (res.status < 200 || res.status >= 300) throw this.http.failure(res)
    return { status: 'claimed', etag: parseJson(res, EtagOnly, 'claimed e-mail')['@odata.etag'] }
  }

  /** Sending succeeded: statecode 1 / statuscode 3 Sent, `messageid` recorded. */
  async markSent(emailId: string, sent: MarkSent, signal?: AbortSignal): Promise<void> {
    const id = guidArg('emailId', emailId)
    const s = MarkSentSchema.safeParse(sent)
    if (!s.success) throw new SyncError('Validation', `Invalid markSent input: ${s.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`, {}, { cause: s.error })
    await this.http.request('PATCH', `emails(${id})`, {
      body: JSON.stringify({ ...EMAIL_STATUS.Sent, messageid: s.data.messageId, actualend: s.data.sentOn }),
      headers: { 'If-Match': s.data.etag ?? '*' },
      signal,
    })
  }

  /** Sending failed for good: statecode 0 / statuscode 8 Failed; optionally an error alert on the owner's mailbox. */
  async markSendFailed(emailId: string, reason: string, opts: MarkFailedOptions = {}, signal?: AbortSignal): Promise<void> {
    const id = guidArg('emailId', emailId)
    if (typeof reason !== 'string' || reason.trim() === '') throw new SyncError('Validation', 'reason must be a non-empty string')
    await this.http.request('PATCH', `emails(${id})`, { body: JSON.stringify(EMAIL_STATUS.Failed), headers: { 'If-Match': opts.etag ?? '*' }, signal })
    this.logger?.warn({ emailId: id, reason }, 'outgoing e-mail marked Failed')
    if (opts.mailboxId !== undefined) await writeAlert(this.http, opts.mailboxId, { level: 'error', code: opts.code ?? 0, text: `The email message "${id}" could not be sent: ${reason}` }, signal)
  }

  /**
   * The owner's "send e-mail from the CRM" permission — `canSendFromCrm` of `toCrmPrivilegeReport`
   * (`prvSendAsUser` in the owner's roles) — from one `RetrieveUserPrivileges` call, cached per owner
   * for `permissionTtlMs` (default 5 minutes).
   */
  async canSendFromCrm(ownerId: string, signal?: AbortSignal): Promise<boolean> {
    const id = guidArg('ownerId', ownerId)
    const hit = this.sendCache.get(id)
    if (hit && hit.until > this.now()) return hit.value
    const privileges = await this.http.getJson(`systemusers(${id})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()`, PrivilegesResponseSchema, {}, signal)
    const value = privileges.RolePrivileges.some((p) => p.PrivilegeName === SEND_AS_PRIVILEGE)
    this.sendCache.set(id, { value, until: this.now() + this.permissionTtlMs })
    return value
  }
}
