/**
 * The application user's own Web API client (no impersonation): what a server-side-sync runtime uses
 * for its bookkeeping — mailboxes, alerts, the outgoing e-mail queue — across every mailbox owner.
 */
import { silentLogger, SyncError, type Logger } from '@concord/engine'
import { z } from 'zod'
import { parseJson, WebApiClient } from './http.js'

export const CrmServiceOptionsSchema = z.strictObject({
  /** Organization URL, e.g. https://contoso.crm.dynamics.com. */
  orgUrl: z.url(),
  /** OAuth2 token endpoint (client-credentials grant). */
  tokenUrl: z.url(),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  /** Token scope; default `${orgUrl}/.default`. */
  scope: z.string().min(1).optional(),
  /** `Prefer: odata.maxpagesize` of list calls (Dataverse allows up to 5,000). */
  pageSize: z.number().int().min(1).max(5000).default(500),
})
export type CrmServiceOptionsInput = z.input<typeof CrmServiceOptionsSchema>
export type CrmServiceOptions = z.output<typeof CrmServiceOptionsSchema>

export interface CrmServiceDeps {
  logger?: Logger | undefined
  fetch?: typeof fetch | undefined
}

export function parseCrmServiceOptions(input: unknown): CrmServiceOptions {
  const parsed = CrmServiceOptionsSchema.safeParse(input)
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new SyncError('Config', `Invalid CRM service options: ${issues}`, {}, { cause: parsed.error })
  }
  return parsed.data
}

export const GUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

/** Validates a GUID argument; bad input → `SyncError('Validation')` naming it. */
export function guidArg(name: string, value: unknown): string {
  if (typeof value !== 'string' || !GUID_RE.test(value)) throw new SyncError('Validation', `${name} must be a GUID, got ${JSON.stringify(value)}`)
  return value.toLowerCase()
}

const PageSchema = z.looseObject({ value: z.array(z.unknown()), '@odata.nextLink': z.string().optional() })

export function createServiceClient(options: CrmServiceOptions, deps: CrmServiceDeps): WebApiClient {
  return new WebApiClient(options, deps.fetch ?? globalThis.fetch.bind(globalThis), deps.logger ?? silentLogger)
}

/** GETs every page of a collection (`Prefer: odata.maxpagesize`, following `@odata.nextLink`), parsing each row with `row`. */
export async function getAllPages<T>(http: WebApiClient, path: string, row: z.ZodType<T>, pageSize: number, what: string, signal?: AbortSignal, extraPrefer: string[] = []): Promise<T[]> {
  const out: T[] = []
  const prefer = [`odata.maxpagesize=${pageSize}`, ...extraPrefer].join(',')
  let url: string | undefined = path
  for (let page = 0; url !== undefined; page++) {
    if (page > 100_000) throw new SyncError('InvalidRemoteData', `${what}: too many pages`)
    const res = await http.request('GET', url, { headers: { Prefer: prefer }, signal })
    const body = parseJson(res, PageSchema, `${what} page`)
    for (const [i, raw] of body.value.entries()) {
      const parsed = row.safeParse(raw)
      if (!parsed.success) {
        const issues = parsed.error.issues.slice(0, 5).map((x) => `${x.path.map(String).join('.') || '(root)'}: ${x.message}`).join('; ')
        throw new SyncError('InvalidRemoteData', `Invalid ${what} row ${i} from Dataverse: ${issues}`, { url: res.url.split('?')[0] }, { cause: parsed.error })
      }
      out.push(parsed.data)
    }
    url = body['@odata.nextLink']
  }
  return out
}

const WhoAmISchema = z.looseObject({
  UserId: z.string().regex(GUID_RE),
  BusinessUnitId: z.string().regex(GUID_RE),
  OrganizationId: z.string().regex(GUID_RE),
})

export interface WhoAmIResult {
  /** systemuserid of the caller (the application user itself: no impersonation). */
  userId: string
  businessUnitId: string
  organizationId: string
}

/**
 * `WhoAmI()` as the application user: token acquisition (client credentials) + the function call.
 * Options are zod-parsed (`SyncError('Config')`); a refused token → `SyncError('Unauthorized')`;
 * other failures are classified like every Web API call.
 */
export async function whoAmI(input: CrmServiceOptionsInput, deps: CrmServiceDeps = {}, signal?: AbortSignal): Promise<WhoAmIResult> {
  const http = createServiceClient(parseCrmServiceOptions(input), deps)
  const who = await http.getJson('WhoAmI()', WhoAmISchema, {}, signal)
  return { userId: who.UserId.toLowerCase(), businessUnitId: who.BusinessUnitId.toLowerCase(), organizationId: who.OrganizationId.toLowerCase() }
}
