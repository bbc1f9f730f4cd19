import type { DeleteProvenance, PushOp, RecordMeta } from '../contract/replica-adapter.js'
import type { ConcordId, NativeId, OpId, PairId, ReplicaId, Version } from '../ids.js'
import type { Fields, ItemKind } from '../model/item.js'

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
  /** The full listing that last contained this record (see `ReplicaStore.applyPulledPage`). */
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
  const next: BaseRecord = base ? { ...base, fields: { ...base.fields }, fieldVersions: { ...base.fieldVersions }, versions: { ...base.versions } } : { kind, fields: {}, fieldVersions: {}, versions: {} }
  for (const [name, value] of Object.entries(agreed)) {
    next.fields[name] = value
    next.fieldVersions[name] = (next.fieldVersions[name] ?? 0) + 1
  }
  return next
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
