/** The application user's own systemuserid (WhoAmI without impersonation): the identity of the organization feed. */
import { z } from 'zod'
import { ServerError } from '../errors.js'

const TokenSchema = z.looseObject({ access_token: z.string().min(1) })
const WhoAmISchema = z.looseObject({ UserId: z.string().regex(/^[0-9a-fA-F-]{36}$/) })

export async function applicationUserId(crm: { url: string; tokenUrl: string; clientId: string; clientSecret: string }, fetchImpl: typeof fetch = fetch): Promise<string> {
  const tokenRes = await fetchImpl(crm.tokenUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: crm.clientId, client_secret: crm.clientSecret, scope: `${crm.url}/.default` }).toString(),
  })
  if (!tokenRes.ok) throw new ServerError('Auth', `the CRM refused the application's credentials (${tokenRes.status})`)
  const token = TokenSchema.safeParse(await tokenRes.json())
  if (!token.success) throw new ServerError('Auth', 'the CRM token response has no access_token')
  const res = await fetchImpl(`${crm.url.replace(/\/$/, '')}/api/data/v9.2/WhoAmI`, { headers: { Authorization: `Bearer ${token.data.access_token}`, Accept: 'application/json' } })
  if (!res.ok) throw new ServerError('Auth', `WhoAmI failed (${res.status})`)
  const who = WhoAmISchema.safeParse(await res.json())
  if (!who.success) throw new ServerError('Internal', 'WhoAmI answered without a UserId')
  return who.data.UserId.toLowerCase()
}
