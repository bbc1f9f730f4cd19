import { stableHash } from './util/hash.js'

declare const brand: unique symbol
type Brand<T, B extends string> = T & { readonly [brand]: B }

/** Concord's own id for an item, the same on every replica. */
export type ConcordId = Brand<string, 'ConcordId'>
/** One side's store: a CRM scope, a mailbox, an Outlook client, an IMAP account. */
export type ReplicaId = Brand<string, 'ReplicaId'>
/** A record's id in its own system (Graph id, Dataverse GUID, IMAP UID…). */
export type NativeId = Brand<string, 'NativeId'>
/** Opaque resume position of a replica; only its adapter understands it. */
export type Cursor = Brand<string, 'Cursor'>
/** A replica's version of a record (ETag, changeKey, row version, modseq). */
export type Version = Brand<string, 'Version'>
/** Idempotency key of a push operation. */
export type OpId = Brand<string, 'OpId'>
/** A linked pair of replicas that sync with each other (CRM scope ⇄ mailbox). */
export type PairId = Brand<string, 'PairId'>

export const asConcordId = (s: string) => s as ConcordId
export const asReplicaId = (s: string) => s as ReplicaId
export const asNativeId = (s: string) => s as NativeId
export const asCursor = (s: string) => s as Cursor
export const asVersion = (s: string) => s as Version
export const asOpId = (s: string) => s as OpId
export const asPairId = (s: string) => s as PairId

/**
 * The Concord id that a native record gets when it is first seen. Deterministic, so that replaying
 * a pulled page after a crash links the record to the same item instead of creating a second one.
 */
export function concordIdFor(replicaId: ReplicaId, nativeId: NativeId): ConcordId {
  return `c_${stableHash(`${replicaId}\u0000${nativeId}`)}` as ConcordId
}
