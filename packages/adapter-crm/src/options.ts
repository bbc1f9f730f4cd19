import { SyncError, type Logger, type ReplicaId } from '@concord/engine'
import { z } from 'zod'

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

export const CrmKinds = ['contact', 'appointment', 'task', 'email'] as const
export type CrmKind = (typeof CrmKinds)[number]

export const CrmAdapterOptionsSchema = z.strictObject({
  /** Organization URL, e.g. https://contoso.crm.dynamics.com (the Web API is `${orgUrl}/api/data/v9.2`). */
  orgUrl: z.url(),
  /** OAuth2 token endpoint (client-credentials grant). */
  tokenUrl: z.url(),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  /** Token scope; default `${orgUrl}/.default`. */
  scope: z.string().min(1).optional(),
  /** The mailbox owner: impersonated on every request so CRM security applies as that user. */
  impersonate: z.union([
    z.strictObject({ callerObjectId: z.string().regex(GUID, 'expected an Entra object id (GUID)') }),
    z.strictObject({ systemUserId: z.string().regex(GUID, 'expected a systemuserid (GUID)') }),
  ]),
  /** Tables synced, in pull order. Default: contact, appointment, task, email. */
  kinds: z.array(z.enum(CrmKinds)).min(1).default([...CrmKinds]),
  /** Contact addresses: `mailing` (address1 ↔ businessAddress, the Dynamics default) or `all` (2 ↔ home, 3 ↔ other). */
  contactAddresses: z.enum(['mailing', 'all']).default('mailing'),
  /** Operations per `$batch` request (Dataverse allows 1,000). */
  batchSize: z.number().int().min(1).max(1000).default(100),
  /** Tracking-token prefix configured in the organization (default `CRM:`). */
  trackingTokenPrefix: z.string().min(1).max(20).default('CRM:'),
  /** Smart matching: minimum number of shared sender/recipient addresses. */
  smartMatchMinOverlap: z.number().int().min(1).max(50).default(2),
  /** How long a user's column permissions (field security profiles) are reused, in ms; 0 = read every time. */
  fieldSecurityCacheMs: z.number().int().min(0).max(86_400_000).default(300_000),
  /**
   * How old the owner's masks (privileges + column permissions) may be when a pull round starts before
   * they are read again, in ms; 0 (default) = at every round. A feed that pulls every few seconds as a
   * user whose rights rarely change (the application user) saves a request per round with a few minutes.
   */
  masksMaxAgeMs: z.number().int().min(0).max(86_400_000).default(0),
})
export type CrmAdapterOptionsInput = z.input<typeof CrmAdapterOptionsSchema>
export type CrmAdapterOptions = z.output<typeof CrmAdapterOptionsSchema>

export interface CrmAdapterDeps {
  replicaId: ReplicaId
  /** Injected logger (libraries never print). */
  logger?: Logger | undefined
  /** Injected fetch (defaults to Node's global fetch). */
  fetch?: typeof fetch | undefined
  /** Injected clock (ms) for the column-permission cache; default `Date.now`. */
  now?: (() => number) | undefined
}

export function parseCrmAdapterOptions(input: unknown): CrmAdapterOptions {
  const parsed = CrmAdapterOptionsSchema.safeParse(input)
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new SyncError('Config', `Invalid CRM adapter options: ${issues}`, {}, { cause: parsed.error })
  }
  return parsed.data
}
