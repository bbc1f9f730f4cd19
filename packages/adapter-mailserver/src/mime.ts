/**
 * MIME in and out: a raw RFC 5322 message → the engine's e-mail fields (mailparser), and e-mail
 * fields → a raw message (nodemailer's composer). Also the IMAP keyword ↔ category encoding.
 */
import { createHash } from 'node:crypto'
import { type Address, type EmailFields, type NativeId, asNativeId } from '@concord/engine'
import { simpleParser, type AddressObject, type HeaderValue } from 'mailparser'
import MailComposer from 'nodemailer/lib/mail-composer/index.js'
import { MailServerError } from './errors.js'

/** Header carrying the Concord id on messages Concord wrote (sent copies, replacements). */
export const CONCORD_ID_HEADER = 'X-Concord-Id'
/** The engine's body limit (BodySchema). */
const MAX_BODY_CHARS = 4 * 1024 * 1024

export interface ParsedEmail {
  fields: EmailFields
  concordId?: string | undefined
  /** References header, oldest first (what correlation walks). */
  references: string[]
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
}

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
  if (parsed.date && !Number.isNaN(parsed.date.getTime())) fields.sentAt = parsed.date.toISOString()
  if (ctx.receivedAt && !Number.isNaN(ctx.receivedAt.getTime())) fields.receivedAt = ctx.receivedAt.toISOString()
  if (messageId) fields.internetMessageId = messageId
  fields.inReplyTo = inReplyTo ?? null
  const conversationId = conversationIdOf(messageId, inReplyTo, references)
  if (conversationId) fields.conversationId = conversationId
  const concordId = headerString(parsed.headers.get(CONCORD_ID_HEADER.toLowerCase()))?.trim()
  return { fields, concordId: concordId || undefined, references }
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
