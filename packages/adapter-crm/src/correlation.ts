import { SyncError, type Regarding } from '@concord/engine'
import { z } from 'zod'
import type { CrmAdapter } from './crm-adapter.js'
import { nativeIdOf } from './crm-adapter.js'
import { parseJson } from './http.js'

/** `email.correlationmethod` option values (protocols.md §4.2). */
export const CorrelationMethodCodes = {
  None: 0,
  Skipped: 1,
  XHeader: 2,
  InReplyTo: 3,
  TrackingToken: 4,
  ConversationIndex: 5,
  SmartMatching: 6,
  CustomCorrelation: 7,
} as const
export type CorrelationMethod = keyof typeof CorrelationMethodCodes

/** What correlation looks at: headers of an incoming e-mail (never its body). */
export const IncomingEmailSchema = z.strictObject({
  subject: z.string().max(2000),
  from: z.string().min(1).max(320),
  to: z.array(z.string().min(1).max(320)).max(1000).default([]),
  cc: z.array(z.string().min(1).max(320)).max(1000).default([]),
  inReplyTo: z.string().max(998).nullable().optional(),
  conversationId: z.string().max(1024).nullable().optional(),
})
export type IncomingEmail = z.input<typeof IncomingEmailSchema>

export interface CorrelationResult {
  method: CorrelationMethod
  /** The `email.correlationmethod` value to record. */
  code: number
  /** The tracked CRM e-mail it correlates to (native id, `emails(<guid>)`). */
  activityId?: string | undefined
  /** What that e-mail is regarding (copied to the new activity). */
  regarding?: Regarding | null | undefined
}

export interface CorrelationOptions {
  useInReplyTo?: boolean
  useTrackingToken?: boolean
  useConversation?: boolean
  useSmartMatching?: boolean
}

const PREFIX_RE = /^\s*(re|fw|fwd|aw|wg|sv|vs|antw|tr|rif)\s*(\[\d+\])?\s*:\s*/i

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** The tracking token at the end of a subject (`CRM:0001001`), or null. */
export function extractTrackingToken(subject: string, prefix = 'CRM:'): string | null {
  const m = new RegExp(`(${escapeRegExp(prefix)}\\d{1,30})\\s*$`).exec(subject)
  return m ? (m[1] as string) : null
}

/** Smart-matching subject: RE:/FW:-style prefixes and the tracking token removed, case folded. */
export function normalizeSubject(subject: string, prefix = 'CRM:'): string {
  let s = subject
  const token = extractTrackingToken(s, prefix)
  if (token) s = s.slice(0, s.lastIndexOf(token))
  for (let i = 0; i < 20 && PREFIX_RE.test(s); i++) s = s.replace(PREFIX_RE, '')
  return s.trim().replace(/\s+/g, ' ').toLowerCase()
}

/** Number of distinct addresses two address sets share (case-insensitive). */
export function addressOverlap(a: readonly string[], b: readonly string[]): number {
  const set = new Set(a.map((x) => x.trim().toLowerCase()).filter(Boolean))
  return new Set(b.map((x) => x.trim().toLowerCase()).filter((x) => set.has(x))).size
}

const CandidateSchema = z.object({
  activityid: z.string().min(1),
  subject: z.string().nullable().optional(),
  sender: z.string().nullable().optional(),
  torecipients: z.string().nullable().optional(),
  _regardingobjectid_value: z.string().nullable().optional(),
  '_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname': z.string().nullable().optional(),
  '_regardingobjectid_value@OData.Community.Display.V1.FormattedValue': z.string().nullable().optional(),
}).loose()
type Candidate = z.infer<typeof CandidateSchema>
const CandidatesSchema = z.object({ value: z.array(CandidateSchema) }).loose()

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`

function regardingOf(c: Candidate): Regarding | null {
  const id = c._regardingobjectid_value
  const table = c['_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname']
  if (!id || !table) return null
  const name = c['_regardingobjectid_value@OData.Community.Display.V1.FormattedValue']
  return name ? { table, id, name } : { table, id }
}

async function findEmails(adapter: CrmAdapter, filter: string, signal?: AbortSignal): Promise<Candidate[]> {
  const url = `emails?$select=activityid,subject,sender,torecipients,_regardingobjectid_value&$filter=${encodeURIComponent(filter)}`
  const res = await adapter.http.request('GET', url, { headers: { Prefer: 'odata.include-annotations="*",odata.maxpagesize=50' }, signal })
  return parseJson(res, CandidatesSchema, 'correlation candidates').value
}

function result(method: CorrelationMethod, c?: Candidate): CorrelationResult {
  if (!c) return { method, code: CorrelationMethodCodes[method] }
  return { method, code: CorrelationMethodCodes[method], activityId: nativeIdOf('email', c.activityid), regarding: regardingOf(c) }
}

/**
 * Correlates an incoming e-mail with an e-mail already tracked in the CRM, in the documented
 * order (§5.9): In-Reply-To, tracking token in the subject, conversation, smart matching.
 * Queries run as the mailbox owner; the result names the method (`email.correlationmethod`).
 */
export async function correlateEmail(adapter: CrmAdapter, input: IncomingEmail, options: CorrelationOptions = {}, signal?: AbortSignal): Promise<CorrelationResult> {
  const parsed = IncomingEmailSchema.safeParse(input)
  if (!parsed.success) throw new SyncError('Validation', `Invalid e-mail for correlation: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  const mail = parsed.data
  const prefix = adapter.options.trackingTokenPrefix
  if (options.useInReplyTo !== false && mail.inReplyTo) {
    const [hit] = await findEmails(adapter, `messageid eq ${quote(mail.inReplyTo)}`, signal)
    if (hit) return result('InReplyTo', hit)
  }
  const token = options.useTrackingToken !== false ? extractTrackingToken(mail.subject, prefix) : null
  if (token) {
    const [hit] = await findEmails(adapter, `trackingtoken eq ${quote(token)}`, signal)
    if (hit) return result('TrackingToken', hit)
  }
  if (options.useConversation !== false && mail.conversationId) {
    const [hit] = await findEmails(adapter, `conversationindex eq ${quote(mail.conversationId)}`, signal)
    if (hit) return result('ConversationIndex', hit)
  }
  const subject = normalizeSubject(mail.subject, prefix)
  if (options.useSmartMatching !== false && subject !== '') {
    const addresses = [mail.from, ...mail.to, ...mail.cc]
    let best: { c: Candidate; overlap: number } | null = null
    for (const c of await findEmails(adapter, `contains(subject,${quote(subject)})`, signal)) {
      if (normalizeSubject(c.subject ?? '', prefix) !== subject) continue
      const theirs = [c.sender ?? '', ...(c.torecipients ?? '').split(/[;,]/)]
      const overlap = addressOverlap(addresses, theirs)
      if (overlap >= adapter.options.smartMatchMinOverlap && (!best || overlap > best.overlap)) best = { c, overlap }
    }
    if (best) return result('SmartMatching', best.c)
  }
  return result('None')
}
