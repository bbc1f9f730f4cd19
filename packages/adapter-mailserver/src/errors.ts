/**
 * Errors of the mail-server adapter. Every failure is a `SyncError` (the engine's one error type)
 * with a closed `reason` naming what went wrong on the IMAP/POP3/SMTP side.
 */
import { SyncError, type SyncErrorCode, type SyncErrorDetails } from '@concord/engine'

export const MailServerErrorReasons = [
  /** Appointments, contacts and tasks: a POP3/IMAP + SMTP profile syncs e-mail only (protocols.md §5.1). */
  'unsupported-kind',
  /** Manual tracking (the tracking category) on a POP3/SMTP profile (protocols.md §5.1). */
  'manual-tracking-unsupported',
  /** An operation the profile cannot do (e.g. editing a message over POP3, creating an incoming e-mail). */
  'unsupported-operation',
  /** A crash hit between handing a message to SMTP and recording it: it is not sent again automatically. */
  'send-uncertain',
  /** The SMTP server refused the message or a recipient. */
  'smtp-rejected',
  /** A message whose MIME could not be parsed; its envelope is still reported. */
  'malformed-message',
  /** A message above `maxMessageBytes`; its envelope is still reported, the body is not downloaded. */
  'message-too-large',
  // Problems of a message that is still synced with its content (mailparser reads it leniently):
  /** A text part's charset is unknown: its bytes were read as UTF-8, invalid ones replaced (U+FFFD). */
  'unknown-charset',
  /** Bytes that are invalid in the declared charset were replaced (U+FFFD): the charset is wrong. */
  'invalid-charset-data',
  /** No (readable) Date header: the e-mail has no sent time. */
  'missing-date',
  /** Broken MIME structure: an unterminated multipart, a multipart without boundary, invalid base64. */
  'broken-mime',
  /** An attachment above `maxAttachmentBytes` (the CRM's attachment limit): not synced. */
  'attachment-too-large',
  /** The server dropped the connection or did not answer. Retryable: the cursor did not advance. */
  'connection-lost',
  /** Login refused. */
  'auth-failed',
  /** The e-mail to send lacks a field SMTP needs, or has an invalid one. */
  'invalid-email',
  /** Adapter options or a cursor did not parse. */
  'invalid-options',
  'invalid-cursor',
] as const
export type MailServerErrorReason = (typeof MailServerErrorReasons)[number]

const CODE_OF: Record<MailServerErrorReason, SyncErrorCode> = {
  'unsupported-kind': 'Validation',
  'manual-tracking-unsupported': 'Validation',
  'unsupported-operation': 'Validation',
  'send-uncertain': 'Internal',
  'smtp-rejected': 'Validation',
  'malformed-message': 'InvalidRemoteData',
  'message-too-large': 'InvalidRemoteData',
  'unknown-charset': 'InvalidRemoteData',
  'invalid-charset-data': 'InvalidRemoteData',
  'missing-date': 'InvalidRemoteData',
  'broken-mime': 'InvalidRemoteData',
  'attachment-too-large': 'InvalidRemoteData',
  'connection-lost': 'Transient',
  'auth-failed': 'Unauthorized',
  'invalid-email': 'Validation',
  'invalid-options': 'Config',
  'invalid-cursor': 'Validation',
}

export class MailServerError extends SyncError {
  override name = 'MailServerError'
  constructor(
    readonly reason: MailServerErrorReason,
    message: string,
    details: SyncErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(CODE_OF[reason], message, details, options)
  }
}

/** Network-level failures (socket closed, reset, timeout) become a retryable `connection-lost`. */
export function classifyTransportError(what: string, error: unknown): SyncError {
  if (error instanceof SyncError) return error
  const e = error as { code?: unknown; message?: unknown; authenticationFailed?: unknown; responseCode?: unknown; serverResponseCode?: unknown }
  const responseText = (error as { responseText?: unknown })?.responseText
  const message = (typeof e?.message === 'string' ? e.message : String(error)) + (typeof responseText === 'string' && responseText ? ` (${responseText})` : '')
  if (e?.authenticationFailed === true || e?.serverResponseCode === 'AUTHENTICATIONFAILED' || e?.code === 'EAUTH') {
    return new MailServerError('auth-failed', `${what}: login refused (${message})`, {}, { cause: error })
  }
  if (typeof e?.responseCode === 'number' && e.responseCode >= 500 && e.responseCode < 600) {
    return new MailServerError('smtp-rejected', `${what}: the SMTP server refused the message (${e.responseCode}: ${message})`, {}, { cause: error })
  }
  return new MailServerError('connection-lost', `${what}: ${message}`, {}, { cause: error })
}
