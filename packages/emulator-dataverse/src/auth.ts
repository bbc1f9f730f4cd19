import { randomBytes } from 'node:crypto'
import { z } from 'zod'

export const tokenRequestSchema = z.object({
  grant_type: z.literal('client_credentials', { message: "grant_type must be 'client_credentials'" }),
  client_id: z.string().min(1, 'client_id is required'),
  client_secret: z.string().min(1, 'client_secret is required'),
  scope: z.string().optional(),
})

export interface IssuedToken {
  clientId: string
  expiresAt: number
}

export type TokenResult =
  | { ok: true; body: { token_type: 'Bearer'; expires_in: number; ext_expires_in: number; access_token: string } }
  | { ok: false; status: number; body: { error: string; error_description: string } }

/** OAuth2 client-credentials issuer (opaque bearer tokens, kept in memory). */
export class TokenIssuer {
  private readonly tokens = new Map<string, IssuedToken>()

  constructor(
    private readonly clients: Map<string, string>,
    private readonly lifetimeSeconds = 3599,
    private readonly now: () => number = Date.now,
  ) {}

  issue(form: Record<string, string>): TokenResult {
    const parsed = tokenRequestSchema.safeParse(form)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      const field = issue?.path.join('.') ?? 'request'
      const unsupported = field === 'grant_type' && form.grant_type !== undefined
      return {
        ok: false,
        status: 400,
        body: {
          error: unsupported ? 'unsupported_grant_type' : 'invalid_request',
          error_description: `AADSTS900144: ${field}: ${issue?.message ?? 'invalid'} (got ${JSON.stringify(form[field] ?? null)})`,
        },
      }
    }
    const secret = this.clients.get(parsed.data.client_id)
    if (secret === undefined || secret !== parsed.data.client_secret) {
      return {
        ok: false,
        status: 401,
        body: { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided or unknown client_id.' },
      }
    }
    const access_token = randomBytes(24).toString('base64url')
    this.tokens.set(access_token, { clientId: parsed.data.client_id, expiresAt: this.now() + this.lifetimeSeconds * 1000 })
    return { ok: true, body: { token_type: 'Bearer', expires_in: this.lifetimeSeconds, ext_expires_in: this.lifetimeSeconds, access_token } }
  }

  /** Returns the client id for a valid `Authorization: Bearer` header, or null. */
  verify(header: string | undefined): string | null {
    if (!header) return null
    const m = /^Bearer\s+(\S+)$/i.exec(header)
    if (!m) return null
    const t = this.tokens.get(m[1] as string)
    if (!t) return null
    if (t.expiresAt <= this.now()) {
      this.tokens.delete(m[1] as string)
      return null
    }
    return t.clientId
  }

  revokeAll(): void {
    this.tokens.clear()
  }
}
