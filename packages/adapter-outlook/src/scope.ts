/**
 * The sync scope of a user's Outlook client pair: the item kinds the client replica syncs. The server
 * decides it (e.g. without e-mail while the user's incoming e-mail is delivered by server-side sync,
 * so two paths never track the same message, protocols.md §5.1, §5.8) and applies it on both sides of
 * the pair with `ScopedReplica`. Leaving the scope is never a deletion: records of a kind outside it
 * are neither listed nor confirmed missing, and stay linked for when the kind comes back.
 */
import {
  type Cursor,
  CursorExpiredError,
  type ItemKind,
  ItemKinds,
  type NativeId,
  type PullOptions,
  type PullPage,
  type PushOp,
  type PushOptions,
  type PushResult,
  type RemoteChange,
  type ReplicaAdapter,
  type ReplicaId,
  type ReplicaStore,
  SyncError,
  asCursor,
} from '@concord/engine'
import { OutlookProtocolError } from './errors.js'

/** Every item kind: the scope of a client whose server syncs nothing server-side. */
export const ALL_KINDS: readonly ItemKind[] = ItemKinds

/** The kinds in canonical order (`ItemKinds`), without repeats. */
export function normalizeKinds(kinds: Iterable<ItemKind>): ItemKind[] {
  const set = new Set(kinds)
  return ALL_KINDS.filter((k) => set.has(k))
}

export function sameKinds(a: readonly ItemKind[], b: readonly ItemKind[]): boolean {
  return normalizeKinds(a).join(',') === normalizeKinds(b).join(',')
}

/** `PullOptions` plus the scope, for adapters that can list only some kinds (the Outlook client). */
export interface ScopedPullOptions extends PullOptions {
  kinds?: readonly ItemKind[] | undefined
}

const TAG = 'sk1:'

/** The engine-side cursor: the scope it was made for, then the inner adapter's cursor. */
function tagCursor(kinds: readonly ItemKind[], inner: Cursor): Cursor {
  return asCursor(`${TAG}${kinds.join(',')}|${inner}`)
}

/** A cursor without a tag predates scopes: it was made for every kind. */
function splitCursor(cursor: Cursor): { kinds: ItemKind[]; inner: Cursor } {
  const raw = String(cursor)
  if (!raw.startsWith(TAG)) return { kinds: [...ALL_KINDS], inner: cursor }
  const bar = raw.indexOf('|')
  if (bar < 0) throw new CursorExpiredError('scoped cursor without an inner cursor; a full listing is required')
  const names = raw.slice(TAG.length, bar).split(',').filter((k) => k.length > 0)
  const known = new Set<string>(ALL_KINDS)
  if (names.some((k) => !known.has(k))) throw new CursorExpiredError('scoped cursor names an unknown kind; a full listing is required')
  return { kinds: names as ItemKind[], inner: asCursor(raw.slice(bar + 1)) }
}

export interface ScopedReplicaOptions {
  inner: ReplicaAdapter
  /** The kinds synced now. */
  kinds: readonly ItemKind[]
  /** The pair's store: the kind of a record a delete or a missing check names (by its native id). */
  store: ReplicaStore
  /**
   * What a pulled change of another kind means: `drop` (a replica that lists every kind, e.g. the
   * CRM scope) skips it; `refuse` (the Outlook client, which was told the scope) fails the pull with
   * `out_of_scope` before anything of the page is applied.
   */
  outside: 'drop' | 'refuse'
}

/**
 * A replica restricted to a sync scope:
 * - `pull` asks the inner replica for the scope (`ScopedPullOptions.kinds`) and drops or refuses
 *   changes of other kinds (a delete's kind is the one the store knows for its native id);
 * - when a kind came (back) into the scope since the stored cursor was made, the cursor is expired
 *   (`CursorExpiredError`), so the engine lists the replica in full once and picks up what was
 *   skipped while the kind was out;
 * - `confirmMissing` is never asked about, and never reports, a record of a kind outside the scope:
 *   absence from a scoped listing is not a deletion;
 * - `push` is passed through (the engine only plans pushes from changes it pulled).
 */
export class ScopedReplica implements ReplicaAdapter {
  readonly replicaId: ReplicaId
  readonly kinds: readonly ItemKind[]
  private readonly inScope: ReadonlySet<ItemKind>

  constructor(private readonly options: ScopedReplicaOptions) {
    this.replicaId = options.inner.replicaId
    this.kinds = normalizeKinds(options.kinds)
    this.inScope = new Set(this.kinds)
  }

  async pull(cursor: Cursor | null, options: PullOptions): Promise<PullPage> {
    let inner: Cursor | null = null
    if (cursor !== null) {
      const split = splitCursor(cursor)
      const grown = this.kinds.filter((k) => !split.kinds.includes(k))
      if (grown.length > 0) throw new CursorExpiredError(`the sync scope of ${this.replicaId} now includes ${grown.join(', ')}; a full listing is required`)
      inner = split.inner
    }
    const scoped: ScopedPullOptions = { ...options, kinds: this.kinds }
    const page = await this.options.inner.pull(inner, scoped)
    const deletes = page.changes.filter((c) => c.type === 'delete').map((c) => c.nativeId)
    const snapshots = deletes.length > 0 ? await this.options.store.getSnapshots(this.replicaId, deletes) : []
    const deleteKinds = new Map<NativeId, ItemKind | undefined>(deletes.map((id, i) => [id, snapshots[i]?.kind]))
    const changes: RemoteChange[] = []
    for (const change of page.changes) {
      const kind = change.type === 'upsert' ? change.kind : deleteKinds.get(change.nativeId)
      if (kind === undefined || this.inScope.has(kind)) {
        changes.push(change)
        continue
      }
      if (this.options.outside === 'refuse') {
        const message = `${this.replicaId} sent a ${change.type} of a ${kind} (${change.nativeId}), but it syncs only ${this.kinds.join(', ') || 'nothing'}: the server syncs ${kind} items of this user itself; nothing of this page was applied (Track / Set Regarding still work)`
        throw new SyncError('Forbidden', message, {}, { cause: new OutlookProtocolError('out_of_scope', message) })
      }
    }
    return { ...page, changes, nextCursor: tagCursor(this.kinds, page.nextCursor) }
  }

  push(ops: readonly PushOp[], options?: PushOptions): Promise<PushResult> {
    return this.options.inner.push(ops, options)
  }

  async confirmMissing(nativeIds: readonly NativeId[], options?: PushOptions): Promise<NativeId[]> {
    const confirm = this.options.inner.confirmMissing?.bind(this.options.inner)
    if (!confirm || nativeIds.length === 0) return []
    const snapshots = await this.options.store.getSnapshots(this.replicaId, nativeIds)
    const asked = nativeIds.filter((_, i) => {
      const kind = snapshots[i]?.kind
      return kind === undefined || this.inScope.has(kind)
    })
    return asked.length === 0 ? [] : confirm(asked, options)
  }

  close(): Promise<void> {
    return this.options.inner.close?.() ?? Promise.resolve()
  }
}
