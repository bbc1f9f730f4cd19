/** Test environment: a real Dovecot (tools/services), an in-process SMTP sink, and helpers. */
import { startSmtpSink, useDovecot, type DovecotService, type SmtpSink } from '@concord/tools'
export { startSmtpSink, type SmtpSink, type SinkMessage } from '@concord/tools'
import type { Fields } from '@concord/engine'
import { randomBytes } from 'node:crypto'
import { ImapFlow } from 'imapflow'
import { MailServerAdapter, type MailServerAdapterDeps } from '../adapter.js'
import type { MailServerOptionsInput } from '../options.js'

export interface Mailbox {
  user: string
  password: string
}

export interface MailEnv {
  dovecot: DovecotService
  sink: SmtpSink
  /** A fresh, empty account on the Dovecot. */
  mailbox(): Promise<Mailbox>
  imapOptions(box: Mailbox, extra?: Partial<Extract<MailServerOptionsInput['incoming'], { protocol: 'imap' }>>): MailServerOptionsInput
  pop3Options(box: Mailbox, extra?: { leaveOnServer?: boolean }): MailServerOptionsInput
  adapter(options: MailServerOptionsInput, deps?: MailServerAdapterDeps): MailServerAdapter
  /** An IMAP session as the mailbox owner ("a person with a mail client"). */
  client(box: Mailbox): Promise<ImapFlow>
  close(): Promise<void>
}

/**
 * Accounts are created with the server (Dovecot re-reads its passwd-file at most once a second, so
 * adding one per test would cost a second each); `mailbox()` hands them out, then falls back to addUser.
 */
export async function startMailEnv(options: { accounts?: number } = {}): Promise<MailEnv> {
  const tag = randomBytes(3).toString('hex')
  const pool: Mailbox[] = Array.from({ length: options.accounts ?? 24 }, (_, i) => ({ user: `m${i}x${tag}`, password: `pw${tag}${i}` }))
  // A Dovecot of this test file's own (not the shared one `npm test` exports): the accounts below are this file's alone.
  const dovecot = await useDovecot({ via: ['local-binary'], users: pool.map((b) => ({ name: b.user, password: b.password })) })
  const sink = await startSmtpSink()
  const adapters: MailServerAdapter[] = []
  const clients: ImapFlow[] = []
  let n = 0
  return {
    dovecot,
    sink,
    async mailbox() {
      const pooled = pool.shift()
      if (pooled) return pooled
      const box = { user: `u${++n}x${randomBytes(4).toString('hex')}`, password: `pw${randomBytes(6).toString('hex')}` }
      await dovecot.addUser({ name: box.user, password: box.password })
      return box
    },
    imapOptions(box, extra = {}) {
      return {
        replicaId: `imap:${box.user}`,
        incoming: { protocol: 'imap', host: dovecot.host, port: dovecot.imapPort, user: box.user, password: box.password, ...extra },
        outgoing: { host: '127.0.0.1', port: sink.port },
      }
    },
    pop3Options(box, extra = {}) {
      return {
        replicaId: `pop3:${box.user}`,
        incoming: { protocol: 'pop3', host: dovecot.host, port: dovecot.pop3Port, user: box.user, password: box.password, ...extra },
        outgoing: { host: '127.0.0.1', port: sink.port },
      }
    },
    adapter(options, deps) {
      const a = new MailServerAdapter(options, deps)
      adapters.push(a)
      return a
    },
    async client(box) {
      // Users are re-read by Dovecot when the file changes; retry the first login briefly.
      for (let i = 0; ; i++) {
        const c = new ImapFlow({ host: dovecot.host, port: dovecot.imapPort, secure: false, auth: { user: box.user, pass: box.password }, logger: false, disableAutoIdle: true })
        try {
          await c.connect()
          clients.push(c)
          return c
        } catch (error) {
          c.close()
          if (i >= 20) throw error
          await new Promise((r) => setTimeout(r, 100))
        }
      }
    },
    async close() {
      for (const a of adapters) await a.close().catch(() => {})
      for (const c of clients) await c.logout().catch(() => c.close())
      await sink.close()
      await dovecot.stop()
    },
  }
}

/** A raw RFC 5322 message. */
export function rawMail(opts: { messageId?: string | null; subject: string; from?: string; to?: string; body?: string; inReplyTo?: string; references?: string; date?: Date; extraHeaders?: string }): Buffer {
  const lines = [
    `From: ${opts.from ?? 'Carol Client <carol@fabrikam.test>'}`,
    `To: ${opts.to ?? 'Alice Adams <alice@contoso.test>'}`,
    `Subject: ${opts.subject}`,
    `Date: ${(opts.date ?? new Date('2026-11-20T10:00:00Z')).toUTCString()}`,
    ...(opts.messageId === null ? [] : [`Message-ID: ${opts.messageId ?? `<${randomBytes(8).toString('hex')}@fabrikam.test>`}`]),
    ...(opts.inReplyTo ? [`In-Reply-To: ${opts.inReplyTo}`] : []),
    ...(opts.references ? [`References: ${opts.references}`] : []),
    ...(opts.extraHeaders ? [opts.extraHeaders] : []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    opts.body ?? 'Hello from the test.',
    '',
  ]
  return Buffer.from(lines.join('\r\n'))
}

/** Sample e-mail fields the IMAP replica round-trips (the contract suite's sample, sized to the profile). */
export function mailSampleFields(n: number): Fields {
  return {
    subject: `Quarterly review #${n}`,
    body: `Hello,\nplease find the numbers for round ${n}.`,
    from: { name: 'Alice Adams', address: 'alice@contoso.test' },
    to: [{ name: 'Bob Brown', address: 'bob@fabrikam.test' }],
    direction: 'outgoing',
    internetMessageId: `<msg-${n}-${randomBytes(4).toString('hex')}@contoso.test>`,
    categories: n % 2 ? ['Tracked to Dynamics 365'] : [],
  }
}

/**
 * Bulk delivery: IMAP APPENDs pipelined on one connection with non-synchronizing literals
 * (LITERAL+, RFC 7888; Dovecot has it), so N messages cost about one round trip instead of N.
 */
export async function bulkAppend(host: string, port: number, box: Mailbox, folder: string, messages: readonly Buffer[]): Promise<void> {
  const { connect } = await import('node:net')
  const socket = connect({ host, port })
  socket.setNoDelay(true)
  let buffer = ''
  const waiters: Array<{ tag: string; resolve: (line: string) => void }> = []
  let greeting: ((line: string) => void) | undefined
  const greeted = new Promise<string>((resolve) => (greeting = resolve))
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1')
    let nl: number
    while ((nl = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 2)
      if (greeting) {
        greeting(line)
        greeting = undefined
        continue
      }
      const w = waiters[0]
      if (w && line.startsWith(`${w.tag} `)) {
        waiters.shift()
        w.resolve(line)
      }
    }
  })
  const done = (tag: string) => new Promise<string>((resolve) => waiters.push({ tag, resolve }))
  const quote = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`
  try {
    await greeted
    const login = done('L')
    socket.write(`L LOGIN ${quote(box.user)} ${quote(box.password)}\r\n`)
    const ok = await login
    if (!ok.startsWith('L OK')) throw new Error(`bulkAppend login: ${ok}`)
    const results: Array<Promise<string>> = []
    messages.forEach((raw, i) => {
      const tag = `A${i}`
      results.push(done(tag))
      socket.write(Buffer.concat([Buffer.from(`${tag} APPEND ${quote(folder)} {${raw.length}+}\r\n`), raw, Buffer.from('\r\n')]))
    })
    const lines = await Promise.all(results)
    const bad = lines.find((l) => !/^A\d+ OK/.test(l))
    if (bad) throw new Error(`bulkAppend: ${bad}`)
    socket.write('Z LOGOUT\r\n')
  } finally {
    socket.end()
  }
}
