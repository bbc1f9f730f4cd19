/**
 * Test & Enable for imap/pop3 mailboxes: log in over IMAP (adapter-mailserver) or POP3, and greet
 * (and, with SMTP credentials, authenticate to) the SMTP server. Appointments, contacts and tasks are
 * not run: these profiles sync email only. Passwords are never part of a reason.
 */
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { MailServerAdapter } from '@concord/adapter-mailserver'
import type { MailEndpoint } from '../config.js'
import type { TestStatus } from './directory.js'
import { type MailboxBinding, mailServerOptionsOf } from './profiles.js'

type MailBinding = Extract<MailboxBinding, { type: 'imap' | 'pop3' }>

/** A line-oriented dialog (POP3, SMTP): `expect` reads the next complete reply. */
async function dialog<T>(endpoint: MailEndpoint, fn: (say: (line: string | null, ok: RegExp) => Promise<string>) => Promise<T>): Promise<T> {
  const socket: Socket = endpoint.tls ? tlsConnect({ host: endpoint.host, port: endpoint.port, servername: endpoint.host }) : tcpConnect({ host: endpoint.host, port: endpoint.port })
  socket.setTimeout(endpoint.timeoutMs)
  let buffer = ''
  let waiter: (() => void) | undefined
  let failure: Error | undefined
  socket.on('data', (c: Buffer) => {
    buffer += c.toString('utf8')
    waiter?.()
  })
  const fail = (e: Error) => {
    failure ??= e
    waiter?.()
  }
  socket.on('error', fail)
  socket.on('timeout', () => fail(new Error(`no answer from ${endpoint.host}:${endpoint.port}`)))
  socket.on('close', () => fail(new Error(`${endpoint.host}:${endpoint.port} closed the connection`)))
  /** One reply: POP3 `+OK`/`-ERR` line, SMTP the last line of a multi-line `250-…/250 …` reply. */
  const reply = async (): Promise<string> => {
    for (;;) {
      const lines = buffer.split('\r\n')
      for (let i = 0; i < lines.length - 1; i++) {
        const line = lines[i]!
        if (!/^\d{3}-/.test(line)) {
          buffer = lines.slice(i + 1).join('\r\n')
          return line
        }
      }
      if (failure) throw failure
      await new Promise<void>((r) => (waiter = r))
      waiter = undefined
    }
  }
  const say = async (line: string | null, ok: RegExp): Promise<string> => {
    if (line !== null) socket.write(`${line}\r\n`)
    const r = await reply()
    if (!ok.test(r)) throw new Error(r.replace(/[^\x20-\x7e]/g, '').slice(0, 200))
    return r
  }
  try {
    return await fn(say)
  } finally {
    socket.destroy()
  }
}

async function testIncoming(binding: MailBinding, email: string, mailboxId: string): Promise<void> {
  if (binding.type === 'imap') {
    const adapter = new MailServerAdapter(mailServerOptionsOf(binding, `test:${mailboxId}`, email))
    try {
      await adapter.usesCondstore() // connects and logs in
    } finally {
      await adapter.close()
    }
    return
  }
  await dialog(binding.server.incoming!, async (say) => {
    await say(null, /^\+OK/)
    await say(`USER ${binding.credentials.user}`, /^\+OK/)
    try {
      await say(`PASS ${binding.credentials.password}`, /^\+OK/)
    } catch {
      throw new Error(`POP3 login of ${binding.credentials.user} was refused`)
    }
    await say('QUIT', /^\+OK/).catch(() => '')
  })
}

async function testOutgoing(binding: MailBinding): Promise<void> {
  const smtp = binding.server.outgoing
  if (!smtp) throw new Error(`email server profile "${binding.profile}" has no outgoing (SMTP) server`)
  await dialog(smtp, async (say) => {
    await say(null, /^220/)
    await say('EHLO concord.invalid', /^250/)
    const { smtpUser, smtpPassword } = binding.credentials
    if (smtpUser !== undefined && smtpPassword !== undefined) {
      try {
        await say(`AUTH PLAIN ${Buffer.from(`\u0000${smtpUser}\u0000${smtpPassword}`).toString('base64')}`, /^235/)
      } catch {
        throw new Error(`SMTP login of ${smtpUser} was refused`)
      }
    }
    await say('QUIT', /^221/).catch(() => '')
  })
}

/** Test & Enable of an imap/pop3 mailbox: incoming login, SMTP reachability (and login); ACT not run. */
export async function testMailServerMailbox(binding: MailBinding, row: { mailboxId: string; email: string }): Promise<{ incoming: TestStatus; outgoing: TestStatus; act: TestStatus; reason?: string | undefined }> {
  const reasons: string[] = []
  const run = async (what: string, fn: () => Promise<void>): Promise<TestStatus> => {
    try {
      await fn()
      return 'success'
    } catch (error) {
      reasons.push(`${what}: ${error instanceof Error ? error.message : String(error)}`)
      return 'failure'
    }
  }
  const incoming = await run(binding.type.toUpperCase(), () => testIncoming(binding, row.email, row.mailboxId))
  const outgoing = await run('SMTP', () => testOutgoing(binding))
  return { incoming, outgoing, act: 'not-run', ...(reasons.length ? { reason: reasons.join('; ') } : {}) }
}
