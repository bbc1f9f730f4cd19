/**
 * MIME in and out: a raw RFC 5322 message → the engine's e-mail fields (mailparser), and e-mail
 * fields → a raw message (nodemailer's composer). Also the IMAP keyword ↔ category encoding.
 */
import { createHash } from 'node:crypto'
import { type Address, type EmailFields, type NativeId, asNativeId } from '@concord/engine'
import libmime from 'libmime'
import { simpleParser, type AddressObject, type HeaderValue } from 'mailparser'
import MailComposer from 'nodemailer/lib/mail-composer/index.js'
import { MailServerError, type MailServerErrorReason } from './errors.js'

/** Header carrying the Concord id on messages Concord wrote (sent copies, replacements). */
export const CONCORD_ID_HEADER = 'X-Concord-Id'
/** The engine's body limit (BodySchema). */
const MAX_BODY_CHARS = 4 * 1024 * 1024

/** A problem of a message that is still usable: it is synced with its content AND reported. */
export interface MessageIssue {
  reason: Extract<MailServerErrorReason, 'unknown-charset' | 'invalid-charset-data' | 'missing-date' | 'broken-mime' | 'attachment-too-large'>
  message: string
}

export interface ParsedEmail {
  fields: EmailFields
  concordId?: string | undefined
  /** References header, oldest first (what correlation walks). */
  references: string[]
  /** What mailparser read leniently (wrong charsets, no Date, broken MIME) or what is not synced (large attachments). */
  issues: MessageIssue[]
}

/** Minimal facts the IMAP server already parsed (ENVELOPE), used when the MIME is unusable. */
export interface EnvelopeFacts {
  messageId?: string | undefined
  inReplyTo?: string | undefined
  subject?: string | undefined
  date?: Date | undefined
  from?: readonly { name?: string | undefined; address?: string | undefined }[] | undefined
  to?: readonly { name?: string | undefined; address?: string | undefined }[] | undefined
  cc?: readonly { name?: string | undefined; address?: string | undefined }[] | undefined
}

/** `<id@host>` with the angle brackets, whitespace removed; undefined when blank or absurd. */
export function normalizeMessageId(value: string | undefined | null): string | undefined {
  if (typeof value !== 'string') return undefined
  const v = value.trim().replace(/\s+/g, '')
  if (v === '' || v.length > 998) return undefined
  return v.startsWith('<') ? v : `<${v}>`
}

/**
 * The native id of an e-mail: its Message-ID, so a move between folders, a copy in Sent and a
 * re-listing after a UIDVALIDITY reset all name the same record. Without a Message-ID: a hash of
 * the envelope (date, sender, subject) and size, which is equally stable across folders.
 */
export function nativeIdFor(messageId: string | undefined, fallback: { date?: Date | undefined; from?: string | undefined; subject?: string | undefined; size?: number | undefined }): NativeId {
  const mid = normalizeMessageId(messageId)
  if (mid) return asNativeId(`mid:${mid}`)
  const h = createHash('sha256')
    .update(JSON.stringify([fallback.date?.toISOString() ?? '', fallback.from ?? '', fallback.subject ?? '', fallback.size ?? 0]))
    .digest('hex')
  return asNativeId(`sha:${h.slice(0, 40)}`)
}

/** The Message-ID inside a `mid:` native id. */
export function messageIdOf(nativeId: string): string | undefined {
  return nativeId.startsWith('mid:') ? nativeId.slice(4) : undefined
}

// ---- categories as IMAP keywords --------------------------------------------------------------

const KEYWORD_SAFE = /[A-Za-z0-9\-._]/

/**
 * IMAP keywords are atoms (no spaces, parentheses, `%`, `*`, quotes…). A category is stored as a
 * keyword with every other byte written `+XX` (UTF-8 hex), so "Tracked to Dynamics 365" ⇄
 * `Tracked+20to+20Dynamics+20365`. System flags (`\Seen`) and `$`-keywords are not categories.
 */
export function categoryToKeyword(category: string): string {
  let out = ''
  for (const ch of category) {
    if (KEYWORD_SAFE.test(ch)) out += ch
    else for (const byte of Buffer.from(ch, 'utf8')) out += `+${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

export function keywordToCategory(keyword: string): string | undefined {
  if (keyword.startsWith('\\') || keyword.startsWith('$') || keyword === '') return undefined
  if (!/^(?:[A-Za-z0-9\-._]|\+[0-9A-F]{2})+$/.test(keyword)) return keyword
  const bytes: number[] = []
  for (let i = 0; i < keyword.length; ) {
    if (keyword[i] === '+') {
      bytes.push(parseInt(keyword.slice(i + 1, i + 3), 16))
      i += 3
    } else {
      bytes.push(keyword.charCodeAt(i))
      i += 1
    }
  }
  return Buffer.from(bytes).toString('utf8')
}

export function categoriesOf(flags: Iterable<string>): string[] {
  const out: string[] = []
  for (const f of flags) {
    const c = keywordToCategory(f)
    if (c !== undefined && !out.includes(c)) out.push(c)
  }
  return out.sort()
}

// ---- parsing -----------------------------------------------------------------------------------

function addresses(value: AddressObject | AddressObject[] | undefined): Address[] {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value]
  const out: Address[] = []
  for (const obj of list)
    for (const a of obj.value) {
      if (a.address) out.push(a.name ? { name: a.name.slice(0, 512), address: a.address.slice(0, 320) } : { address: a.address.slice(0, 320) })
      for (const g of a.group ?? []) if (g.address) out.push(g.name ? { name: g.name.slice(0, 512), address: g.address.slice(0, 320) } : { address: g.address.slice(0, 320) })
    }
  return out.slice(0, 1000)
}

function envelopeAddresses(list: EnvelopeFacts['from']): Address[] {
  return (list ?? []).filter((a) => a.address).slice(0, 1000).map((a) => (a.name ? { name: a.name.slice(0, 512), address: a.address!.slice(0, 320) } : { address: a.address!.slice(0, 320) }))
}

function headerString(value: HeaderValue | undefined): string | undefined {
  if (typeof value === 'string') return value
  return undefined
}

function referencesOf(value: string | string[] | undefined): string[] {
  const list = value === undefined ? [] : Array.isArray(value) ? value : value.split(/\s+/)
  return list.map((r) => normalizeMessageId(r)).filter((r): r is string => r !== undefined)
}

/**
 * The thread root for correlation: the first References entry, else In-Reply-To, else the
 * message's own id (IMAP has no Exchange conversation id; this plays its role).
 */
function conversationIdOf(messageId: string | undefined, inReplyTo: string | undefined, references: string[]): string | undefined {
  return references[0] ?? inReplyTo ?? messageId
}

export interface ParseContext {
  direction: 'incoming' | 'outgoing'
  flags: Iterable<string>
  receivedAt?: Date | undefined
  /** Attachments above this size are reported as `attachment-too-large` (the CRM's limit). */
  maxAttachmentBytes?: number | undefined
}

// ---- problems mailparser reads leniently --------------------------------------------------------

const MAX_MIME_DEPTH = 20
const MAX_ISSUES = 20

function unfoldedHeaders(block: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of block.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i > 0) {
      const name = line.slice(0, i).trim().toLowerCase()
      if (!out.has(name)) out.set(name, line.slice(i + 1).trim())
    }
  }
  return out
}

function charsetKnown(charset: string): boolean {
  try {
    // The decoder mailparser uses: an unknown charset is read as UTF-8 with invalid bytes replaced.
    return libmime.createDecodeStream(charset).supported === true
  } catch {
    return false
  }
}

const MB = (n: number) => `${(n / (1024 * 1024)).toFixed(1)} MB`

/**
 * Walks the MIME tree of a raw message (as latin1 text) for what mailparser accepts silently: a
 * multipart without a boundary or whose closing delimiter never comes, base64 that is not base64, a
 * text part in a charset no decoder knows.
 */
function scanMime(text: string, path: string, depth: number, issues: MessageIssue[]): void {
  if (issues.length >= MAX_ISSUES) return
  const m = /\r?\n\r?\n/.exec(text)
  const headers = unfoldedHeaders(m ? text.slice(0, m.index) : text)
  const body = m ? text.slice(m.index + m[0].length) : ''
  const ct = libmime.parseHeaderValue(headers.get('content-type') ?? 'text/plain')
  const type = String(ct.value || 'text/plain').toLowerCase()
  const params = ct.params as Record<string, string | undefined>
  const where = path === '' ? 'the message' : `part ${path}`
  if (type.startsWith('multipart/')) {
    const boundary = params['boundary']
    if (!boundary) {
      issues.push({ reason: 'broken-mime', message: `${where} is ${type} without a boundary parameter` })
      return
    }
    if (depth >= MAX_MIME_DEPTH) return
    const open = `--${boundary}`
    const close = `--${boundary}--`
    const parts: string[] = []
    let current: string[] | undefined
    let closed = false
    for (const line of body.split(/\r?\n/)) {
      const bare = line.trimEnd()
      if (bare === close) {
        closed = true
        break
      }
      if (bare === open) {
        if (current) parts.push(current.join('\r\n'))
        current = []
      } else current?.push(line)
    }
    if (current) parts.push(current.join('\r\n'))
    if (!closed) issues.push({ reason: 'broken-mime', message: `${where} (${type}, boundary "${boundary.slice(0, 70)}") is never closed: the message is cut off or malformed` })
    if (parts.length === 0) issues.push({ reason: 'broken-mime', message: `${where} (${type}) has no parts` })
    parts.forEach((part, i) => scanMime(part, path === '' ? String(i + 1) : `${path}.${i + 1}`, depth + 1, issues))
    return
  }
  const encoding = (headers.get('content-transfer-encoding') ?? '').trim().toLowerCase()
  if (encoding === 'base64' && /[^A-Za-z0-9+/=\s]/.test(body)) issues.push({ reason: 'broken-mime', message: `${where} (${type}) is declared base64 but is not valid base64` })
  const charset = params['charset']
  if (type.startsWith('text/') && charset && !charsetKnown(charset)) issues.push({ reason: 'unknown-charset', message: `${where} (${type}) is in the unknown charset "${charset.slice(0, 70)}"; it was read as UTF-8, unreadable bytes replaced` })
}

const REPLACEMENT = Buffer.from([0xef, 0xbf, 0xbd])

/** Parses a raw message. Throws `MailServerError('malformed-message')` when the MIME is unusable. */
export async function parseMessage(source: Buffer, ctx: ParseContext): Promise<ParsedEmail> {
  let parsed
  try {
    parsed = await simpleParser(source, { skipHtmlToText: false, skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true })
  } catch (error) {
    throw new MailServerError('malformed-message', `The message could not be parsed as MIME: ${(error as Error).message}`, {}, { cause: error })
  }
  const messageId = normalizeMessageId(parsed.messageId)
  const inReplyTo = normalizeMessageId(parsed.inReplyTo?.split(/\s+/)[0])
  const references = referencesOf(parsed.references)
  const from = addresses(parsed.from)[0]
  if (parsed.headers.size === 0 || (!from && !messageId && parsed.subject === undefined)) {
    throw new MailServerError('malformed-message', 'The message has no usable header (no From, Message-ID or Subject)')
  }
  // Trailing line breaks are transport artefacts (MIME adds one); they are not part of the text.
  let body = (parsed.text ?? (typeof parsed.html === 'string' ? parsed.html : '')).replace(/(\r?\n)+$/, '')
  if (body.length > MAX_BODY_CHARS) body = body.slice(0, MAX_BODY_CHARS)
  const fields: EmailFields = {
    subject: (parsed.subject ?? '').slice(0, 2000),
    body,
    from: from ?? null,
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    bcc: addresses(parsed.bcc),
    direction: ctx.direction,
    categories: categoriesOf(ctx.flags),
  }
  // mailparser turns an unreadable Date header into "now": read the header itself.
  const rawDate = (parsed.headerLines.find((h) => h.key === 'date')?.line ?? '').replace(/^date:\s*/i, '').trim()
  const dateReadable = rawDate !== '' && !Number.isNaN(new Date(rawDate).getTime())
  if (dateReadable && parsed.date && !Number.isNaN(parsed.date.getTime())) fields.sentAt = parsed.date.toISOString()
  if (ctx.receivedAt && !Number.isNaN(ctx.receivedAt.getTime())) fields.receivedAt = ctx.receivedAt.toISOString()
  if (messageId) fields.internetMessageId = messageId
  fields.inReplyTo = inReplyTo ?? null
  const conversationId = conversationIdOf(messageId, inReplyTo, references)
  if (conversationId) fields.conversationId = conversationId
  const concordId = headerString(parsed.headers.get(CONCORD_ID_HEADER.toLowerCase()))?.trim()
  const issues: MessageIssue[] = []
  scanMime(source.toString('latin1'), '', 0, issues)
  if (!issues.some((i) => i.reason === 'unknown-charset' || i.reason === 'broken-mime')) {
    const decoded = [parsed.subject ?? '', parsed.text ?? '', typeof parsed.html === 'string' ? parsed.html : '']
    if (decoded.some((t) => t.includes('\uFFFD')) && !source.includes(REPLACEMENT)) {
      issues.push({ reason: 'invalid-charset-data', message: 'the text has bytes that are invalid in its declared charset; they were replaced (U+FFFD)' })
    }
  }
  if (!parsed.headers.has('date')) issues.push({ reason: 'missing-date', message: 'the message has no Date header: the e-mail has no sent time (senton)' })
  else if (!fields.sentAt) issues.push({ reason: 'missing-date', message: `the Date header is not a date ("${rawDate.slice(0, 80)}"): the e-mail has no sent time (senton)` })
  const maxAttachment = ctx.maxAttachmentBytes
  if (maxAttachment !== undefined) {
    for (const a of parsed.attachments) {
      if (a.size > maxAttachment && issues.length < MAX_ISSUES) {
        issues.push({ reason: 'attachment-too-large', message: `attachment "${(a.filename ?? a.contentType).slice(0, 200)}" (${MB(a.size)}) is above the CRM's attachment limit (${MB(maxAttachment)}); it is not synced, the e-mail is` })
      }
    }
  }
  // One issue per reason (a message is reported once per reason).
  const merged = new Map<MessageIssue['reason'], MessageIssue>()
  for (const i of issues) {
    const prior = merged.get(i.reason)
    merged.set(i.reason, prior ? { reason: i.reason, message: `${prior.message}; ${i.message}` } : i)
  }
  return { fields, concordId: concordId || undefined, references, issues: [...merged.values()] }
}

/** Fields from the server's ENVELOPE when the body cannot be used (too large, broken MIME). Body stays unknown. */
export function fieldsFromEnvelope(env: EnvelopeFacts, ctx: ParseContext): EmailFields {
  const messageId = normalizeMessageId(env.messageId)
  const inReplyTo = normalizeMessageId(env.inReplyTo)
  const fields: EmailFields = {
    subject: (env.subject ?? '').slice(0, 2000),
    from: envelopeAddresses(env.from)[0] ?? null,
    to: envelopeAddresses(env.to),
    cc: envelopeAddresses(env.cc),
    direction: ctx.direction,
    categories: categoriesOf(ctx.flags),
    inReplyTo: inReplyTo ?? null,
  }
  if (env.date && !Number.isNaN(env.date.getTime())) fields.sentAt = env.date.toISOString()
  if (ctx.receivedAt && !Number.isNaN(ctx.receivedAt.getTime())) fields.receivedAt = ctx.receivedAt.toISOString()
  if (messageId) {
    fields.internetMessageId = messageId
    fields.conversationId = inReplyTo ?? messageId
  }
  return fields
}

// ---- composing ---------------------------------------------------------------------------------

const fmt = (a: Address) => (a.name ? { name: a.name, address: a.address } : a.address)

export interface ComposeInput {
  fields: EmailFields
  messageId: string
  concordId?: string | undefined
  date: Date
  /** Keep the Bcc header (the Sent copy does; the message on the wire does not). */
  keepBcc: boolean
  references?: readonly string[] | undefined
}

/** Builds the raw RFC 5322 message for an e-mail's fields. */
export async function composeMessage(input: ComposeInput): Promise<Buffer> {
  const f = input.fields
  if (!f.from) throw new MailServerError('invalid-email', 'The e-mail has no from address (field "from")')
  const headers: Record<string, string> = {}
  if (input.concordId) headers[CONCORD_ID_HEADER] = input.concordId
  const composer = new MailComposer({
    from: fmt(f.from),
    to: (f.to ?? []).map(fmt),
    cc: (f.cc ?? []).map(fmt),
    bcc: (f.bcc ?? []).map(fmt),
    subject: f.subject ?? '',
    text: f.body ?? '',
    messageId: input.messageId,
    date: input.date,
    headers,
    ...(f.inReplyTo ? { inReplyTo: f.inReplyTo } : {}),
    ...(input.references?.length ? { references: [...input.references] } : f.inReplyTo ? { references: [f.inReplyTo] } : {}),
  })
  const node = composer.compile()
  node.keepBcc = input.keepBcc
  return new Promise((resolve, reject) => node.build((err, buf) => (err ? reject(err) : resolve(buf))))
}
