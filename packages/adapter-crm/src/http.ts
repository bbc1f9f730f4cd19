import { SyncError, type Logger } from '@concord/engine'
import { z } from 'zod'
import { classifyFailure, parseErrorBody, type DataverseFailure } from './errors.js'
import type { CrmAdapterOptions } from './options.js'

export const API_PATH = '/api/data/v9.2'

/** What the client needs: the organization, the app registration and, optionally, whom to impersonate. */
export type WebApiClientOptions = Pick<CrmAdapterOptions, 'orgUrl' | 'tokenUrl' | 'clientId' | 'clientSecret' | 'scope'> & {
  /** Absent: calls run as the application user itself (server-side sync's own bookkeeping). */
  impersonate?: CrmAdapterOptions['impersonate'] | undefined
}

const TokenResponseSchema = z.object({ access_token: z.string().min(1), expires_in: z.coerce.number().int().positive(), token_type: z.string().optional() }).loose()

export interface ApiResult {
  status: number
  headers: Headers
  text: string
  url: string
}

export interface RequestInit2 {
  headers?: Record<string, string> | undefined
  body?: string | undefined
  signal?: AbortSignal | undefined
}

/**
 * A per-request signal that follows `outer`. Node 20's fetch adds an abort listener to the signal it is
 * given and keeps it until the request object is collected, so handing a long-lived caller signal to
 * every fetch piles listeners onto it (MaxListenersExceededWarning, CPU on abort). Each request gets its
 * own controller instead; the one listener on `outer` is removed by `release()` once the request settles.
 */
export function linkedSignal(outer: AbortSignal | undefined): { signal: AbortSignal | undefined; release: () => void } {
  if (outer === undefined) return { signal: undefined, release: () => {} }
  const ctrl = new AbortController()
  if (outer.aborted) {
    ctrl.abort(outer.reason)
    return { signal: ctrl.signal, release: () => {} }
  }
  const onAbort = (): void => ctrl.abort(outer.reason)
  outer.addEventListener('abort', onAbort, { once: true })
  return { signal: ctrl.signal, release: () => outer.removeEventListener('abort', onAbort) }
}

/**
 * A thin Dataverse Web API client over Node's global `fetch`: OAuth2 client-credentials token with
 * caching, the recommended OData headers, impersonation of the mailbox owner, error classification.
 * It never sleeps or retries (except one re-authentication after a 401 with a cached token).
 */
export class WebApiClient {
  readonly apiBase: string
  private token: { value: string; expiresAt: number } | null = null
  private tokenPromise: Promise<string> | null = null
  /** Requests sent (for tests and metrics). */
  requestCount = 0
  tokenRequests = 0

  constructor(
    private readonly options: WebApiClientOptions,
    private readonly fetchFn: typeof fetch,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.apiBase = `${options.orgUrl.replace(/\/+$/, '')}${API_PATH}`
  }

  private impersonationHeaders(): Record<string, string> {
    const who = this.options.impersonate
    if (who === undefined) return {}
    return 'callerObjectId' in who ? { CallerObjectId: who.callerObjectId } : { MSCRMCallerID: who.systemUserId }
  }

  async getToken(signal?: AbortSignal): Promise<string> {
    if (this.token && this.token.expiresAt > this.now()) return this.token.value
    this.tokenPromise ??= this.fetchToken(signal).finally(() => {
      this.tokenPromise = null
    })
    return this.tokenPromise
  }

  private async fetchToken(signal?: AbortSignal): Promise<string> {
    this.tokenRequests++
    const scope = this.options.scope ?? `${this.options.orgUrl.replace(/\/+$/, '')}/.default`
    let res: Response
    let text: string
    const linked = linkedSignal(signal)
    try {
      try {
        res = await this.fetchFn(this.options.tokenUrl, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
          body: new URLSearchParams({ grant_type: 'client_credentials', client_id: this.options.clientId, client_secret: this.options.clientSecret, scope }).toString(),
          signal: linked.signal,
        })
        text = await res.text()
      } catch (error) {
        if (linked.signal?.aborted) throw new SyncError('Aborted', `Token request to ${this.options.tokenUrl} aborted`, { url: this.options.tokenUrl }, { cause: error })
        throw new SyncError('Transient', `Token request to ${this.options.tokenUrl} failed: ${(error as Error).message}`, { url: this.options.tokenUrl }, { cause: error })
      }
    } finally {
      linked.release()
    }
    if (!res.ok) {
      const code = res.status === 400 || res.status === 401 ? 'Unauthorized' : res.status >= 500 ? 'Transient' : 'Unauthorized'
      throw new SyncError(code, `Token request failed with ${res.status}: ${text.slice(0, 300)}`, { status: res.status, url: this.options.tokenUrl })
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (error) {
      throw new SyncError('InvalidRemoteData', 'Token response is not JSON', { url: this.options.tokenUrl }, { cause: error })
    }
    const parsed = TokenResponseSchema.safeParse(json)
    if (!parsed.success) throw new SyncError('InvalidRemoteData', `Token response invalid: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`, { url: this.options.tokenUrl }, { cause: parsed.error })
    // Refresh one minute early (or at half-life for very short tokens).
    const lifetimeMs = parsed.data.expires_in * 1000
    this.token = { value: parsed.data.access_token, expiresAt: this.now() + Math.max(lifetimeMs / 2, lifetimeMs - 60_000) }
    return parsed.data.access_token
  }

  url(path: string): string {
    return path.startsWith('http') ? path : `${this.apiBase}/${path.replace(/^\/+/, '')}`
  }

  /** One request; returns the raw result whatever the status (callers classify). */
  async raw(method: string, path: string, init: RequestInit2 = {}, reauthed = false): Promise<ApiResult> {
    const url = this.url(path)
    const token = await this.getToken(init.signal)
    const headers: Record<string, string> = {
      Authorization: `Bearer ${token}`,
      Accept: 'application/json',
      'OData-MaxVersion': '4.0',
      'OData-Version': '4.0',
      ...this.impersonationHeaders(),
      ...init.headers,
    }
    if (init.body !== undefined) headers['Content-Type'] ??= 'application/json; charset=utf-8'
    if (init.signal?.aborted) throw new SyncError('Aborted', `Request aborted: ${method} ${url}`, { url }, { cause: init.signal.reason })
    this.requestCount++
    let res: Response
    let text: string
    const linked = linkedSignal(init.signal)
    try {
      res = await this.fetchFn(url, { method, headers, body: init.body, signal: linked.signal })
      text = await res.text()
    } catch (error) {
      if ((error as Error).name === 'AbortError' || linked.signal?.aborted) throw new SyncError('Aborted', `Request aborted: ${method} ${url}`, { url }, { cause: error })
      throw new SyncError('Transient', `Network error: ${method} ${url}: ${(error as Error).message}`, { url }, { cause: error })
    } finally {
      linked.release()
    }
    if (res.status === 401 && !reauthed) {
      this.logger.warn({ url }, 'Dataverse answered 401; fetching a new token once')
      this.token = null
      return this.raw(method, path, init, true)
    }
    return { status: res.status, headers: res.headers, text, url }
  }

  /** A request that must succeed (2xx); anything else is thrown as a classified `SyncError`. */
  async request(method: string, path: string, init: RequestInit2 = {}): Promise<ApiResult> {
    const res = await this.raw(method, path, init)
    if (res.status >= 200 && res.status < 300) return res
    throw this.failure(res)
  }

  failure(res: ApiResult): SyncError {
    return classifyFailure(parseErrorBody(res.status, res.text), res.headers.get('retry-after'), { url: res.url.split('?')[0], requestId: res.headers.get('x-ms-service-request-id') ?? undefined })
  }

  /** GET returning parsed JSON validated with `schema`. */
  async getJson<T>(path: string, schema: z.ZodType<T>, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<T> {
    const res = await this.request('GET', path, { headers, signal })
    return parseJson(res, schema, `response of GET ${path.split('?')[0]}`)
  }
}

export function parseJson<T>(res: { text: string; url: string }, schema: z.ZodType<T>, what: string): T {
  let json: unknown
  try {
    json = JSON.parse(res.text)
  } catch (error) {
    throw new SyncError('InvalidRemoteData', `${what} is not JSON`, { url: res.url }, { cause: error })
  }
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new SyncError('InvalidRemoteData', `Invalid ${what}: ${issues}`, { url: res.url.split('?')[0] }, { cause: parsed.error })
  }
  return parsed.data
}

export type { DataverseFailure }
