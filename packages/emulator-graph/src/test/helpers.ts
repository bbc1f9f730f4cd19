/** Test helpers: start an emulator, get a token, and a tiny fetch-based Graph client. */
import { startGraphEmulator, type GraphEmulator, type GraphEmulatorOptions } from '../index.js'

export interface Res {
  status: number
  headers: Headers
  body: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function getToken(em: GraphEmulator, clientId = 'test-app', clientSecret = 'test-secret'): Promise<string> {
  const res = await fetch(em.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: 'https://graph.microsoft.com/.default' }),
  })
  const body = (await res.json()) as { access_token: string }
  return body.access_token
}

export class Client {
  constructor(
    readonly base: string,
    public token: string | undefined,
  ) {}

  async req(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Res> {
    const url = path.startsWith('http') ? path : `${this.base}/v1.0/${path.replace(/^\//, '')}`
    const h: Record<string, string> = { ...headers }
    if (this.token !== undefined) h['authorization'] = `Bearer ${this.token}`
    let payload: string | undefined
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body)
      h['content-type'] = h['content-type'] ?? 'application/json'
    }
    const res = await fetch(url, { method, headers: h, body: payload })
    const text = await res.text()
    let parsed: unknown
    try {
      parsed = text ? JSON.parse(text) : undefined
    } catch {
      parsed = text
    }
    return { status: res.status, headers: res.headers, body: parsed }
  }
  get(path: string, headers?: Record<string, string>): Promise<Res> {
    return this.req('GET', path, undefined, headers)
  }
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Res> {
    return this.req('POST', path, body, headers)
  }
  patch(path: string, body: unknown, headers?: Record<string, string>): Promise<Res> {
    return this.req('PATCH', path, body, headers)
  }
  del(path: string, headers?: Record<string, string>): Promise<Res> {
    return this.req('DELETE', path, undefined, headers)
  }

  /** Follows nextLinks until a deltaLink; returns all items and the deltaLink. */
  async deltaRound(first: string, pageSize?: number): Promise<{ items: any[]; deltaLink: string; pages: number }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const headers: Record<string, string> = pageSize === undefined ? {} : { prefer: `odata.maxpagesize=${pageSize}` }
    let url = first
    const items: any[] = [] // eslint-disable-line @typescript-eslint/no-explicit-any
    let pages = 0
    for (let i = 0; i < 100_000; i++) {
      const r = await this.get(url, headers)
      if (r.status !== 200) throw new Error(`delta page failed: ${r.status} ${JSON.stringify(r.body)}`)
      pages++
      items.push(...(r.body.value as unknown[]))
      if (r.body['@odata.deltaLink']) return { items, deltaLink: r.body['@odata.deltaLink'] as string, pages }
      url = r.body['@odata.nextLink'] as string
    }
    throw new Error('delta round did not end')
  }
}

export const A = 'a@contoso.test'
export const B = 'b@contoso.test'

export async function setup(opts: GraphEmulatorOptions = {}): Promise<{ em: GraphEmulator; c: Client }> {
  const em = await startGraphEmulator({ mailboxes: [A, B], ...opts })
  const c = new Client(em.url, await getToken(em))
  return { em, c }
}
