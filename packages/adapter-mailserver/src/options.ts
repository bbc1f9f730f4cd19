import { z } from 'zod'
import { MailServerError } from './errors.js'

const host = z.string().min(1).max(255)
const port = z.number().int().min(1).max(65535)
const secret = z.string().min(1).max(4096)

export const ImapIncomingSchema = z.strictObject({
  protocol: z.literal('imap'),
  host,
  port,
  /** Implicit TLS (993). Plain connections are for 127.0.0.1 tests and trusted networks. */
  secure: z.boolean().default(false),
  user: z.string().min(1).max(320),
  password: secret,
  /** Folders whose mail is synced. The Sent folder is always synced too (outgoing e-mail). */
  folders: z.array(z.string().min(1).max(1000)).min(1).max(100).default(['INBOX']),
  /** Where sent copies are appended and read back from. Created when missing. */
  sentFolder: z.string().min(1).max(1000).default('Sent'),
  /**
   * Use CONDSTORE/QRESYNC (HIGHESTMODSEQ per folder) when the server advertises them. `false`
   * forces plain UID/flag scans, the fallback used for servers without them.
   */
  useCondstore: z.boolean().default(true),
  /** Socket/greeting timeouts, ms. */
  timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
})
export type ImapIncoming = z.output<typeof ImapIncomingSchema>

export const Pop3IncomingSchema = z.strictObject({
  protocol: z.literal('pop3'),
  host,
  port,
  secure: z.boolean().default(false),
  user: z.string().min(1).max(320),
  password: secret,
  /** Leave messages on the server after they were synced (the default, like SSS/E-mail Router). */
  leaveOnServer: z.boolean().default(true),
  timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
})
export type Pop3Incoming = z.output<typeof Pop3IncomingSchema>

export const SmtpOutgoingSchema = z.strictObject({
  host,
  port,
  secure: z.boolean().default(false),
  /** Omit for an unauthenticated relay. */
  user: z.string().min(1).max(320).optional(),
  password: secret.optional(),
  /** Refuse to send unless STARTTLS succeeds (ignored with `secure`). */
  requireTls: z.boolean().default(false),
  timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
})
export type SmtpOutgoing = z.output<typeof SmtpOutgoingSchema>

export const MailServerOptionsSchema = z.strictObject({
  replicaId: z.string().min(1).max(256),
  incoming: z.discriminatedUnion('protocol', [ImapIncomingSchema, Pop3IncomingSchema]),
  outgoing: SmtpOutgoingSchema.optional(),
  /** Domain of generated Message-IDs (`<concord.…@domain>`). Default: the domain of the sender. */
  messageIdDomain: z.string().min(1).max(255).optional(),
  /** Messages above this size are not downloaded (IMAP); the e-mail is synced from its envelope and reported. */
  maxMessageBytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(50 * 1024 * 1024),
  /**
   * The CRM's attachment limit: Dataverse `organization.maxuploadfilesize`, 5 MB (5,242,880 bytes) by
   * default, configurable up to 128 MB. Larger attachments are reported (`attachment-too-large`); the
   * e-mail still syncs.
   */
  maxAttachmentBytes: z.number().int().min(1).max(1024 * 1024 * 1024).default(5 * 1024 * 1024),
  /** The category (an IMAP keyword) that marks an e-mail as tracked (protocols.md §5.8). */
  trackingCategory: z.string().min(1).max(255).default('Tracked to Dynamics 365'),
})
export type MailServerOptionsInput = z.input<typeof MailServerOptionsSchema>
export type MailServerOptions = z.output<typeof MailServerOptionsSchema>

export function parseMailServerOptions(input: unknown): MailServerOptions {
  const r = MailServerOptionsSchema.safeParse(input)
  if (!r.success) {
    const issue = r.error.issues[0]
    const path = issue?.path.map(String).join('.') || '(root)'
    throw new MailServerError('invalid-options', `Invalid mail-server adapter options: ${path}: ${issue?.message ?? 'invalid'}`, {}, { cause: r.error })
  }
  return r.data
}
