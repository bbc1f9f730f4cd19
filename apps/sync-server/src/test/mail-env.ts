/** Mail-server test helpers: an in-process SMTP sink and delivery into a real Dovecot over LMTP. */
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'

export { startSmtpSink, type SmtpSink, type SinkMessage } from '@concord/tools'

/** One LMTP session (RFC 2033) with PIPELINING (RFC 2920): one round trip per message (the `354`). */
class LmtpSession {
  private buffer = ''
  private waiter: (() => void) | undefined
  private failure: Error | undefined

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      this.buffer += chunk
      this.waiter?.()
    })
    const fail = (e: Error) => {
      this.failure ??= e
      this.waiter?.()
    }
    socket.on('error', fail)
    socket.on('close', () => fail(new Error('the LMTP server closed the connection')))
  }

  static async open(host: string, port: number): Promise<LmtpSession> {
    const socket = connect({ host, port })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    const s = new LmtpSession(socket)
    await s.expect(/^220/)
    s.socket.write('LHLO concord.test\r\n')
    const hello = await s.expect(/^250/)
    if (!hello.some((l) => /PIPELINING/i.test(l))) throw new Error('the LMTP server does not offer PIPELINING')
    return s
  }

  /** The next complete (possibly multi-line) reply; throws unless its code matches. */
  async expect(code: RegExp): Promise<string[]> {
    for (;;) {
      const lines = this.buffer.split('\r\n')
      for (let i = 0; i < lines.length - 1; i++) {
        if (/^\d{3}-/.test(lines[i]!)) continue
        const reply = lines.slice(0, i + 1)
        this.buffer = lines.slice(i + 1).join('\r\n')
        if (!code.test(lines[i]!)) throw new Error(`LMTP: ${reply.join(' | ')}`)
        return reply
      }
      if (this.failure) throw this.failure
      await new Promise<void>((r) => (this.waiter = r))
      this.waiter = undefined
    }
  }

  /** Delivers messages in order; each message's envelope is written together with the previous message's data. */
  async deliver(user: string, raws: readonly Buffer[]): Promise<void> {
    const envelope = `MAIL FROM:<mta@fabrikam.test>\r\nRCPT TO:<${user}@localhost>\r\nDATA\r\n`
    let pending = envelope
    for (const [i, raw] of raws.entries()) {
      this.socket.write(pending, 'latin1')
      if (i > 0) await this.expect(/^250/) // the previous message, delivered (one reply per recipient)
      await this.expect(/^250/) // MAIL
      await this.expect(/^250/) // RCPT
      await this.expect(/^354/) // DATA
      this.socket.write(dotStuffed(raw), 'latin1')
      pending = i + 1 < raws.length ? `\r\n.\r\n${envelope}` : '\r\n.\r\n'
    }
    if (raws.length > 0) {
      this.socket.write(pending, 'latin1')
      await this.expect(/^250/)
    }
  }

  async close(): Promise<void> {
    this.socket.write('QUIT\r\n')
    await this.expect(/^221/).catch(() => [])
    this.socket.destroy()
  }
}

/** Message data as the DATA phase needs it: CRLF line ends, leading dots doubled, no trailing CRLF. */
function dotStuffed(raw: Buffer): string {
  const text = raw.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/\r\n$/, '')
  return text.replace(/(^|\r\n)\./g, '$1..')
}

/**
 * Delivers raw messages to a Dovecot user over LMTP, as an MTA would. `connections` > 1 delivers over
 * that many parallel sessions (message i on session i mod n, each session in order): only for messages
 * whose relative delivery order does not matter.
 */
export async function deliver(host: string, lmtpPort: number, user: string, raws: readonly Buffer[], connections = 1): Promise<void> {
  const n = Math.max(1, Math.min(connections, raws.length))
  const sessions = await Promise.all(Array.from({ length: n }, () => LmtpSession.open(host, lmtpPort)))
  try {
    await Promise.all(sessions.map((s, k) => s.deliver(user, raws.filter((_, i) => i % n === k))))
  } finally {
    await Promise.all(sessions.map((s) => s.close()))
  }
}

/** A raw RFC 5322 message. `date: null` leaves the Date header out. */
export function rawMail(opts: { messageId?: string; subject: string; from?: string; to?: string; body?: string; inReplyTo?: string; references?: string; date?: Date | null; contentType?: string; bodyBytes?: Buffer; headers?: string[] }): Buffer {
  const head = [
    `From: ${opts.from ?? 'Carol Client <carol@fabrikam.test>'}`,
    `To: ${opts.to ?? 'Ina <ina@contoso.test>'}`,
    `Subject: ${opts.subject}`,
    ...(opts.date === null ? [] : [`Date: ${(opts.date ?? new Date('2026-11-20T10:00:00Z')).toUTCString()}`]),
    `Message-ID: ${opts.messageId ?? `<${randomBytes(8).toString('hex')}@fabrikam.test>`}`,
    ...(opts.inReplyTo ? [`In-Reply-To: ${opts.inReplyTo}`] : []),
    ...(opts.references ? [`References: ${opts.references}`] : []),
    'MIME-Version: 1.0',
    ...(opts.headers ?? []),
    `Content-Type: ${opts.contentType ?? 'text/plain; charset=utf-8'}`,
    '',
    '',
  ].join('\r\n')
  return Buffer.concat([Buffer.from(head), opts.bodyBytes ?? Buffer.from(`${opts.body ?? 'Hello from the test.'}\r\n`)])
}
