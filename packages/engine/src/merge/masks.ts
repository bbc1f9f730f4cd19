import { z } from 'zod'
import { ValidationError } from '../errors.js'
import type { FieldAccess, SecurityMask } from './context.js'

export type { FieldAccess, SecurityMask } from './context.js'

/** Full access: what a merge assumes when the loop supplies no mask. */
export const FULL_ACCESS_MASK: SecurityMask = { canSync: true, canSendFromCrm: true, canReadRecord: true }

const FULL_FIELD: FieldAccess = { read: true, update: true }

/** Access to one field; a field the mask does not list is readable and updatable. */
export function fieldAccess(mask: SecurityMask, field: string): FieldAccess {
  return mask.fields?.[field] ?? FULL_FIELD
}

/**
 * What the CRM adapter reports for the mailbox owner, in CRM terms (validated with zod: it comes from
 * a remote). `securedFields` maps a canonical field name to the user's field permission on the
 * secured column (Dataverse `fieldpermission`: canRead / canUpdate). Columns that are not secured
 * are simply not listed.
 */
export const CrmPrivilegeReportSchema = z.strictObject({
  /** The security role includes the sync privilege ("Sync to Outlook" / mailbox sync). */
  hasSyncPrivilege: z.boolean(),
  /** "Send e-mail as another user" / "Send invitations" privileges. */
  canSendFromCrm: z.boolean(),
  /** The user can read the record (false after losing access through security or sharing). */
  canReadRecord: z.boolean().default(true),
  securedFields: z.record(z.string().min(1), z.strictObject({ canRead: z.boolean(), canUpdate: z.boolean() })).default({}),
})
export type CrmPrivilegeReport = z.input<typeof CrmPrivilegeReportSchema>

/** Turns the CRM adapter's privilege report into a `SecurityMask`. Bad input → `ValidationError` naming the key. */
export function computeSecurityMask(report: unknown): SecurityMask {
  const parsed = CrmPrivilegeReportSchema.safeParse(report)
  if (!parsed.success) throw ValidationError.fromZod('CRM privilege report', parsed.error)
  const { hasSyncPrivilege, canSendFromCrm, canReadRecord, securedFields } = parsed.data
  const fields: Record<string, FieldAccess> = {}
  // A user who cannot read a column cannot meaningfully update it through sync either.
  for (const [name, perm] of Object.entries(securedFields)) fields[name] = { read: perm.canRead, update: perm.canRead && perm.canUpdate }
  return { canSync: hasSyncPrivilege, canSendFromCrm, canReadRecord, fields }
}
