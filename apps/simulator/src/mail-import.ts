import { readdir, readFile, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { type Fields, parseFields } from '@concord/engine'
import { SimulatorError } from './errors.js'
import { type Workload, type WorkloadEvent, DAY, sortEvents } from './workload.js'

/** Result of importing a mailbox: the replayable workload and the messages that had to be skipped. */
export interface MailImport {
  workload: Workload
  imported: number
  /** Messages without a usable Date header (`where` is `file` or `file#n`). */
  skipped: Array<{ where: string; reason: string }>
}

interface RawMessage {
  where: string
  headers: Map<string, string>
}

/** Splits an mbox file into messages ("From " separator lines; `>From ` quoting is left alone). */
export function splitMbox(text: string): string[] {
  const out: string[] = []
  let current: string[] | null = null
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('From ') && (current === null || current.at(-1) === '' || current.length === 0)) {
      if (current) out.push(current.join('\n'))
      current = []
      continue
    }
    current?.push(line)
  }
  if (current && current.some((l) => l.trim() !== '')) out.push(current.join('\n'))
  return out
}

/** Parses the header block of an RFC 5322 message (unfolds continuation lines, lower-case names, first value wins). */
export function parseHeaders(message: string): Map<string, string> {
  const headers = new Map<string, string>()
  const lines = message.split(/\r?\n/)
  let name: string | null = null
  let value = ''
  const flush = () => {
    if (name !== null && !headers.has(name)) headers.set(name, decodeEncodedWords(value.trim()))
  }
  for (const line of lines) {
    if (line === '') break
    if (/^[ \t]/.test(line) && name !== null) {
      value += ' ' + line.trim()
      continue
    }
    flush()
    const colon = line.indexOf(':')
    if (colon <= 0) {
      name = null
      continue
    }
    name = line.slice(0, colon).trim().toLowerCase()
    value = line.slice(colon + 1)
  }
  flush()
  return headers
}

/** Decodes RFC 2047 encoded words (`=?utf-8?B?...?=`, `=?iso-8859-1?Q?...?=`). */
export function decodeEncodedWords(value: string): string {
  return value.replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=(\s+(?==\?))?/g, (_m, charset: string, enc: string, text: string) => {
    const bytes = enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64') : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1')
    try {
      return new TextDecoder(charset.toLowerCase()).decode(bytes)
    } catch {
      return bytes.toString('utf8')
    }
  })
}

function parseAddress(value: string | undefined): { name?: string; address: string } | undefined {
  if (!value) return undefined
  const angle = /^(.*)<([^>]+)>/.exec(value)
  const address = (angle ? angle[2]! : value).trim().slice(0, 320)
  if (address === '') return undefined
  const name = angle ? angle[1]!.trim().replace(/^"|"$/g, '').slice(0, 512) : ''
  return name ? { name, address } : { address }
}

function toEmailFields(headers: Map<string, string>, receivedAt: number, outgoing: boolean): Fields {
  const fields: Fields = { direction: outgoing ? 'outgoing' : 'incoming', [outgoing ? 'sentAt' : 'receivedAt']: new Date(receivedAt).toISOString() }
  const subject = headers.get('subject')
  if (subject !== undefined) fields.subject = subject.slice(0, 2000)
  const from = parseAddress(headers.get('from'))
  if (from) fields.from = from
  const to = (headers.get('to') ?? '')
    .split(',')
    .map((s) => parseAddress(s.trim()))
    .filter((a) => a !== undefined)
    .slice(0, 1000)
  if (to.length > 0) fields.to = to
  const id = headers.get('message-id')
  if (id) fields.internetMessageId = id.slice(0, 998)
  const reply = headers.get('in-reply-to')
  if (reply) fields.inReplyTo = reply.slice(0, 998)
  return fields
}

async function isMaildir(path: string): Promise<boolean> {
  try {
    return (await stat(join(path, 'cur'))).isDirectory() || (await stat(join(path, 'new'))).isDirectory()
  } catch {
    return false
  }
}

async function readMaildir(path: string): Promise<RawMessage[]> {
  const out: RawMessage[] = []
  // the Maildir itself and Maildir++ sub-folders (".Sent", ".Archive", ...)
  const folders = [path]
  for (const entry of (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) if (entry.isDirectory() && entry.name.startsWith('.')) folders.push(join(path, entry.name))
  for (const folder of folders) {
    for (const sub of ['cur', 'new']) {
      let names: string[]
      try {
        names = (await readdir(join(folder, sub))).sort()
      } catch {
        continue
      }
      for (const name of names) {
        const file = join(folder, sub, name)
        out.push({ where: file, headers: parseHeaders(await readFile(file, 'latin1')) })
      }
    }
  }
  return out
}

/**
 * Imports an mbox file or a Maildir folder as one mailbox's workload: every message becomes an
 * email created on the mailbox side at its Date header (time 0 = midnight UTC of the earliest day).
 * Messages under a folder or file whose name contains "sent" are outgoing.
 */
export async function importMailbox(path: string, mailboxId = basename(path).replace(/[^A-Za-z0-9@._+-]/g, '_') || 'mailbox'): Promise<MailImport> {
  let raw: RawMessage[]
  try {
    if (await isMaildir(path)) raw = await readMaildir(path)
    else raw = splitMbox(await readFile(path, 'latin1')).map((m, i) => ({ where: `${path}#${i + 1}`, headers: parseHeaders(m) }))
  } catch (error) {
    throw new SimulatorError('Import', `cannot read mailbox ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error })
  }
  const skipped: MailImport['skipped'] = []
  const dated: Array<{ at: number; m: RawMessage }> = []
  for (const m of raw) {
    const date = m.headers.get('date')
    const at = date === undefined ? Number.NaN : Date.parse(date.replace(/\s*\([^)]*\)\s*$/, ''))
    if (!Number.isFinite(at)) skipped.push({ where: m.where, reason: date === undefined ? 'no Date header' : `unreadable Date header "${date}"` })
    else dated.push({ at, m })
  }
  if (dated.length === 0) throw new SimulatorError('Import', `no message with a usable Date header in ${path}`)
  const start = Math.floor(Math.min(...dated.map((d) => d.at)) / DAY) * DAY
  const events: WorkloadEvent[] = []
  for (const [n, { at, m }] of dated.entries()) {
    const fields = toEmailFields(m.headers, at, /sent/i.test(m.where.slice(path.length)) || /sent/i.test(basename(path)))
    try {
      parseFields('email', fields)
    } catch (error) {
      skipped.push({ where: m.where, reason: (error as Error).message })
      continue
    }
    events.push({ t: at - start, mailbox: mailboxId, side: 'mailbox', op: 'create', kind: 'email', item: `msg-${n}`, fields })
  }
  sortEvents(events)
  const last = events.at(-1)?.t ?? 0
  return { workload: { mailboxes: [mailboxId], events, durationMs: Math.max(DAY, Math.ceil((last + 1) / DAY) * DAY) }, imported: events.length, skipped }
}
