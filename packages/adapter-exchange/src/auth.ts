/** OAuth2 client-credentials token provider for the Graph SDK: caches the token until shortly before expiry. */
import type { AuthenticationProvider } from '@microsoft/microsoft-graph-client'
import { SyncError } from '@concord/engine'
import { z } from 'zod'

const TokenResponse = z.looseObject({
  access_token: z.string().min(1),
  token_type: z.string().optional(),
  expires_in: z.coerce.number().positive(),
})

export interface ClientCredentialsOptions {
  tokenUrl: string
  clientId: string
  clientSecret: string
  scope: string
  fetch: typeof fetch
  now: () => number
  /** Refresh this long before the token expires. */
  skewMs?: number | undefined
}

export class ClientCredentialsAuthProvider implements AuthenticationProvider {
  private cached: { token: string; expiresAt: number } | undefined
  private inflight: Promise<string> | undefined
  /** Number of tokens fetched (observability and tests). */
  tokensIssued = 0

  constructor(private readonly options: ClientCredentialsOptions) {}

  async getAccessToken(): Promise<string> {
    const now = this.options.now()
    if (this.cached && now < this.cached.expiresAt) return this.cached.token
    this.inflight ??= this.fetchToken().finally(() => {
      this.inflight = undefined
    })
    return this.inflight
  }

  /** Drops the cached token (after a 401), so the next request fetches a new one. */
  invalidate(): void {
    this.cached = undefined
  }

  private async fetchToken(): Promise<string> {
    const { tokenUrl, clientId, clientSecret, scope } = this.options
    let res: Response
    try {
      res = await this.options.fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope }).toString(),
      })
    } catch (error) {
      throw new SyncError('Transient', `Token endpoint unreachable: ${(error as Error).message}`, { url: tokenUrl }, { cause: error })
    }
    const text = await res.text()
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      body = undefined
    }
    if (!res.ok) {
      const err = z.looseObject({ error: z.string(), error_description: z.string().optional() }).safeParse(body)
      const what = err.success ? `${err.data.error}: ${err.data.error_description ?? ''}` : `HTTP ${res.status}`
      const code = res.status === 429 || res.status >= 500 ? 'Transient' : 'Unauthorized'
      throw new SyncError(code, `Token request failed (${what})`, { status: res.status, url: tokenUrl })
    }
    const parsed = TokenResponse.safeParse(body)
    if (!parsed.success) {
      throw new SyncError('InvalidRemoteData', `Token endpoint returned an invalid body: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`, { url: tokenUrl })
    }
    const skew = Math.min(this.options.skewMs ?? 60_000, (parsed.data.expires_in * 1000) / 2)
    this.cached = { token: parsed.data.access_token, expiresAt: this.options.now() + parsed.data.expires_in * 1000 - skew }
    this.tokensIssued++
    return parsed.data.access_token
  }
}
