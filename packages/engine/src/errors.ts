import type { z } from 'zod'

/**
 * The closed set of error codes that cross package boundaries. They are persisted in change logs,
 * reported by the simulator and exported as metric labels, so they never change meaning.
 */
export const SyncErrorCodes = [
  'Unauthorized',
  'Forbidden',
  'RateLimited',
  'CursorExpired',
  'PreconditionFailed',
  'NotFound',
  'InvalidRemoteData',
  'Validation',
  'Transient',
  'Config',
  'Storage',
  'Aborted',
  'Internal',
] as const
export type SyncErrorCode = (typeof SyncErrorCodes)[number]

/** Debugging context carried by an error. Never a token and never a record body. */
export interface SyncErrorDetails {
  status?: number | undefined
  requestId?: string | undefined
  url?: string | undefined
  retryAfterMs?: number | undefined
}

/** The one error type of Concord. Adapters classify their transport failures into a code. */
export class SyncError extends Error {
  override name = 'SyncError'
  constructor(
    readonly code: SyncErrorCode,
    message: string,
    readonly details: SyncErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(message, options)
  }

  /** Transient failures and throttling are retried by the engine; everything else is not. */
  get retryable(): boolean {
    return this.code === 'Transient' || this.code === 'RateLimited'
  }
}

/** The cursor is no longer valid (Graph 410 SyncStateNotFound, Dataverse expired token): resync. */
export class CursorExpiredError extends SyncError {
  override name = 'CursorExpiredError'
  constructor(message = 'The replica cursor expired; a full resync is required', details: SyncErrorDetails = {}, options?: ErrorOptions) {
    super('CursorExpired', message, details, options)
  }
}

/** The remote asked us to slow down (HTTP 429 / 503 with Retry-After). */
export class ThrottledError extends SyncError {
  override name = 'ThrottledError'
  constructor(readonly retryAfterMs: number, message = `Throttled; retry after ${retryAfterMs} ms`, details: SyncErrorDetails = {}, options?: ErrorOptions) {
    super('RateLimited', message, { ...details, retryAfterMs }, options)
  }
}

/** An If-Match precondition failed (HTTP 412): the remote changed since we read it. */
export class PreconditionFailedError extends SyncError {
  override name = 'PreconditionFailedError'
  constructor(message = 'The remote record changed since it was read (If-Match failed)', details: SyncErrorDetails = {}, options?: ErrorOptions) {
    super('PreconditionFailed', message, details, options)
  }
}

/** One zod issue, flattened to a path string a user can act on. */
export interface ValidationIssue {
  path: string
  message: string
}

/** Input did not match its schema. The message names every offending field path. */
export class ValidationError extends SyncError {
  override name = 'ValidationError'
  readonly issues: readonly ValidationIssue[]
  constructor(what: string, issues: readonly ValidationIssue[], options?: ErrorOptions) {
    super('Validation', `Invalid ${what}: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`, {}, options)
    this.issues = issues
  }

  static fromZod(what: string, error: z.ZodError): ValidationError {
    return new ValidationError(
      what,
      error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message })),
      { cause: error },
    )
  }
}

/** Internal invariant check; a failure is a Concord bug, not bad input. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`Assertion failed: ${message}`)
}

export function unreachable(value: never): never {
  throw new Error(`Unreachable: ${JSON.stringify(value)}`)
}
