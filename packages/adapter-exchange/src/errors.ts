/**
 * Classification of Graph failures into the engine's `SyncError` codes. The adapter never sleeps or
 * retries: 429/503 become `ThrottledError` with the server's Retry-After, 412 becomes
 * `PreconditionFailedError`, 410 (and 400) on a delta link becomes `CursorExpiredError`.
 */
import { CursorExpiredError, PreconditionFailedError, SyncError, ThrottledError } from '@concord/engine'
import type { SyncErrorDetails } from '@concord/engine'
import { z } from 'zod'

/** Retry-After used when a 429/503 carries none (the scheduler backs off further if it repeats). */
export const DEFAULT_RETRY_AFTER_MS = 1000

const GraphErrorBody = z.looseObject({
  error: z.looseObject({
    code: z.string().optional(),
    message: z.string().optional(),
    innerError: z.looseObject({ 'request-id': z.string().optional() }).optional(),
  }),
})

export interface GraphFailure {
  status: number
  /** Lower-case header names. */
  headers: Record<string, string>
  body: unknown
  url: string
}

export function graphErrorCode(body: unknown): string | undefined {
  const r = GraphErrorBody.safeParse(body)
  return r.success ? r.data.error.code : undefined
}

function graphErrorMessage(body: unknown): string | undefined {
  const r = GraphErrorBody.safeParse(body)
  return r.success ? r.data.error.message : undefined
}

/** Retry-After as seconds (possibly fractional) or an HTTP-date, in ms. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined
  const v = value.trim()
  if (/^\d+(\.\d+)?$/.test(v)) return Math.ceil(Number(v) * 1000)
  const at = Date.parse(v)
  if (Number.isNaN(at)) return undefined
  return Math.max(0, at - now)
}

/** Turns a non-2xx Graph response into a `SyncError`. `delta` marks a delta-link call. */
export function classifyGraphFailure(f: GraphFailure, opts: { delta?: boolean; now?: number } = {}): SyncError {
  const code = graphErrorCode(f.body)
  const requestId = f.headers['request-id'] ?? GraphErrorBody.safeParse(f.body).data?.error.innerError?.['request-id']
  const details: SyncErrorDetails = { status: f.status, requestId, url: redactUrl(f.url) }
  const what = `Graph ${f.status}${code ? ` ${code}` : ''}: ${graphErrorMessage(f.body) ?? 'no message'}`
  if (f.status === 429 || f.status === 503) {
    return new ThrottledError(parseRetryAfter(f.headers['retry-after'], opts.now) ?? DEFAULT_RETRY_AFTER_MS, what, details)
  }
  const lower = code?.toLowerCase()
  if (opts.delta && (f.status === 410 || f.status === 400 || lower === 'syncstatenotfound' || lower === 'resyncrequired')) {
    return new CursorExpiredError(`The delta link is no longer valid (${what})`, details)
  }
  if (f.status === 412 || lower === 'errorirresolvableconflict') return new PreconditionFailedError(what, details)
  if (f.status === 401) return new SyncError('Unauthorized', what, details)
  if (f.status === 403) return new SyncError('Forbidden', what, details)
  if (f.status === 404) return new SyncError('NotFound', what, details)
  if (f.status === 400 || f.status === 409 || f.status === 422) return new SyncError('Validation', what, details)
  return new SyncError('Transient', what, details)
}

/** Delta and skip tokens are capabilities; keep them out of error details. */
export function redactUrl(url: string): string {
  return url.replace(/(\$(?:skip|delta)token=)[^&]*/gi, '$1…')
}

/** The remote sent a payload that does not match the Graph resource schema. */
export function invalidRemoteData(what: string, error: z.ZodError, url?: string): SyncError {
  const issue = error.issues[0]
  const path = issue?.path.map(String).join('.') ?? ''
  return new SyncError('InvalidRemoteData', `Invalid ${what} from Graph: ${path || '(root)'}: ${issue?.message ?? 'invalid'}`, url === undefined ? {} : { url: redactUrl(url) }, { cause: error })
}
