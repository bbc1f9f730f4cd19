import * as engine from '@concord/engine'
import { CrmWinsMerge, type MergeStrategy } from '@concord/engine'
import { SimulatorError } from './errors.js'
import type { ConflictRule } from './run.js'

/** Conflict policies the CLI accepts (the names of the engine's policy merge). */
export const ConflictPolicyNames = ['crm-wins', 'exchange-wins', 'lww', 'text-merge', 'set-merge', 'keep-both'] as const
export type ConflictPolicyName = (typeof ConflictPolicyNames)[number]

/** The expected outcome of a field both sides changed, per policy (the simulator's reference model). */
const RULES: Partial<Record<ConflictPolicyName, ConflictRule>> = {
  'crm-wins': (crm) => crm.value,
  'exchange-wins': (_crm, mailbox) => mailbox.value,
  lww: (crm, mailbox) => (mailbox.t > crm.t ? mailbox.value : crm.value),
}

export interface ConflictPolicy {
  name: ConflictPolicyName
  merge: () => MergeStrategy
  rule: ConflictRule
  /**
   * Whether the simulator's ground truth models this merge, so lost updates, duplicates and
   * convergence are measured. True for `crm-wins` (the engine's `CrmWinsMerge`). `PolicyMerge`
   * also applies the Dynamics field directions and sync filters (e.g. only tracked e-mail goes to
   * the CRM), which the reference model does not model yet: those runs report conflicts only.
   */
  measured: boolean
}

/**
 * Resolves a conflict policy to a `MergeStrategy` for `SyncPair`'s `merge` seam. `crm-wins` is the
 * engine's `CrmWinsMerge`; the others use the engine's `PolicyMerge` (packages/engine/src/merge),
 * looked up at run time, with `policies.default` set to the policy.
 */
export function resolveConflictPolicy(name: ConflictPolicyName): ConflictPolicy {
  if (name === 'crm-wins') return { name, merge: () => new CrmWinsMerge(), rule: RULES['crm-wins']!, measured: true }
  const PolicyMerge = (engine as Record<string, unknown>).PolicyMerge
  if (typeof PolicyMerge !== 'function') {
    throw new SimulatorError('Unsupported', `--conflict-policies ${name}: needs PolicyMerge exported from @concord/engine (packages/engine/src/merge), which this engine build does not export yet; only crm-wins is available`)
  }
  const Ctor = PolicyMerge as new (options: unknown) => MergeStrategy
  // MergePolicyConfig: `policies.default` applies to every field without its own entry
  return { name, merge: () => new Ctor({ policies: { default: name } }), rule: RULES[name] ?? RULES['crm-wins']!, measured: false }
}
