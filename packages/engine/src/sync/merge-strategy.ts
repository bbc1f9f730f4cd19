import type { DeleteProvenance } from '../contract/replica-adapter.js'
import type { ConcordId, PairId, Version } from '../ids.js'
import type { Fields, ItemKind } from '../model/item.js'
import type { MergeContext } from '../merge/context.js'
import type { BaseRecord } from '../store/records.js'
import { jsonEqual } from '../util/canonical-json.js'
import { sharedIfSame } from '../util/deep-freeze.js'

/** The two sides of a pair. `mailbox` is Exchange, an Outlook client or an IMAP account. */
export type Side = 'crm' | 'mailbox'
export const Sides: readonly Side[] = ['crm', 'mailbox']
export const otherSide = (side: Side): Side => (side === 'crm' ? 'mailbox' : 'crm')

/** The newest unmerged change of one side for an item. */
export type SideChange =
  | { type: 'upsert'; fields: Fields; version: Version; modifiedAt?: number | undefined }
  | { type: 'delete'; provenance: DeleteProvenance }

export interface MergeInput {
  pairId: PairId
  concordId: ConcordId
  kind: ItemKind
  /** The last agreed state; undefined when the pair never agreed on this item. */
  base: BaseRecord | undefined
  /** Per side: the newest change since the last merge, or undefined when that side did not change. */
  changes: Record<Side, SideChange | undefined>
  /** Per side: whether a live record is linked there now. */
  exists: Record<Side, boolean>
  /**
   * Optional context for policy-driven strategies (`PolicyMerge`): the mailbox owner, their
   * security mask, CRM metadata for sync filters, tracking state and per-field clocks. Strategies
   * that do not need it (such as `CrmWinsMerge`) ignore it.
   */
  context?: MergeContext | undefined
}

/** A write the merge wants on one side. */
export type SideWrite =
  | { type: 'create'; fields: Fields }
  | { type: 'update'; fields: Fields }
  | { type: 'delete'; provenance: DeleteProvenance }

/** Why a field ended as it did; the record behind `explain`. */
export interface FieldDecision {
  field: string
  base: unknown
  crm: unknown
  mailbox: unknown
  outcome: 'take-crm' | 'take-mailbox' | 'agreed' | 'conflict-crm-wins' | 'conflict-mailbox-wins' | 'merged' | 'blocked' | 'conflict-kept'
  rule: string
  value: unknown
  /** The sync direction that applied (`both`, `toCrm`, `toExchange`, `none`). */
  direction?: string | undefined
  /** What the mailbox owner may do with this field in the CRM (field security). */
  access?: { read: boolean; update: boolean } | undefined
  /** The conflict policy configured for the field. */
  policy?: string | undefined
  /** Whose value the field ends with: one side, both (equal), a merge of both, or none (blocked/kept). */
  winner?: 'crm' | 'mailbox' | 'both' | 'merged' | 'none' | undefined
  /** Each side's record version the values were read from (shared by the fields of one decision). */
  versions?: { readonly crm?: string | undefined; readonly mailbox?: string | undefined } | undefined
  /** The base's per-field version (how many times the field was agreed). */
  baseVersion?: number | undefined
  /** Hybrid logical clocks compared by an `lww` decision (encoded). */
  clocks?: { crm?: string | undefined; mailbox?: string | undefined } | undefined
}

/** A field conflict kept for the user to resolve (`keep-both`): neither side is written. */
export interface ConflictRecord {
  field: string
  base: unknown
  crm: unknown
  mailbox: unknown
}

export interface MergeDecision {
  writes: Partial<Record<Side, SideWrite>>
  /** Field values both sides already hold: they become the base now, with no push. */
  agreedNow: Fields
  /** Both sides are gone: forget the base. */
  forget: boolean
  fields: FieldDecision[]
  /** Conflicts kept for the user (`keep-both`); the item is not duplicated (no second invitation). */
  conflicts?: ConflictRecord[] | undefined
  /** Item-level explanations: gates that applied (no sync privilege, left filter, untracked…). */
  notes?: string[] | undefined
  /** Encoded HLC per field for `lww` fields that were decided now; the loop stores them with the base. */
  fieldClocks?: Record<string, string> | undefined
  /**
   * Set when a per-item-type deletion rule kept a delete from propagating: the surviving copy stays
   * and the item is unlinked for this pair (the loop marks the base `unlinked`, so later changes on
   * either side do not flow and nothing is re-created). The value is the rule, for explain.
   */
  unlink?: string | undefined
}

/**
 * The seam between the sync loop and merge policy. The loop gathers each side's newest change
 * against the base and applies the decision; a strategy decides per field and never does I/O.
 */
export interface MergeStrategy {
  merge(input: MergeInput): MergeDecision
  /** Optional batched form (e.g. to share one Yjs pass across items); same result as mapping `merge`. */
  mergeBatch?(inputs: readonly MergeInput[]): MergeDecision[]
}

const UNKNOWN = Symbol('unknown')

/** A field's value on a side: its change, else the base; UNKNOWN where neither has it. */
function valueOn(change: SideChange | undefined, baseFields: Fields, name: string): unknown {
  if (change?.type === 'upsert') return name in change.fields ? change.fields[name] : UNKNOWN
  return name in baseFields ? baseFields[name] : UNKNOWN
}

/** Whether a side changed a field against the base. */
function changedOn(change: SideChange | undefined, baseFields: Fields, name: string): boolean {
  return change?.type === 'upsert' && name in change.fields && (!(name in baseFields) || !jsonEqual(change.fields[name], baseFields[name]))
}

/**
 * The foundation strategy: per field, one side changed → take it; both changed → CRM wins (equal
 * values are simply agreed). A delete against an unchanged side propagates; a delete against a
 * changed side loses (the change re-creates the record), so no edit is ever lost to a delete.
 */
export class CrmWinsMerge implements MergeStrategy {
  merge(input: MergeInput): MergeDecision {
    const { changes, exists, base } = input
    const decision: MergeDecision = { writes: {}, agreedNow: {}, forget: false, fields: [] }
    const crm = changes.crm
    const mailbox = changes.mailbox

    if (crm?.type === 'delete' || mailbox?.type === 'delete') {
      const deleted: Side = crm?.type === 'delete' ? 'crm' : 'mailbox'
      const survivor = otherSide(deleted)
      const survivorChange = changes[survivor]
      if (survivorChange?.type === 'delete' || !exists[survivor]) {
        decision.forget = true
        return decision
      }
      if (survivorChange?.type === 'upsert') {
        // An edit beats a concurrent delete: bring the record back where it was deleted.
        decision.writes[deleted] = { type: 'create', fields: { ...(base?.fields ?? {}), ...survivorChange.fields } }
        return decision
      }
      const provenance = (changes[deleted] as { provenance: DeleteProvenance }).provenance
      decision.writes[survivor] = { type: 'delete', provenance }
      return decision
    }

    const baseFields = base?.fields ?? {}
    const names = new Set<string>([...Object.keys(baseFields), ...(crm?.type === 'upsert' ? Object.keys(crm.fields) : []), ...(mailbox?.type === 'upsert' ? Object.keys(mailbox.fields) : [])])
    const pushTo: Record<Side, Fields> = { crm: {}, mailbox: {} }
    for (const name of names) {
      const crmValue = valueOn(crm, baseFields, name)
      const mailboxValue = valueOn(mailbox, baseFields, name)
      const crmChanged = changedOn(crm, baseFields, name)
      const mailboxChanged = changedOn(mailbox, baseFields, name)
      let outcome: FieldDecision['outcome']
      let rule: string
      let value: unknown
      if (crmChanged && mailboxChanged) {
        if (jsonEqual(crmValue, mailboxValue)) {
          decision.agreedNow[name] = crmValue
          ;[outcome, rule, value] = ['agreed', 'both sides made the same change', crmValue]
        } else {
          pushTo.mailbox[name] = crmValue
          ;[outcome, rule, value] = ['conflict-crm-wins', 'both changed: crm-wins', crmValue]
        }
      } else if (crmChanged) {
        if (mailboxValue !== UNKNOWN && jsonEqual(crmValue, mailboxValue)) decision.agreedNow[name] = crmValue
        else pushTo.mailbox[name] = crmValue
        ;[outcome, rule, value] = ['take-crm', 'only crm changed', crmValue]
      } else if (mailboxChanged) {
        if (crmValue !== UNKNOWN && jsonEqual(crmValue, mailboxValue)) decision.agreedNow[name] = mailboxValue
        else pushTo.crm[name] = mailboxValue
        ;[outcome, rule, value] = ['take-mailbox', 'only mailbox changed', mailboxValue]
      } else continue
      decision.fields.push({ field: name, base: baseFields[name], crm: crmValue === UNKNOWN ? undefined : crmValue, mailbox: mailboxValue === UNKNOWN ? undefined : mailboxValue, outcome, rule, value })
    }

    for (const side of Sides) {
      const fields = pushTo[side]
      if (!exists[side]) {
        // Create with everything known about the item, not only the changed fields.
        const source = otherSide(side)
        const sourceChange = changes[source]
        const sourceFields = sourceChange?.type === 'upsert' ? sourceChange.fields : undefined
        const full = sharedIfSame({ ...baseFields, ...sourceFields, ...fields }, sourceFields)
        if (exists[source] && Object.keys(full).length > 0) decision.writes[side] = { type: 'create', fields: full }
      } else if (Object.keys(fields).length > 0) {
        decision.writes[side] = { type: 'update', fields }
      }
    }
    return decision
  }
}
