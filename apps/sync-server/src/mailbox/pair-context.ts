/** The merge context of a mailbox's pair from what the CRM reports about its owner. */
import { type OwnerMasks, CrmKinds, toCrmPrivilegeReport } from '@concord/adapter-crm'
import { type FieldAccess, type SyncFilterSet, type SyncPairOptions, computeSecurityMask } from '@concord/engine'

export type PairContext = NonNullable<SyncPairOptions['context']>

/**
 * One security mask for all kinds: the CRM adapter already enforces field security per table on pull
 * and push; the merge mask adds the "unknown, never cleared" rule. Field names shared by several kinds
 * (subject, description) get the most restrictive access among them.
 */
export function pairContextOf(masks: OwnerMasks, email: string, filters: SyncFilterSet | undefined): PairContext {
  const fields: Record<string, FieldAccess> = {}
  let canSync = masks.maySync
  let canSendFromCrm = masks.maySend
  for (const kind of CrmKinds) {
    const mask = computeSecurityMask(toCrmPrivilegeReport(masks, kind))
    canSync &&= mask.canSync
    canSendFromCrm &&= mask.canSendFromCrm
    for (const [name, access] of Object.entries(mask.fields ?? {})) {
      const prior = fields[name]
      fields[name] = prior ? { read: prior.read && access.read, update: prior.update && access.update } : access
    }
  }
  return {
    user: { id: masks.userId, addresses: [email] },
    mask: { canSync, canSendFromCrm, canReadRecord: true, fields },
    ...(filters ? { filters } : {}),
  }
}
