/**
 * Transport: `@microsoft/microsoft-graph-client` with a middleware chain of our own — refresh the
 * token once on 401, attach it (the SDK's AuthenticationHandler), send with the injected fetch. The
 * SDK's RetryHandler is deliberately left out: the adapter never sleeps or retries, the engine does.
 */
import { AuthenticationHandler, Client, ResponseType } from '@microsoft/microsoft-graph-client'
import type { Context, Middleware } from '@microsoft/microsoft-graph-client'
import { SyncError } from '@concord/engine'
import { z } from 'zod'
import type { ClientCredentialsAuthProvider } from './auth.js'
import { classifyGraphFailure, invalidRemoteData, redactUrl } from './errors.js'

export interface GraphResponse {
  status: number
  /** Lower-case header names. */
  headers: Record<string, string>
  body: unknown
  url: string
}

export interface BatchRequest {
  id: string
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE'
  /** Relative to the version, e.g. `/users/a@b/messages/{id}`. */
  url: string
  headers?: Record<string, string> | undefined
  body?: unknown
}

/** Retries a request once with a fresh token when Graph answers 401. */
class RefreshOn401Handler implements Middleware {
  private next: Middleware | undefined
  constructor(private readonly auth: ClientCredentialsAuthProvider) {}
  async execute(context: Context): Promise<void> {
    await this.next!.execute(context)
    if (context.response?.status !== 401) return
    this.auth.invalidate()
    const headers = context.options?.headers
    if (headers instanceof Headers) headers.delete('Authorization')
    else if (headers && !Array.isArray(headers)) delete (headers as Record<string, string>)['Authorization']
    await this.next!.execute(context)
  }
  setNext(next: Middleware): void {
    this.next = next
  }
}

/** Sends with the injected fetch (the emulator's trusted certificate lives in its dispatcher). */
class FetchHandler implements Middleware {
  constructor(private readonly fetchImpl: typeof fetch) {}
  async execute(context: Context): Promise<void> {
    context.response = await this.fetchImpl(context.request as string, context.options as RequestInit)
  }
}

const BatchResponseSchema = z.looseObject({
  responses: z.array(
    z.looseObject({
      id: z.string(),
      status: z.number().int(),
      headers: z.record(z.string(), z.string()).optional(),
      body: z.unknown().optional(),
    }),
  ),
})

export class GraphHttp {
  readonly client: Client
  /** Requests sent (a `$batch` counts once). */
  requests = 0

  constructor(
    readonly origin: string,
    auth: ClientCredentialsAuthProvider,
    fetchImpl: typeof fetch,
    private readonly now: () => number,
  ) {
    const host = new URL(origin).hostname
    this.client = Client.initWithMiddleware({
      middleware: [new RefreshOn401Handler(auth), new AuthenticationHandler(auth), new FetchHandler(fetchImpl)],
      baseUrl: `${origin.replace(/\/+$/, '')}/`,
      defaultVersion: 'v1.0',
      customHosts: new Set([host]),
    })
  }

  /** One request; never throws for an HTTP status (only for a transport failure). */
  async send(method: BatchRequest['method'], url: string, headers: Record<string, string> = {}, body?: unknown): Promise<GraphResponse> {
    this.requests++
    let raw: Response
    try {
      const req = this.client.api(url).headers(headers).responseType(ResponseType.RAW)
      raw = (method === 'GET' ? await req.get() : method === 'POST' ? await req.post(body) : method === 'PATCH' ? await req.patch(body) : await req.delete()) as Response
    } catch (error) {
      if (error instanceof SyncError) throw error
      throw new SyncError('Transient', `Graph request failed: ${(error as Error).message}`, { url: redactUrl(url) }, { cause: error })
    }
    const out: Record<string, string> = {}
    raw.headers.forEach((v, k) => {
      out[k.toLowerCase()] = v
    })
    const text = await raw.text()
    let parsed: unknown = undefined
    if (text !== '') {
      try {
        parsed = JSON.parse(text)
      } catch {
        parsed = text
      }
    }
    return { status: raw.status, headers: out, body: parsed, url }
  }

  /** `send`, throwing the classified `SyncError` for a non-2xx status. */
  async ok(method: BatchRequest['method'], url: string, headers: Record<string, string> = {}, body?: unknown, opts: { delta?: boolean } = {}): Promise<GraphResponse> {
    const res = await this.send(method, url, headers, body)
    if (res.status < 200 || res.status >= 300) throw classifyGraphFailure(res, { delta: opts.delta, now: this.now() })
    return res
  }

  /**
   * Sends requests as `$batch`es of at most `size`; each sub-response comes back on its own (a
   * throttled or failed sub-request is classified by the caller). A failure of a whole batch is
   * reported as that response for every request in it.
   */
  async batch(requests: readonly BatchRequest[], size: number): Promise<Map<string, GraphResponse>> {
    const out = new Map<string, GraphResponse>()
    for (let i = 0; i < requests.length; i += size) {
      const chunk = requests.slice(i, i + size)
      if (chunk.length === 1) {
        const r = chunk[0]!
        const res = await this.send(r.method, r.url, r.headers, r.body)
        out.set(r.id, res)
        continue
      }
      const res = await this.send('POST', '/$batch', {}, {
        requests: chunk.map((r) => ({
          id: r.id,
          method: r.method,
          url: r.url,
          headers: r.body === undefined ? (r.headers ?? {}) : { 'Content-Type': 'application/json', ...r.headers },
          ...(r.body === undefined ? {} : { body: r.body }),
        })),
      })
      if (res.status < 200 || res.status >= 300) {
        for (const r of chunk) out.set(r.id, { ...res, url: r.url })
        continue
      }
      const parsed = BatchResponseSchema.safeParse(res.body)
      if (!parsed.success) throw invalidRemoteData('$batch response', parsed.error, '/$batch')
      for (const sub of parsed.data.responses) {
        const headers: Record<string, string> = {}
        for (const [k, v] of Object.entries(sub.headers ?? {})) headers[k.toLowerCase()] = v
        const r = chunk.find((c) => c.id.toLowerCase() === sub.id.toLowerCase())
        if (r) out.set(r.id, { status: sub.status, headers, body: sub.body, url: r.url })
      }
      for (const r of chunk) {
        if (!out.has(r.id)) throw new SyncError('InvalidRemoteData', `$batch response has no answer for request '${r.id}'`, { url: '/$batch' })
      }
    }
    return out
  }
}
