import { CrmWinsMerge, PolicyMerge, mergeSets, mergeText } from '@concord/engine'
import type { MergeStrategy } from '@concord/engine'
import { type ConflictRule, KEEP_BOTH, type MergeModel } from './reference-model.js'

/** Conflict policies the CLI accepts (the names of the engine's policy merge). */
export const ConflictPolicyNames = ['crm-wins', 'exchange-wins', 'lww', 'text-merge', 'set-merge', 'keep-both'] as const
export type ConflictPolicyName = (typeof ConflictPolicyNames)[number]

/** The expected outcome of a field both sides changed, per policy (the simulator's reference model). */
const RULES: Partial<Record<ConflictPolicyName, ConflictRule>> = {
  'crm-wins': (crm) => crm.value,
  'exchange-wins': (_crm, mailbox) => mailbox.value,
  // the later record modification time (whole ms, the engine's hybrid logical clock) wins; a tie goes to the mailbox (HLC node order)
  lww: (crm, mailbox) => (Math.floor(mailbox.t) >= Math.floor(crm.t) ? mailbox.value : crm.value),
  // Yjs 3-way merge of text; anything else falls back to crm-wins (as PolicyMerge does)
  'text-merge': (crm, mailbox, base) => {
    const textual = (v: unknown) => typeof v === 'string' || v === null
    if (!textual(crm.value) || !textual(mailbox.value) || !(base === undefined || textual(base))) return crm.value
    const merged = mergeText((base as string | null | undefined) ?? '', (crm.value as string | null) ?? '', (mailbox.value as string | null) ?? '')
    return merged === '' && (crm.value === null || mailbox.value === null) ? null : merged
  },
  'set-merge': (crm, mailbox, base) => {
    const setLike = (v: unknown) => Array.isArray(v) || v === null
    if (!setLike(crm.value) || !setLike(mailbox.value) || !(base === undefined || setLike(base))) return crm.value
    return mergeSets('plain', (base as unknown[] | null | undefined) ?? null, crm.value as unknown[] | null, mailbox.value as unknown[] | null)
  },
  'keep-both': () => KEEP_BOTH,
}

export interface ConflictPolicy {
  name: ConflictPolicyName
  merge: () => MergeStrategy
  rule: ConflictRule
  /** The reference model of the merge (directions, tracking, rule). */
  model: MergeModel
  /**
   * Whether the simulator's ground truth models this merge, so lost updates, duplicates and
   * convergence are measured. True for every policy: the reference model applies `PolicyMerge`'s
   * Dynamics field directions and tracking (only tracked e-mail goes to the CRM). Sync filters need
   * a user context, which the simulator's pairs do not set, so they never apply.
   */
  measured: boolean
}

/**
 * Resolves a conflict policy to a `MergeStrategy` for `SyncPair`'s `merge` seam. `crm-wins` is the
 * engine's `CrmWinsMerge`; the others use the engine's `PolicyMerge` (packages/engine/src/merge) with
 * `policies.default` set to the policy.
 */
export function resolveConflictPolicy(name: ConflictPolicyName): ConflictPolicy {
  if (name === 'crm-wins') {
    const rule = RULES['crm-wins']!
    return { name, merge: () => new CrmWinsMerge(), rule, model: { direction: () => 'both', tracking: false, rule }, measured: true }
  }
  // MergePolicyConfig: `policies.default` applies to every field without its own entry
  const config = { policies: { default: name } }
  const directions = new PolicyMerge(config)
  const rule = RULES[name] ?? RULES['crm-wins']!
  return { name, merge: () => new PolicyMerge(config), rule, model: { direction: (kind, field) => directions.direction(kind, field), tracking: true, rule }, measured: true }
}
