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
const CandidatesSchema = z.object({ value: z.array(CandidateSchema), '@odata.nextLink': z.string().optional() }).loose()

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

/** Columns a batched look-up reads (the candidate's own key columns, to attribute each row to a value). */
const LOOKUP_SELECT = 'activityid,subject,sender,torecipients,_regardingobjectid_value,messageid,trackingtoken,conversationindex'
/** Values per `eq … or …` query, and the longest filter (characters) one query carries. */
const VALUES_PER_QUERY = 20
const MAX_FILTER_CHARS = 6000
/** Pages followed per batched query (100 rows each). */
const MAX_LOOKUP_PAGES = 10

async function findAllEmails(adapter: CrmAdapter, filter: string, signal?: AbortSignal): Promise<Candidate[]> {
  const out: Candidate[] = []
  let url: string | undefined = `emails?$select=${LOOKUP_SELECT}&$filter=${encodeURIComponent(filter)}`
  for (let page = 0; url !== undefined && page < MAX_LOOKUP_PAGES; page++) {
    const res = await adapter.http.request('GET', url, { headers: { Prefer: 'odata.include-annotations="*",odata.maxpagesize=100' }, signal })
    const body = parseJson(res, CandidatesSchema, 'correlation candidates')
    out.push(...body.value)
    url = body['@odata.nextLink']
  }
  return out
}

/** Splits values into groups of at most 20 whose `or`-ed filter stays short enough for a URL. */
function groups(values: readonly string[], term: (v: string) => string): string[] {
  const out: string[] = []
  let cur: string[] = []
  let len = 0
  for (const v of values) {
    const t = term(v)
    if (cur.length > 0 && (cur.length >= VALUES_PER_QUERY || len + t.length + 4 > MAX_FILTER_CHARS)) {
      out.push(cur.join(' or '))
      cur = []
      len = 0
    }
    cur.push(t)
    len += t.length + 4
  }
  if (cur.length > 0) out.push(cur.join(' or '))
  return out
}

/**
 * Look-ups prefetched for a set of e-mails (keys lower-cased). A key that is present was queried: its
 * value is the first tracked e-mail found, or null (none). A key that is absent was not queried.
 */
export interface CorrelationIndex {
  messageId: Map<string, Candidate | null>
  token: Map<string, Candidate | null>
  conversation: Map<string, Candidate | null>
  /** normalized subject → e-mails whose normalized subject is equal */
  subject: Map<string, Candidate[]>
}

export function emptyCorrelationIndex(): CorrelationIndex {
  return { messageId: new Map(), token: new Map(), conversation: new Map(), subject: new Map() }
}

type LookupColumn = 'messageid' | 'trackingtoken' | 'conversationindex'

async function lookupMany(adapter: CrmAdapter, column: LookupColumn, keys: readonly string[], into: Map<string, Candidate | null>, signal?: AbortSignal): Promise<void> {
  const todo = [...new Set(keys)].filter((k) => !into.has(k))
  if (todo.length === 0) return
  for (const filter of groups(todo, (v) => `${column} eq ${quote(v)}`)) {
    for (const c of await findAllEmails(adapter, filter, signal)) {
      const v = c[column]
      if (typeof v !== 'string') continue
      const k = v.toLowerCase()
      if (!into.get(k)) into.set(k, c)
    }
  }
  for (const k of todo) if (!into.has(k)) into.set(k, null)
}

/**
 * Runs the correlation look-ups of many e-mails at once (In-Reply-To, then tracking token, then
 * conversation, then smart-matching subjects — each round only for the e-mails the earlier rounds did
 * not correlate), up to 20 values per `eq … or …` query instead of up to four GETs per e-mail.
 * Values already in `index` are not queried again. Invalid inputs are skipped (`correlateEmail` reports them).
 */
export async function prefetchCorrelation(adapter: CrmAdapter, inputs: readonly IncomingEmail[], options: CorrelationOptions = {}, signal?: AbortSignal, index: CorrelationIndex = emptyCorrelationIndex()): Promise<CorrelationIndex> {
  const prefix = adapter.options.trackingTokenPrefix
  let mails = inputs.flatMap((i) => {
    const p = IncomingEmailSchema.safeParse(i)
    return p.success ? [p.data] : []
  })
  const lc = (v: string | null | undefined): string | null => (v ? v.toLowerCase() : null)
  if (options.useInReplyTo !== false) {
    await lookupMany(adapter, 'messageid', mails.flatMap((m) => lc(m.inReplyTo) ?? []), index.messageId, signal)
    mails = mails.filter((m) => !(m.inReplyTo && index.messageId.get(m.inReplyTo.toLowerCase())))
  }
  if (options.useTrackingToken !== false) {
    const tokenOf = (m: (typeof mails)[number]) => lc(extractTrackingToken(m.subject, prefix))
    await lookupMany(adapter, 'trackingtoken', mails.flatMap((m) => tokenOf(m) ?? []), index.token, signal)
    mails = mails.filter((m) => !index.token.get(tokenOf(m) ?? ''))
  }
  if (options.useConversation !== false) {
    await lookupMany(adapter, 'conversationindex', mails.flatMap((m) => lc(m.conversationId) ?? []), index.conversation, signal)
    mails = mails.filter((m) => !(m.conversationId && index.conversation.get(m.conversationId.toLowerCase())))
  }
  if (options.useSmartMatching !== false) {
    const subjects = [...new Set(mails.map((m) => normalizeSubject(m.subject, prefix)).filter((x) => x !== '' && !index.subject.has(x)))]
    for (const filter of groups(subjects, (v) => `contains(subject,${quote(v)})`)) {
      const found = await findAllEmails(adapter, filter, signal)
      const wanted = new Set(subjects)
      for (const c of found) {
        const ns = normalizeSubject(c.subject ?? '', prefix)
        if (!wanted.has(ns)) continue
        const list = index.subject.get(ns) ?? []
        if (!list.some((x) => x.activityid === c.activityid)) list.push(c)
        index.subject.set(ns, list)
      }
    }
    for (const s of subjects) if (!index.subject.has(s)) index.subject.set(s, [])
  }
  return index
}

/** An e-mail created earlier in the same push chunk (not in the CRM yet): its pre-assigned id and regarding. */
export interface PendingEmail {
  messageId: string | null
  conversationId: string | null
  activityId: string
  regarding: Regarding | null
}

/**
 * Correlation against e-mails of the same push chunk, in the documented order: In-Reply-To naming one
 * of them, unless the CRM already answers it (or the tracking token does), else the conversation of one
 * of them, unless the CRM already has that conversation. Null when correlation must ask the CRM.
 * `index` must hold this e-mail's prefetched look-ups.
 */
export function matchPending(input: IncomingEmail, pending: readonly PendingEmail[], index: CorrelationIndex, prefix = 'CRM:'): { method: 'InReplyTo' | 'ConversationIndex'; code: number; email: PendingEmail } | null {
  if (pending.length === 0) return null
  const r = input.inReplyTo?.toLowerCase()
  if (r) {
    if (index.messageId.get(r)) return null
    const hit = pending.find((p) => p.messageId === r)
    if (hit) return { method: 'InReplyTo', code: CorrelationMethodCodes.InReplyTo, email: hit }
  }
  const t = extractTrackingToken(input.subject, prefix)?.toLowerCase()
  if (t && index.token.get(t)) return null
  const c = input.conversationId?.toLowerCase()
  if (c) {
    if (index.conversation.get(c)) return null
    const hit = pending.find((p) => p.conversationId === c)
    if (hit) return { method: 'ConversationIndex', code: CorrelationMethodCodes.ConversationIndex, email: hit }
  }
  return null
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
export async function correlateEmail(adapter: CrmAdapter, input: IncomingEmail, options: CorrelationOptions = {}, signal?: AbortSignal, index?: CorrelationIndex): Promise<CorrelationResult> {
  const parsed = IncomingEmailSchema.safeParse(input)
  if (!parsed.success) throw new SyncError('Validation', `Invalid e-mail for correlation: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  const mail = parsed.data
  const prefix = adapter.options.trackingTokenPrefix
  /** The prefetched answer for a key when there is one, else one query. */
  const first = async (map: Map<string, Candidate | null> | undefined, key: string, filter: string): Promise<Candidate | undefined> => {
    const k = key.toLowerCase()
    if (map?.has(k)) return map.get(k) ?? undefined
    return (await findEmails(adapter, filter, signal))[0]
  }
  if (options.useInReplyTo !== false && mail.inReplyTo) {
    const hit = await first(index?.messageId, mail.inReplyTo, `messageid eq ${quote(mail.inReplyTo)}`)
    if (hit) return result('InReplyTo', hit)
  }
  const token = options.useTrackingToken !== false ? extractTrackingToken(mail.subject, prefix) : null
  if (token) {
    const hit = await first(index?.token, token, `trackingtoken eq ${quote(token)}`)
    if (hit) return result('TrackingToken', hit)
  }
  if (options.useConversation !== false && mail.conversationId) {
    const hit = await first(index?.conversation, mail.conversationId, `conversationindex eq ${quote(mail.conversationId)}`)
    if (hit) return result('ConversationIndex', hit)
  }
  const subject = normalizeSubject(mail.subject, prefix)
  if (options.useSmartMatching !== false && subject !== '') {
    const addresses = [mail.from, ...mail.to, ...mail.cc]
    let best: { c: Candidate; overlap: number } | null = null
    const candidates = index?.subject.get(subject) ?? (await findEmails(adapter, `contains(subject,${quote(subject)})`, signal))
    for (const c of candidates) {
      if (normalizeSubject(c.subject ?? '', prefix) !== subject) continue
      const theirs = [c.sender ?? '', ...(c.torecipients ?? '').split(/[;,]/)]
      const overlap = addressOverlap(addresses, theirs)
      if (overlap >= adapter.options.smartMatchMinOverlap && (!best || overlap > best.overlap)) best = { c, overlap }
    }
    if (best) return result('SmartMatching', best.c)
  }
  return result('None')
}
