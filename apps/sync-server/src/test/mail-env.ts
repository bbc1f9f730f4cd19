/** Mail-server test helpers: an in-process SMTP sink and delivery into a real Dovecot over LMTP. */
import { randomBytes } from 'node:crypto'
import nodemailer from 'nodemailer'

export { startSmtpSink, type SmtpSink, type SinkMessage } from '@concord/tools'

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
