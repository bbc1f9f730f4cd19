import type { SyncError } from '../errors.js'
import type { ConcordId, Cursor, NativeId, OpId, ReplicaId, Version } from '../ids.js'
import type { Fields, ItemKind } from '../model/item.js'

/** Why a record disappeared from a replica. Absence from a listing is never a delete by itself. */
export const DeleteProvenances = ['user-deleted', 'left-filter', 'lost-access', 'stopped-tracking', 'resync'] as const
export type DeleteProvenance = (typeof DeleteProvenances)[number]

/**
 * What a replica knows about a record beyond its canonical fields, for sync filters and tracking:
 * the CRM owner, attendees and state; on the mailbox side whether the item is tracked.
 */
export interface RecordMeta {
  ownerId?: string | undefined
  attendeeIds?: readonly string[] | undefined
  state?: string | undefined
  /** Mailbox side: tracked to the CRM (Track, Set Regarding, or the tracking category). */
  tracked?: boolean | undefined
}

/** A record as a replica reports it, mapped to canonical fields. */
export interface RemoteUpsert {
  type: 'upsert'
  nativeId: NativeId
  kind: ItemKind
  /** ETag / changeKey / row version. Changes whenever the remote record is written. */
  version: Version
  /** Canonical fields the replica can read. Absent = unknown (e.g. a secured column). */
  fields: Fields
  /** The Concord id stamped on the remote record by a previous push (extended property, alternate key). */
  concordId?: ConcordId | undefined
  /** When the remote says the record was last modified (ms since epoch), for LWW policies. */
  modifiedAt?: number | undefined
  meta?: RecordMeta | undefined
}

export interface RemoteDelete {
  type: 'delete'
  nativeId: NativeId
  provenance: DeleteProvenance
}

export type RemoteChange = RemoteUpsert | RemoteDelete

/** One page of a pull. */
export interface PullPage {
  /** Changes after the cursor, oldest first. The same record may appear more than once. */
  changes: RemoteChange[]
  /** Where the next pull continues. Stored by the engine atomically with `changes`. */
  nextCursor: Cursor
  /** True when more pages remain in this round; the engine pulls again with `nextCursor`. */
  hasMore: boolean
  /** True when this round is a full listing (first pull, or after `CursorExpiredError`). */
  fullListing?: boolean | undefined
}

/** What the engine asks a replica to do. */
export type PushOp =
  | { opId: OpId; type: 'create'; concordId: ConcordId; kind: ItemKind; fields: Fields }
  | { opId: OpId; type: 'update'; concordId: ConcordId; kind: ItemKind; nativeId: NativeId; fields: Fields; ifMatch?: Version | undefined }
  /** `nativeId` is absent when the record's id is unknown (a create that may have been applied before a crash): find it by the stamped `concordId`. */
  | { opId: OpId; type: 'delete'; concordId: ConcordId; kind: ItemKind; nativeId?: NativeId | undefined; provenance: DeleteProvenance; ifMatch?: Version | undefined }

export interface PushApplied {
  opId: OpId
  /** The record's id after the write (a create's new id; an update may move it). Absent for a delete. */
  nativeId?: NativeId | undefined
  /** The record's version after the write, so the engine recognises its own echo on the next pull. */
  version?: Version | undefined
  /** The record's canonical fields after the write, when the remote returns them. */
  fields?: Fields | undefined
}

export interface PushRejected {
  opId: OpId
  error: SyncError
}

export interface PushResult {
  applied: PushApplied[]
  rejected: PushRejected[]
}

export interface PullOptions {
  /** Soft upper bound on changes in one page. */
  limit: number
  signal?: AbortSignal | undefined
}

export interface PushOptions {
  signal?: AbortSignal | undefined
}

/**
 * One side of a sync: a CRM scope, a mailbox, an Outlook client, an IMAP account.
 *
 * Adapters translate and classify; the engine decides. An adapter never sleeps or retries: it
 * throws `ThrottledError` (429 with `Retry-After`), `CursorExpiredError` (410 / expired token),
 * `PreconditionFailedError` (412) or a `SyncError` with a code, and the engine's loop and the
 * scheduler apply one retry policy for every side. Following `@odata.nextLink` inside one pull is
 * the adapter's job.
 */
export interface ReplicaAdapter {
  readonly replicaId: ReplicaId
  /**
   * Changes strictly after `cursor` (null = a full listing from the beginning). Replaying the same
   * cursor is allowed and must return the same or newer state. Throws `CursorExpiredError` when the
   * cursor is no longer valid; the engine then pulls from null without creating duplicates or deletes.
   */
  pull(cursor: Cursor | null, options: PullOptions): Promise<PullPage>
  /**
   * Applies operations. Idempotent per `opId` and per `concordId` for creates: replaying a create
   * whose record already exists (found by the stamped Concord id) returns the existing record.
   * An update with a stale `ifMatch` is rejected with `PreconditionFailedError`; so is a delete with
   * a stale `ifMatch`. A delete of a record that is already gone counts as applied (with or without
   * `ifMatch`). Partial failure is reported per op in `rejected`.
   */
  push(ops: readonly PushOp[], options?: PushOptions): Promise<PushResult>
  /**
   * After a full listing, the engine asks about records it knew that the listing did not contain.
   * Returns the ids the remote confirms are gone (e.g. a GET answering 404). Records merely absent
   * from a listing are never deleted without this confirmation; an adapter without it leaves them.
   */
  confirmMissing?(nativeIds: readonly NativeId[], options?: PushOptions): Promise<NativeId[]>
  close?(): Promise<void>
}
