/**
 * A minimal `fetch` over `node:https` with a keep-alive agent that trusts the given CA certificate(s)
 * (e.g. the Graph emulator's self-signed certificate, or a corporate TLS proxy). TLS verification stays
 * on; nothing is changed globally.
 */
import https from 'node:https'

export interface TrustedFetch {
  fetch: typeof fetch
  /** Closes the keep-alive sockets. */
  close(): void
}

export function createTrustedFetch(options: { ca: string | string[]; maxSockets?: number | undefined }): TrustedFetch {
  const agent = new https.Agent({ keepAlive: true, ca: options.ca, maxSockets: options.maxSockets ?? 16 })
  const impl = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url)
    if (url.protocol !== 'https:') return Promise.reject(new TypeError(`createTrustedFetch only speaks https (got ${url.protocol})`))
    const headers: Record<string, string> = {}
    new Headers(init.headers).forEach((v, k) => {
      headers[k] = v
    })
    const body = init.body === undefined || init.body === null ? undefined : typeof init.body === 'string' ? init.body : init.body instanceof URLSearchParams ? init.body.toString() : undefined
    if (init.body !== undefined && init.body !== null && body === undefined) return Promise.reject(new TypeError('createTrustedFetch supports string and URLSearchParams bodies only'))
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body))
    return new Promise<Response>((resolve, reject) => {
      const req = https.request(url, { method: init.method ?? 'GET', headers, agent, signal: init.signal ?? undefined }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('error', reject)
        res.on('end', () => {
          const h = new Headers()
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v)
          const status = res.statusCode ?? 0
          const nullBody = status === 204 || status === 304 || (status >= 100 && status < 200)
          resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, headers: h }))
        })
      })
      req.on('error', reject)
      if (body !== undefined) req.write(body)
      req.end()
    })
  }
  return { fetch: impl as typeof fetch, close: () => agent.destroy() }
}
