import type { ItemKind, Fields } from '../model/item.js'
import { asConcordId, asPairId, asVersion } from '../ids.js'
import type { BaseRecord } from '../store/records.js'
import type { MergeDecision, MergeInput, Side, SideChange } from '../sync/merge-strategy.js'
import type { MergeContext } from './context.js'

/** A side's record in a merge test: its fields, or null when it does not exist. */
export type SideState = Fields | null

let versionCounter = 0

export function upsert(fields: Fields, modifiedAt?: number): SideChange {
  return { type: 'upsert', fields, version: asVersion(`v${++versionCounter}`), modifiedAt }
}

export function mergeInput(options: { kind?: ItemKind; base?: Fields | undefined; crm?: SideChange | undefined; mailbox?: SideChange | undefined; exists: Record<Side, boolean>; context?: MergeContext }): MergeInput {
  const base: BaseRecord | undefined = options.base === undefined ? undefined : { kind: options.kind ?? 'task', fields: options.base, fieldVersions: Object.fromEntries(Object.keys(options.base).map((k) => [k, 1])), versions: {} }
  return { pairId: asPairId('p'), concordId: asConcordId('c1'), kind: options.kind ?? 'task', base, changes: { crm: options.crm, mailbox: options.mailbox }, exists: options.exists, context: options.context }
}

/** Applies a decision's writes to both sides' states, as the sync loop and the remotes would. */
export function applyDecision(decision: MergeDecision, states: Record<Side, SideState>): Record<Side, SideState> {
  const out: Record<Side, SideState> = { crm: states.crm && { ...states.crm }, mailbox: states.mailbox && { ...states.mailbox } }
  for (const side of ['crm', 'mailbox'] as const) {
    const write = decision.writes[side]
    if (!write) continue
    if (write.type === 'delete') out[side] = null
    else if (write.type === 'create') out[side] = { ...write.fields }
    else out[side] = { ...(out[side] ?? {}), ...write.fields }
  }
  return out
}
