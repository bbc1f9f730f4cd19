import { z } from 'zod'
import type { ColumnPermission } from './field-security.js'
import { columnsOfField, TABLES } from './mapping.js'
import { CrmKinds, type CrmKind } from './options.js'

/** The sync privilege of a security role ("Sync to Outlook" / mailbox sync). */
export const SYNC_PRIVILEGE = 'prvSyncToOutlook'
/** "Send e-mail as another user". */
export const SEND_AS_PRIVILEGE = 'prvSendAsUser'

/** A user's permission on one canonical field (from Dataverse column security). */
export interface FieldMask {
  read: boolean
  create: boolean
  update: boolean
}

/**
 * What the CRM allows a mailbox owner, as the engine's merge needs it.
 *
 * - `maySync`: a security role grants `prvSyncToOutlook`; without it the adapter refuses to pull.
 * - `maySend`: `prvSendAsUser` (send e-mail as the user).
 * - `fields[kind][field]`: only canonical fields backed by a **secured** column are listed; an
 *   unlisted field is readable and writable. A field the owner cannot `read` is reported absent by
 *   `pull` and never written by `push`.
 * - Per record: `CrmAdapter.checkRecordAccess(kind, nativeId)` → `{ mayRead, owned, ownerId }`.
 *
 * `toCrmPrivilegeReport` converts this to the engine merge's `CrmPrivilegeReport` shape.
 */
export interface OwnerMasks {
  /** systemuserid of the mailbox owner. */
  userId: string
  maySync: boolean
  maySend: boolean
  fields: Record<CrmKind, Record<string, FieldMask>>
  /** Secured columns per table logical name (raw Dataverse view). */
  columns: Record<string, Record<string, FieldMask>>
}

/** Per record access of the mailbox owner. */
export interface RecordAccess {
  /** The owner can read the record (false after losing access through security or sharing, or when it is gone). */
  mayRead: boolean
  /** The owner owns the record (`ownerid` is the owner's systemuserid). */
  owned: boolean
  ownerId: string | null
}

/** The engine merge's input shape (`CrmPrivilegeReport` in `@concord/engine` merge/masks.ts). */
export interface CrmPrivilegeReport {
  hasSyncPrivilege: boolean
  canSendFromCrm: boolean
  canReadRecord: boolean
  securedFields: Record<string, { canRead: boolean; canUpdate: boolean }>
}

export function toCrmPrivilegeReport(masks: OwnerMasks, kind: CrmKind, canReadRecord = true): CrmPrivilegeReport {
  const securedFields: CrmPrivilegeReport['securedFields'] = {}
  for (const [field, m] of Object.entries(masks.fields[kind])) securedFields[field] = { canRead: m.read, canUpdate: m.update }
  return { hasSyncPrivilege: masks.maySync, canSendFromCrm: masks.maySend, canReadRecord, securedFields }
}

export const PrivilegesResponseSchema = z.object({
  RolePrivileges: z.array(z.object({ PrivilegeName: z.string().min(1), Depth: z.string() }).loose()),
}).loose()

export function buildOwnerMasks(
  userId: string,
  privileges: z.infer<typeof PrivilegesResponseSchema>,
  fieldPermissions: readonly ColumnPermission[],
  contactAddresses: 'mailing' | 'all',
): OwnerMasks {
  const names = new Set(privileges.RolePrivileges.map((p) => p.PrivilegeName))
  const columns: OwnerMasks['columns'] = {}
  for (const p of fieldPermissions) {
    ;(columns[p.table] ??= {})[p.column] = { read: p.canRead, create: p.canCreate, update: p.canUpdate }
  }
  const fields = {} as OwnerMasks['fields']
  for (const kind of CrmKinds) {
    const secured = columns[TABLES[kind].logicalName] ?? {}
    const out: Record<string, FieldMask> = {}
    for (const [field, cols] of columnsOfField(kind, contactAddresses)) {
      const perms = cols.map((c) => secured[c]).filter((m): m is FieldMask => m !== undefined)
      if (perms.length === 0) continue
      out[field] = { read: perms.every((m) => m.read), create: perms.every((m) => m.create), update: perms.every((m) => m.update) }
    }
    fields[kind] = out
  }
  return { userId, maySync: names.has(SYNC_PRIVILEGE), maySend: names.has(SEND_AS_PRIVILEGE), fields, columns }
}
