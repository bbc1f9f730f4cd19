/** Mail-server test helpers: an in-process SMTP sink and delivery into a real Dovecot over LMTP. */
import { randomBytes } from 'node:crypto'
import nodemailer from 'nodemailer'
import { SMTPServer } from 'smtp-server'

export interface SinkMessage {
  from: string
  to: string[]
  raw: string
  messageId: string | undefined
}

export interface SmtpSink {
  port: number
  messages: SinkMessage[]
  close(): Promise<void>
}

/** smtp-server on 127.0.0.1:0 that keeps every accepted message. */
export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: SinkMessage[] = []
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8')
        const messageId = /^message-id:\s*(<[^>]+>)/im.exec(raw)?.[1]
        messages.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), raw, messageId })
        callback()
      })
    },
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return { port, messages, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

/** Delivers raw messages to a Dovecot user over LMTP (as an MTA would), on one pooled connection. */
export async function deliver(host: string, lmtpPort: number, user: string, raws: readonly Buffer[]): Promise<void> {
  const transport = nodemailer.createTransport({ host, port: lmtpPort, lmtp: true, ignoreTLS: true, pool: true, maxConnections: 1, maxMessages: Infinity })
  try {
    for (const raw of raws) await transport.sendMail({ envelope: { from: 'mta@fabrikam.test', to: [`${user}@localhost`] }, raw })
  } finally {
    transport.close()
  }
}

/** A raw RFC 5322 message. `date: null` leaves the Date header out. */
export function rawMail(opts: { messageId?: string; subject: string; from?: string; to?: string; body?: string; inReplyTo?: string; references?: string; date?: Date | null; contentType?: string; bodyBytes?: Buffer }): Buffer {
  const head = [
    `From: ${opts.from ?? 'Carol Client <carol@fabrikam.test>'}`,
    `To: ${opts.to ?? 'Ina <ina@contoso.test>'}`,
    `Subject: ${opts.subject}`,
    ...(opts.date === null ? [] : [`Date: ${(opts.date ?? new Date('2026-11-20T10:00:00Z')).toUTCString()}`]),
    `Message-ID: ${opts.messageId ?? `<${randomBytes(8).toString('hex')}@fabrikam.test>`}`,
    ...(opts.inReplyTo ? [`In-Reply-To: ${opts.inReplyTo}`] : []),
    ...(opts.references ? [`References: ${opts.references}`] : []),
    'MIME-Version: 1.0',
    `Content-Type: ${opts.contentType ?? 'text/plain; charset=utf-8'}`,
    '',
    '',
  ].join('\r\n')
  return Buffer.concat([Buffer.from(head), opts.bodyBytes ?? Buffer.from(`${opts.body ?? 'Hello from the test.'}\r\n`)])
}
