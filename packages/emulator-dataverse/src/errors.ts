/**
 * The single error module of the Dataverse emulator. Every failure that reaches a client is a
 * DataverseError: an HTTP status, a Dataverse-style hex `code` and a message. `kind` is the closed set
 * of reasons the emulator can fail, so tests and callers can switch on it.
 */
export type DataverseErrorKind =
  | 'BadRequest'
  | 'QueryInvalid'
  | 'PayloadInvalid'
  | 'NotFound'
  | 'Unauthorized'
  | 'PrivilegeDenied'
  | 'AttributePermissionUpdateIsMissingDuringUpdate'
  | 'AttributePrivilegeCreateIsMissing'
  | 'AttributeNotSecured'
  | 'ReadOnlyColumn'
  | 'CannotUseOpportunitySetStateMessage'
  | 'ConcurrencyVersionMismatch'
  | 'DuplicateRecord'
  | 'ChangeTrackingQueryOption'
  | 'ChangeTrackingTokenExpired'
  | 'ChangeTrackingTokenInvalid'
  | 'RequestLimitExceeded'
  | 'ExecutionTimeLimitExceeded'
  | 'ConcurrencyLimitExceeded'
  | 'ServiceUnavailable'
  | 'MethodNotAllowed'
  | 'NotImplemented'
  | 'BatchTooLarge'
  | 'InvalidStateTransition'
  | 'Internal'

/** Hex codes used on the wire. Codes marked (emulator) are a project choice; see README. */
export const ERROR_CODES: Record<DataverseErrorKind, string> = {
  BadRequest: '0x80040203', // InvalidArgument
  QueryInvalid: '0x80060888', // ODataQueryInvalid-style (query option errors)
  PayloadInvalid: '0x80048d19', // Error identified in payload
  NotFound: '0x80040217', // ObjectDoesNotExist
  Unauthorized: '0x80044151', // (emulator) authentication failed
  PrivilegeDenied: '0x80040220', // PrivilegeDenied
  AttributePermissionUpdateIsMissingDuringUpdate: '0x8004f507', // web-service-error-codes: -2147158777
  AttributePrivilegeCreateIsMissing: '0x8004f502', // web-service-error-codes: -2147158782
  AttributeNotSecured: '0x8004f508', // web-service-error-codes: -2147158776
  ReadOnlyColumn: '0x80048d19', // (emulator) payload error; the real platform's answer is undocumented
  CannotUseOpportunitySetStateMessage: '0x80100005', // web-service-error-codes: -2146435067
  ConcurrencyVersionMismatch: '0x80060882',
  DuplicateRecord: '0x80040237', // DuplicateRecord
  ChangeTrackingQueryOption: '0x80060888',
  ChangeTrackingTokenExpired: '0x80044352', // ExpiredVersionStamp (status 410 is a project choice)
  ChangeTrackingTokenInvalid: '0x80044353', // (emulator)
  RequestLimitExceeded: '0x80072322',
  ExecutionTimeLimitExceeded: '0x80072321',
  ConcurrencyLimitExceeded: '0x80072326',
  ServiceUnavailable: '0x80040216', // (emulator) injected 503
  MethodNotAllowed: '0x80060888',
  NotImplemented: '0x80060888',
  BatchTooLarge: '0x80048d19',
  InvalidStateTransition: '0x80040203',
  Internal: '0x80040216', // UnExpected
}

export class DataverseError extends Error {
  readonly kind: DataverseErrorKind
  readonly status: number
  readonly code: string
  readonly headers: Record<string, string>

  constructor(
    kind: DataverseErrorKind,
    status: number,
    message: string,
    options: { cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'DataverseError'
    this.kind = kind
    this.status = status
    this.code = ERROR_CODES[kind]
    this.headers = options.headers ?? {}
  }

  toBody(): { error: { code: string; message: string } } {
    return { error: { code: this.code, message: this.message } }
  }
}

export const badRequest = (message: string, cause?: unknown): DataverseError =>
  new DataverseError('BadRequest', 400, message, { cause })
export const queryInvalid = (message: string, cause?: unknown): DataverseError =>
  new DataverseError('QueryInvalid', 400, message, { cause })
export const payloadInvalid = (message: string, cause?: unknown): DataverseError =>
  new DataverseError('PayloadInvalid', 400, message, { cause })
export const notFound = (logicalName: string, id: string): DataverseError =>
  new DataverseError('NotFound', 404, `${logicalName} With Id = ${id} Does Not Exist`)
export const privilegeDenied = (userId: string, privilege: string, logicalName: string): DataverseError =>
  new DataverseError(
    'PrivilegeDenied',
    403,
    `Principal user (Id=${userId}, type=8) is missing ${privilege} privilege on entity '${logicalName}'.`,
  )

/** Convert anything thrown into a DataverseError (unknown errors become a 500 'Internal'). */
export function toDataverseError(err: unknown): DataverseError {
  if (err instanceof DataverseError) return err
  const msg = err instanceof Error ? err.message : String(err)
  return new DataverseError('Internal', 500, `Unexpected error: ${msg}`, { cause: err })
}
