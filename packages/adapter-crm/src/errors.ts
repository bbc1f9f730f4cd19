import { CursorExpiredError, PreconditionFailedError, SyncError, ThrottledError, type SyncErrorDetails } from '@concord/engine'
import { z } from 'zod'

/**
 * The adapter's error module. Every failure leaves the adapter as an engine `SyncError` (closed set
 * of codes, `cause` kept); this file classifies Dataverse Web API responses into those codes.
 */
export { SyncError, CursorExpiredError, ThrottledError, PreconditionFailedError }

const ErrorBodySchema = z.object({ error: z.object({ code: z.string().optional(), message: z.string().optional() }).loose() }).loose()

/** Dataverse's "expired version stamp" code (change tracking token older than the retention). */
export const EXPIRED_VERSION_STAMP_CODE = '0x80044352'

export interface DataverseFailure {
  status: number
  /** Hex code from the error body, e.g. `0x80060882`; '' when absent. */
  code: string
  message: string
}

/** Reads `{"error":{"code","message"}}`; any other body still yields a usable message. */
export function parseErrorBody(status: number, text: string): DataverseFailure {
  let parsed: unknown
  try {
    parsed = text ? JSON.parse(text) : undefined
  } catch {
    parsed = undefined
  }
  const body = ErrorBodySchema.safeParse(parsed)
  if (body.success) return { status, code: body.data.error.code ?? '', message: body.data.error.message ?? `HTTP ${status}` }
  return { status, code: '', message: text.slice(0, 300) || `HTTP ${status}` }
}

/** `Retry-After` in seconds (Dataverse) or an HTTP date → milliseconds; default 1 s. */
export function retryAfterMs(header: string | null, now = Date.now()): number {
  if (header === null || header.trim() === '') return 1000
  const seconds = Number(header)
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000)
  const at = Date.parse(header)
  return Number.isNaN(at) ? 1000 : Math.max(0, at - now)
}

/** Classifies a failed Web API response into the engine's error set. */
export function classifyFailure(failure: DataverseFailure, retryAfter: string | null, details: SyncErrorDetails = {}): SyncError {
  const { status, code, message } = failure
  const d = { ...details, status }
  const text = `Dataverse ${status}${code ? ` ${code}` : ''}: ${message}`
  if (status === 429 || (status === 503 && retryAfter !== null)) return new ThrottledError(retryAfterMs(retryAfter), text, d)
  if (status === 410 || code === EXPIRED_VERSION_STAMP_CODE) return new CursorExpiredError(text, d)
  if (status === 412) return new PreconditionFailedError(text, d)
  if (status === 401) return new SyncError('Unauthorized', text, d)
  if (status === 403) return new SyncError('Forbidden', text, d)
  if (status === 404) return new SyncError('NotFound', text, d)
  if (status === 400 || status === 405 || status === 413) return new SyncError('Validation', text, d)
  if (status >= 500 || status === 408) return new SyncError('Transient', text, d)
  return new SyncError('InvalidRemoteData', text, d)
}

/** A remote payload did not match its schema: names the path and value. */
export function invalidRemoteData(what: string, error: z.ZodError, url?: string): SyncError {
  const issues = error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ')
  return new SyncError('InvalidRemoteData', `Invalid ${what} from Dataverse: ${issues}`, url ? { url } : {}, { cause: error })
}

/** True for a 412 caused by an existing alternate key (upsert with If-None-Match: *), not by If-Match. */
export function isDuplicateRecord(failure: DataverseFailure): boolean {
  return failure.status === 412 && (failure.code === '0x80040237' || /matching key values already exists/i.test(failure.message))
}
