import { CursorExpiredError, PreconditionFailedError, SyncError, type SyncErrorCode } from '@concord/engine'

/**
 * The closed set of error codes of the client-sync protocol. They travel on the wire in `error`
 * messages, so they never change meaning.
 */
export const ProtocolErrorCodes = [
  /** The frame is not valid JSON or does not match the message schema (the connection is kept). */
  'bad_request',
  /** The client speaks a protocol version the server does not (the connection is closed). */
  'unsupported_version',
  /** The `hello` token was refused (the connection is closed). */
  'unauthorized',
  /** The request names another user's items, or a record the user may not read. */
  'forbidden',
  /** `syncNow` (or a server pull/push) on a client that is not the user's designated sync client. */
  'not_designated',
  /** The request carried a fencing token that is no longer current: another client was designated. */
  'fenced',
  /** The frame, or the answer it would need, exceeds the maximum frame size. */
  'too_large',
  /** No answer within the request timeout. */
  'timeout',
  /** The connection closed, or the service behind it is temporarily unavailable (retryable). */
  'unavailable',
  /** The replica cursor is no longer valid; the server pulls from the beginning. */
  'cursor_expired',
  /** The record does not exist. */
  'not_found',
  /** A bug or an unexpected failure on the other side. */
  'internal',
  /**
   * The action needs server-side synchronization and the user's mailbox is not enabled for it (App for
   * Outlook: Track, Set Regarding, Stop tracking, Add contact). Not retryable until an administrator
   * enables the mailbox (Test & Enable).
   */
  'mailbox_not_enabled',
  /**
   * The action is not supported with the mailbox's email server profile: manual tracking (Track, Set
   * Regarding, Stop tracking) is unsupported for POP3/SMTP mailboxes (protocols.md §5.1).
   */
  'profile_unsupported',
  /**
   * Outlook client sync of appointments, contacts and tasks was asked for (`designate`, `syncNow`) while
   * the user's mailbox syncs them with server-side synchronization: a mailbox's ACT sync method is
   * server-side sync or the Outlook client, never both (`actdeliverymethod`, protocols.md §5.1–5.2).
   */
  'sync_method_conflict',
  /**
   * The client offered a change of a kind outside its sync scope (protocol 2: `welcome.syncKinds`,
   * `syncScope`, `pull.kinds`), e.g. an e-mail while the user's incoming e-mail is delivered by
   * server-side synchronization. Nothing of the page is applied; Track / Set Regarding still work.
   */
  'out_of_scope',
] as const
export type ProtocolErrorCode = (typeof ProtocolErrorCodes)[number]

/** The one error type of this package. `code` is one of `ProtocolErrorCodes`; `cause` is kept. */
export class OutlookProtocolError extends Error {
  override name = 'OutlookProtocolError'
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }

  /** Whether retrying later (after reconnecting) may succeed. */
  get retryable(): boolean {
    return this.code === 'timeout' || this.code === 'unavailable'
  }
}

/** The protocol code for any error thrown on one side, to send it to the other side. */
export function protocolCodeOf(error: unknown): ProtocolErrorCode {
  if (error instanceof OutlookProtocolError) return error.code
  // A scope refusal keeps its own code through the engine (the sync fails with it, not with `forbidden`).
  if (error instanceof SyncError && error.cause instanceof OutlookProtocolError && error.cause.code === 'out_of_scope') return 'out_of_scope'
  if (error instanceof SyncError) return protocolCodeForSyncCode(error.code)
  return 'internal'
}

export function protocolCodeForSyncCode(code: SyncErrorCode): ProtocolErrorCode {
  switch (code) {
    case 'Unauthorized':
      return 'unauthorized'
    case 'Forbidden':
      return 'forbidden'
    case 'CursorExpired':
      return 'cursor_expired'
    case 'NotFound':
      return 'not_found'
    case 'Validation':
    case 'InvalidRemoteData':
      return 'bad_request'
    case 'Transient':
    case 'RateLimited':
    case 'Aborted':
      return 'unavailable'
    case 'PreconditionFailed':
    case 'Config':
    case 'Storage':
    case 'Internal':
      return 'internal'
  }
}

/** The engine error a protocol error becomes when the server-side replica reports it to the engine. */
export function syncErrorOf(code: ProtocolErrorCode, message: string, cause?: unknown): SyncError {
  const options = cause === undefined ? undefined : { cause }
  switch (code) {
    case 'cursor_expired':
      return new CursorExpiredError(message, {}, options)
    case 'unauthorized':
      return new SyncError('Unauthorized', message, {}, options)
    case 'forbidden':
    case 'not_designated':
    case 'fenced':
    case 'mailbox_not_enabled':
    case 'profile_unsupported':
    case 'sync_method_conflict':
    case 'out_of_scope':
      return new SyncError('Forbidden', message, {}, options)
    case 'not_found':
      return new SyncError('NotFound', message, {}, options)
    case 'timeout':
    case 'unavailable':
      return new SyncError('Transient', message, {}, options)
    case 'bad_request':
    case 'too_large':
      return new SyncError('InvalidRemoteData', message, {}, options)
    case 'unsupported_version':
    case 'internal':
      return new SyncError('Internal', message, {}, options)
  }
}

/** Rebuilds the engine error of a rejected push op from its wire form. */
export function syncErrorFromWire(code: SyncErrorCode, message: string): SyncError {
  if (code === 'PreconditionFailed') return new PreconditionFailedError(message)
  if (code === 'CursorExpired') return new CursorExpiredError(message)
  return new SyncError(code, message)
}
