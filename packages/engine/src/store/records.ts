import type { DeleteProvenance, PushOp, RecordMeta } from '../contract/replica-adapter.js'
import type { ConcordId, NativeId, OpId, PairId, ReplicaId, Version } from '../ids.js'
import type { Fields, ItemKind } from '../model/item.js'
import { sharedOrCopy } from '../util/deep-freeze.js'

/** One entry of a replica's append-only change log: a record that really changed. */
export interface LogEntry {
  seq: number
  concordId: ConcordId
  nativeId: NativeId
  kind: ItemKind
  type: 'upsert' | 'delete'
  version?: Version | undefined
  hash?: string | undefined
  fields?: Fields | undefined
  modifiedAt?: number | undefined
  meta?: RecordMeta | undefined
  provenance?: DeleteProvenance | undefined
  /** When the engine recorded it (ms since epoch, from the injected clock). */
  at: number
}

/** What the engine last saw of a native record. */
export interface Snapshot {
  concordId: ConcordId
  kind: ItemKind
  version: Version
  /** Hash of the known canonical fields; '' when unknown (a push ack without a body). */
  hash: string
  deleted?: boolean | undefined
  /** Owner / attendees / state / tracked, as last reported (filters need it when only the other side changed). */
  meta?: RecordMeta | undefined
  /**
   * Written by stores before 0.2: the full listing that last contained this record. A listing now
   * records each page's native ids once (`keys.listed`) instead of rewriting every snapshot it lists.
   */
  listing?: number | undefined
}

/** Where a Concord item lives on each replica. */
export interface LinkRecord {
  kind: ItemKind
  natives: Partial<Record<ReplicaId, NativeId>>
}

/** The last agreed state of a linked item for one pair: the base (shadow) of the 3-way merge. */
export interface BaseRecord {
  kind: ItemKind
  /** Agreed value of every field both sides have confirmed. */
  fields: Fields
  /** How many times each field was agreed (a per-field version, for explain and LWW tie-breaks). */
  fieldVersions: Record<string, number>
  /** Each side's record version when the base was last confirmed. */
  versions: Partial<Record<ReplicaId, Version>>
  /** Encoded HLC of the last `lww` decision per field. */
  clocks?: Record<string, string> | undefined
  /**
   * Set when a deletion rule unlinked the item (one copy was deleted, the other kept): the pair no
   * longer syncs it. Cleared (the base forgotten) once the kept copy is gone too.
   */
  unlinked?: { at: number; rule: string } | undefined
}

/**
 * A new base with `agreed` fields set and each one's version bumped (a copy; the input is not
 * changed). `base` absent = the pair's first agreement on this item.
 */
export function withAgreedFields(base: BaseRecord | undefined, kind: ItemKind, agreed: Fields): BaseRecord {
  const fieldVersions: Record<string, number> = base ? { ...base.fieldVersions } : {}
  for (const name of Object.keys(agreed)) fieldVersions[name] = (fieldVersions[name] ?? 0) + 1
  if (base) return { ...base, fields: { ...base.fields, ...agreed }, fieldVersions, versions: { ...base.versions } }
  // a first agreement keeps frozen fields as they are: shared with the push that carried them, not a copy
  return { kind, fields: sharedOrCopy(agreed), fieldVersions, versions: {} }
}

/** Fields kept for the user to resolve (`keep-both`), per item. */
export interface ConflictListRecord {
  concordId: ConcordId
  kind: ItemKind
  at: number
  conflicts: Array<{ field: string; base: unknown; crm: unknown; mailbox: unknown }>
}

/** A push waiting to be sent or acknowledged. Keyed by (pair, target replica, Concord id). */
export interface OutboxEntry {
  pairId: PairId
  target: ReplicaId
  op: PushOp
  /** Fields that become agreed in the base when this op is acknowledged. */
  agreed: Fields
  /** Version of the source record the op was planned from. */
  sourceReplica?: ReplicaId | undefined
  sourceVersion?: Version | undefined
  /** A delete's source record (the one deleted): its last snapshot keeps the metadata a re-merge needs. */
  sourceNative?: NativeId | undefined
  attempts: number
  plannedAt: number
  lastError?: { code: string; message: string } | undefined
  /**
   * The remote rejected the op because the record changed under us (412, or it is gone). The op is
   * not retried as is: its fields go back into the next merge as the source side's change, so the
   * remote's newer state and our intent are merged under the field policies. Nothing is lost.
   */
  remerge?: boolean | undefined
}

export type OutboxKey = { pairId: PairId; target: ReplicaId; concordId: ConcordId }
export type { OpId }

/** Deletes a cycle planned but the mass-deletion guard held, waiting for an admin. */
export interface QuarantineRecord {
  id: string
  pairId: PairId
  target: ReplicaId
  createdAt: number
  /** The guard's explanation (counts, share, threshold). */
  reason: string
  /** The held delete pushes, exactly as they would have gone to the outbox. */
  entries: OutboxEntry[]
}

/** A deleted item's last agreed state, kept so that a delete can be undone. */
export interface TombstoneRecord {
  concordId: ConcordId
  kind: ItemKind
  fields: Fields
  deletedAt: number
  /** The side whose copy the engine deleted, and why. */
  target: ReplicaId
  provenance: DeleteProvenance
}

/** The latest decision per field of an item, for `explain` after the fact. */
export interface ExplainRecord {
  at: number
  fields: Record<string, unknown>
}

/** The sides of a stored field decision whose value is the decision's `value` (left out when stored). */
const SAME_AS_VALUE = '='
const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)
/** Compares the small members a record's decisions may share: primitives, and flat arrays or objects of them (the `=` list, versions, access). */
function sameMember(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i] || (a[i] !== null && typeof a[i] === 'object')) return false
    return true
  }
  const x = a as Record<string, unknown>
  const y = b as Record<string, unknown>
  const keys = Object.keys(x)
  if (keys.length !== Object.keys(y).length) return false
  for (const k of keys) if (x[k] !== y[k] || (x[k] !== null && typeof x[k] === 'object')) return false
  return true
}

/**
 * An explain record as stored. Each field decision leaves out its `field` (the key says it) and the
 * side values that are the decided value itself (listed under `=`); members every decision of the
 * record has with the same value (typically outcome, rule, `=`, versions) are stored once, under
 * `common`. Most decisions take one side's value, so each value is stored once instead of two or three
 * times. `decodeExplain` restores the record exactly.
 */
export function encodeExplain(record: ExplainRecord): string {
  const fields: Record<string, unknown> = {}
  const decisions: Array<Record<string, unknown>> = []
  for (const name in record.fields) {
    const decision = record.fields[name]
    if (!isPlainObject(decision)) {
      fields[name] = decision
      continue
    }
    const value = decision.value
    const stored: Record<string, unknown> = {}
    let same: string[] | undefined
    for (const key in decision) {
      const member = decision[key]
      if (key === 'field' || member === undefined) continue
      if (member === value && key !== 'value' && (key === 'base' || key === 'crm' || key === 'mailbox')) (same ??= []).push(key)
      else stored[key] = member
    }
    if (same) stored[SAME_AS_VALUE] = same
    fields[name] = stored
    decisions.push(stored)
  }
  let common: Record<string, unknown> | undefined
  if (decisions.length > 1) {
    const first = decisions[0]!
    for (const key in first) {
      if (key === 'value' || key === 'base' || key === 'crm' || key === 'mailbox') continue
      const member = first[key]
      let shared = true
      for (let i = 1; i < decisions.length && shared; i++) shared = sameMember(decisions[i]![key], member)
      if (shared) (common ??= {})[key] = member
    }
  }
  if (!common) return JSON.stringify({ at: record.at, fields })
  for (const name in fields) if (isPlainObject(fields[name])) fields[name] = withoutMembersOf(fields[name], common)
  return JSON.stringify({ at: record.at, common, fields })
}

/** A copy of `decision` without the members `common` has. */
function withoutMembersOf(decision: Record<string, unknown>, common: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const key in decision) if (!(key in common)) out[key] = decision[key]
  return out
}

/** Reads a stored explain record (either form: encoded, or full decisions as older stores wrote them). */
export function decodeExplain(raw: string): ExplainRecord {
  const stored = JSON.parse(raw) as ExplainRecord & { common?: Record<string, unknown> }
  const common = stored.common
  const fields: Record<string, unknown> = {}
  for (const name in stored.fields) {
    const decision = stored.fields[name]
    if (!isPlainObject(decision)) {
      fields[name] = decision
      continue
    }
    const same = SAME_AS_VALUE in decision ? decision[SAME_AS_VALUE] : common?.[SAME_AS_VALUE]
    if (!Array.isArray(same)) {
      fields[name] = { field: name, ...common, ...decision }
      continue
    }
    // `{ field, ...common, ...decision }` without the `=` member, copied member by member: deleting
    // it afterwards would turn every decision into a slow dictionary-mode object.
    const d: Record<string, unknown> = { field: name }
    if (common) for (const key in common) if (key !== SAME_AS_VALUE) d[key] = common[key]
    for (const key in decision) if (key !== SAME_AS_VALUE) d[key] = decision[key]
    for (const side of same) if (typeof side === 'string' && side !== SAME_AS_VALUE) d[side] = d.value
    fields[name] = d
  }
  return { at: stored.at, fields }
}

/**
 * An outbox entry as stored. A create or an update usually agrees exactly the fields it writes: then
 * `agreed` is left out and `agreedAsOp` says to read it from the op (each value stored once).
 */
export function encodeOutboxEntry(entry: OutboxEntry): string {
  const op = entry.op
  if (op.type === 'delete' || entry.agreed !== op.fields) return JSON.stringify(entry)
  const { agreed: _agreed, ...rest } = entry
  ;(rest as Record<string, unknown>).agreedAsOp = true // the copy is ours: no second one
  return JSON.stringify(rest)
}

/** Reads a stored outbox entry (either form). */
export function decodeOutboxEntry(raw: string): OutboxEntry {
  const stored = JSON.parse(raw) as OutboxEntry & { agreedAsOp?: boolean }
  if (!stored.agreedAsOp) return stored
  const { agreedAsOp: _flag, ...entry } = stored
  ;(entry as OutboxEntry).agreed = entry.op.type === 'delete' ? {} : { ...entry.op.fields } // the copy is ours: no second one
  return entry as OutboxEntry
}
