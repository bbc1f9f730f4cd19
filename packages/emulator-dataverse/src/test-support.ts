import type { DataverseEmulator } from './server.js'

/** Small fetch wrapper used by this package's tests and benchmark (not part of the public API). */
export interface HttpResult {
  status: number
  headers: Headers
  text: string
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any
}

export interface ApiClient {
  token: string
  request(method: string, path: string, init?: { headers?: Record<string, string>; body?: unknown; raw?: string }): Promise<HttpResult>
  get(path: string, headers?: Record<string, string>): Promise<HttpResult>
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<HttpResult>
  patch(path: string, body: unknown, headers?: Record<string, string>): Promise<HttpResult>
  del(path: string, headers?: Record<string, string>): Promise<HttpResult>
  as(userHeaders: Record<string, string>): ApiClient
}

export async function apiClient(emu: DataverseEmulator, extraHeaders: Record<string, string> = {}, token?: string): Promise<ApiClient> {
  const t = token ?? (await emu.getToken())
  const request: ApiClient['request'] = async (method, path, init = {}) => {
    const url = path.startsWith('http') ? path : `${emu.apiUrl}/${path.replace(/^\//, '')}`
    const headers: Record<string, string> = {
      Authorization: `Bearer ${t}`,
      Accept: 'application/json',
      'OData-MaxVersion': '4.0',
      'OData-Version': '4.0',
      ...extraHeaders,
      ...init.headers,
    }
    let body: string | undefined
    if (init.raw !== undefined) body = init.raw
    else if (init.body !== undefined) {
      body = JSON.stringify(init.body)
      headers['Content-Type'] ??= 'application/json'
    }
    const res = await fetch(url, { method, headers, body })
    const text = await res.text()
    let json: unknown = undefined
    if ((res.headers.get('content-type') ?? '').includes('application/json') && text) json = JSON.parse(text)
    return { status: res.status, headers: res.headers, text, json }
  }
  const client: ApiClient = {
    token: t,
    request,
    get: (p, h) => request('GET', p, { headers: h ?? {} }),
    post: (p, b, h) => request('POST', p, { body: b, headers: h ?? {} }),
    patch: (p, b, h) => request('PATCH', p, { body: b, headers: h ?? {} }),
    del: (p, h) => request('DELETE', p, { headers: h ?? {} }),
    as: (userHeaders) => {
      const inner = apiClient(emu, { ...extraHeaders, ...userHeaders }, t)
      const wrap = (fn: (c: ApiClient) => Promise<HttpResult>): Promise<HttpResult> => inner.then(fn)
      return {
        token: t,
        request: (m, p, i) => wrap((c) => c.request(m, p, i)),
        get: (p, h) => wrap((c) => c.get(p, h)),
        post: (p, b, h) => wrap((c) => c.post(p, b, h)),
        patch: (p, b, h) => wrap((c) => c.patch(p, b, h)),
        del: (p, h) => wrap((c) => c.del(p, h)),
        as: () => {
          throw new Error('nested as() is not supported')
        },
      }
    },
  }
  return client
}

/** Extract the GUID from an OData-EntityId header. */
export function idFrom(res: HttpResult): string {
  const h = res.headers.get('odata-entityid') ?? ''
  const m = /\(([0-9a-f-]{36})\)$/i.exec(h)
  if (!m) throw new Error(`no OData-EntityId in response (${res.status} ${res.text.slice(0, 200)})`)
  return m[1] as string
}
