import nodemailer, { type Transporter } from 'nodemailer'
import { MailServerError, classifyTransportError } from './errors.js'
import type { SmtpOutgoing } from './options.js'

export interface SmtpEnvelope {
  from: string
  to: string[]
}

/** One SMTP submission over nodemailer (pooled connection per adapter). */
export class SmtpSender {
  private transporter: Transporter | undefined
  constructor(private readonly options: SmtpOutgoing) {}

  private get(): Transporter {
    this.transporter ??= nodemailer.createTransport({
      host: this.options.host,
      port: this.options.port,
      secure: this.options.secure,
      requireTLS: this.options.requireTls,
      ...(this.options.user !== undefined ? { auth: { user: this.options.user, pass: this.options.password ?? '' } } : {}),
      connectionTimeout: this.options.timeoutMs,
      greetingTimeout: this.options.timeoutMs,
      socketTimeout: this.options.timeoutMs,
      tls: { rejectUnauthorized: true },
    })
    return this.transporter
  }

  /** Resolves once the server accepted the message for at least one recipient. */
  async send(envelope: SmtpEnvelope, raw: Buffer): Promise<{ accepted: string[]; rejected: string[] }> {
    if (envelope.to.length === 0) throw new MailServerError('invalid-email', 'The e-mail has no recipient (fields "to", "cc", "bcc" are empty)')
    let info: { accepted?: unknown[]; rejected?: unknown[] }
    try {
      info = (await this.get().sendMail({ envelope: { from: envelope.from, to: envelope.to }, raw })) as { accepted?: unknown[]; rejected?: unknown[] }
    } catch (error) {
      throw classifyTransportError('SMTP', error)
    }
    const accepted = (info.accepted ?? []).map(String)
    const rejected = (info.rejected ?? []).map(String)
    if (accepted.length === 0) throw new MailServerError('smtp-rejected', `SMTP accepted no recipient (rejected: ${rejected.join(', ')})`)
    return { accepted, rejected }
  }

  close(): void {
    this.transporter?.close()
    this.transporter = undefined
  }
}
