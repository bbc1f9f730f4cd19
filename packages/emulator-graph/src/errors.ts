/**
 * Errors of the Graph emulator.
 *
 * `EmulatorError` is thrown by the library API (bad options, persistence failures).
 * `GraphHttpError` is thrown inside request handling and is turned into the Graph error envelope
 * `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.
 */

export type EmulatorErrorCode =
  | 'invalid-options'
  | 'persistence-failed'
  | 'unknown-mailbox'
  | 'not-found'
  | 'invalid-seed'

export class EmulatorError extends Error {
  readonly code: EmulatorErrorCode
  constructor(code: EmulatorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'EmulatorError'
    this.code = code
  }
}

/** An error that becomes a Graph-style HTTP error response. */
export class GraphHttpError extends Error {
  readonly status: number
  readonly code: string
  readonly headers: Record<string, string>
  /** Extra members merged into `innerError` (e.g. the 429 sample body). */
  readonly innerExtra: Record<string, string> | undefined
  constructor(
    status: number,
    code: string,
    message: string,
    opts?: { headers?: Record<string, string>; innerExtra?: Record<string, string>; cause?: unknown },
  ) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'GraphHttpError'
    this.status = status
    this.code = code
    this.headers = opts?.headers ?? {}
    this.innerExtra = opts?.innerExtra
  }
}

export const ITEM_NOT_FOUND_MESSAGE = 'The specified object was not found in the store.'
export const IRRESOLVABLE_CONFLICT_MESSAGE =
  'The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.'

export function notFound(what = ITEM_NOT_FOUND_MESSAGE): GraphHttpError {
  return new GraphHttpError(404, 'ErrorItemNotFound', what)
}

export function badRequest(message: string, code = 'BadRequest'): GraphHttpError {
  return new GraphHttpError(400, code, message)
}

export interface ErrorEnvelope {
  error: {
    code: string
    message: string
    innerError: Record<string, string>
  }
}

export function errorEnvelope(
  code: string,
  message: string,
  requestId: string,
  clientRequestId: string | undefined,
  date: string,
  innerExtra?: Record<string, string>,
): ErrorEnvelope {
  const innerError: Record<string, string> = { date, 'request-id': requestId }
  if (clientRequestId !== undefined) innerError['client-request-id'] = clientRequestId
  if (innerExtra) Object.assign(innerError, innerExtra)
  return { error: { code, message, innerError } }
}
