/**
 * OAuth2 client-credentials tokens. Access tokens are HS256 JWTs signed with the emulator's secret,
 * so they survive a restart when the secret is persisted (--data).
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import { GraphHttpError } from './errors.js'
import type { Clock } from './clock.js'

export interface TokenClaims {
  appid: string
  tid: string
  exp: number
  iat: number
}

export const tokenRequestSchema = z.object({
  grant_type: z.string({ error: 'grant_type is required' }),
  client_id: z.string({ error: 'client_id is required' }).min(1),
  client_secret: z.string({ error: 'client_secret is required' }).min(1),
  scope: z.string({ error: 'scope is required' }).min(1),
})

export interface OAuthErrorBody {
  error: string
  error_description: string
  error_codes: number[]
  timestamp: string
  trace_id: string
  correlation_id: string
}

export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
    readonly aadCode: number,
  ) {
    super(description)
  }
}

export class Auth {
  /** Tokens of an older generation are rejected (admin "expire all tokens"). */
  generation = 0

  constructor(
    private readonly secret: string,
    readonly tenant: string,
    private readonly clientId: string | undefined,
    private readonly clientSecret: string | undefined,
    private readonly lifetimeSeconds: number,
    private readonly clock: Clock,
  ) {}

  private sign(data: string): string {
    return createHmac('sha256', this.secret).update(data).digest('base64url')
  }

  issue(form: Record<string, unknown>): { token_type: 'Bearer'; expires_in: number; ext_expires_in: number; access_token: string } {
    const parsed = tokenRequestSchema.safeParse(form)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new OAuthError(400, 'invalid_request', `AADSTS900144: ${issue?.message ?? 'invalid request'} (field '${issue?.path.join('.') ?? ''}').`, 900144)
    }
    const f = parsed.data
    if (f.grant_type !== 'client_credentials') {
      throw new OAuthError(400, 'unsupported_grant_type', `AADSTS70003: The app requested an unsupported grant type '${f.grant_type}'.`, 70003)
    }
    if (this.clientId !== undefined && f.client_id !== this.clientId) {
      throw new OAuthError(400, 'unauthorized_client', `AADSTS700016: Application with identifier '${f.client_id}' was not found in the directory '${this.tenant}'.`, 700016)
    }
    if (this.clientSecret !== undefined && f.client_secret !== this.clientSecret) {
      throw new OAuthError(401, 'invalid_client', `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${f.client_id}'.`, 7000215)
    }
    if (!f.scope.split(' ').some((s) => s.endsWith('/.default'))) {
      throw new OAuthError(400, 'invalid_scope', `AADSTS1002012: The provided value for scope ${f.scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`, 1002012)
    }
    const iat = Math.floor(this.clock.now() / 1000)
    const claims: TokenClaims & Record<string, unknown> = {
      aud: 'https://graph.microsoft.com',
      iss: `https://sts.windows.net/${this.tenant}/`,
      iat,
      nbf: iat,
      exp: iat + this.lifetimeSeconds,
      appid: f.client_id,
      gen: this.generation,
      tid: this.tenant,
      roles: ['Mail.ReadWrite', 'Calendars.ReadWrite', 'Contacts.ReadWrite', 'Tasks.ReadWrite.All'],
    }
    const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url')
    const token = `${head}.${body}.${this.sign(`${head}.${body}`)}`
    return { token_type: 'Bearer', expires_in: this.lifetimeSeconds, ext_expires_in: this.lifetimeSeconds, access_token: token }
  }

  /** Verified tokens → claims, so the signature is checked once per token, not once per request. */
  private readonly verified = new Map<string, TokenClaims & { gen?: number }>()

  /** Verifies an Authorization header value; returns the app id or throws 401 InvalidAuthenticationToken. */
  verify(header: string | undefined): string {
    const cached = header === undefined ? undefined : this.verified.get(header)
    if (cached && cached.exp > Math.floor(this.clock.now() / 1000) && cached.gen === this.generation) return cached.appid
    const appId = this.verifySlow(header)
    return appId
  }

  private verifySlow(header: string | undefined): string {
    const fail = (message: string): GraphHttpError =>
      new GraphHttpError(401, 'InvalidAuthenticationToken', message, { headers: { 'www-authenticate': 'Bearer realm=""' } })
    if (header === undefined || header.trim() === '') throw fail('Access token is empty.')
    const m = /^Bearer\s+(.+)$/i.exec(header.trim())
    if (!m) throw fail('Access token is empty.')
    const token = (m[1] ?? '').trim()
    const parts = token.split('.')
    if (parts.length !== 3) throw fail('IDX14100: JWT is not well formed, there are no dots (.).')
    const [head, body, sig] = parts as [string, string, string]
    const expected = Buffer.from(this.sign(`${head}.${body}`))
    const given = Buffer.from(sig)
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw fail('Invalid signature.')
    let claims: TokenClaims
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TokenClaims
    } catch {
      throw fail('IDX14102: Unable to decode the payload as Base64Url encoded string.')
    }
    const now = Math.floor(this.clock.now() / 1000)
    if (typeof claims.exp !== 'number' || claims.exp <= now || (claims as TokenClaims & { gen?: number }).gen !== this.generation) {
      throw fail('Lifetime validation failed, the token is expired.')
    }
    if (this.verified.size >= 1000) this.verified.clear()
    this.verified.set(header, claims)
    return claims.appid
  }
}
