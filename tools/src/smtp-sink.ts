/** An in-process SMTP sink for tests (smtp-server on 127.0.0.1:0) that keeps every accepted message. */
import { SMTPServer } from 'smtp-server'

export interface SinkMessage {
  from: string
  to: string[]
  /** The message as received (RFC 5322 bytes). */
  raw: Buffer
  /** The Message-ID header, angle brackets included. */
  messageId: string | undefined
}

export interface SmtpSink {
  port: number
  messages: SinkMessage[]
  close(): Promise<void>
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: SinkMessage[] = []
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('error', (err: Error) => callback(err))
      stream.on('end', () => {
        const raw = Buffer.concat(chunks)
        const head = raw.subarray(0, Math.max(0, raw.indexOf('\r\n\r\n')) || raw.length).toString('utf8')
        const messageId = /^message-id:\s*(<[^>]+>)/im.exec(head)?.[1]
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
