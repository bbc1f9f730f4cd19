/**
 * One user's CRM replica, read from the organization feed: the records the user's sync filters select
 * (plus every record this mailbox already holds, so edits, deletes and records leaving a filter are
 * seen), with the fields the user may not read left out (unknown, never cleared), and records owned by
 * someone else checked for the user's read access. Writes go to the CRM as the user (impersonated), so
 * CRM security applies to them exactly as before.
 */
import type { CrmAdapter, OwnerMasks } from '@concord/adapter-crm'
import {
  type ConcordId, type Cursor, type Fields, type ItemKind, type LogEntry, type MergeUser, type NativeId, type PullOptions, type PullPage, type PushOp, type PushOptions, type PushResult,
  type RemoteChange, type ReplicaAdapter, type ReplicaId, type ReplicaStore, type SyncFilterSet, CursorExpiredError, concordIdFor, matchesSyncFilters,
} from '@concord/engine'
import type { CrmOrgFeed } from './org-feed.js'

export interface UserFeedViewOptions {
  feed: CrmOrgFeed
  /** The user's impersonated CRM adapter: writes, deletes checks, record access. */
  user: CrmAdapter
  /** The mailbox's own store (to know which records this replica already holds). */
  store: ReplicaStore
  kinds: readonly ItemKind[]
  /** The mailbox owner (id = systemuserid) and their addresses. */
  owner: MergeUser
  masks: () => Promise<OwnerMasks>
  filters: () => SyncFilterSet
}

const CURSOR_PREFIX = 'feed:'

function seqOf(cursor: Cursor | null): number {
  if (cursor === null) return 0
  const s = String(cursor)
  const n = s.startsWith(CURSOR_PREFIX) ? Number(s.slice(CURSOR_PREFIX.length)) : NaN
  if (!Number.isSafeInteger(n) || n < 0) throw new CursorExpiredError(`not a CRM feed cursor: ${s.slice(0, 40)}`)
  return n
}

export class UserFeedView implements ReplicaAdapter {
  readonly replicaId: ReplicaId

  constructor(private readonly o: UserFeedViewOptions) {
    this.replicaId = o.user.replicaId
  }

  async pull(cursor: Cursor | null, options: PullOptions): Promise<PullPage> {
    const after = seqOf(cursor)
    await this.o.feed.refresh({ signal: options.signal })
    const head = await this.o.feed.headSeq()
    if (after > head) throw new CursorExpiredError(`the CRM feed restarted (cursor ${after} > head ${head})`)
    const limit = Math.max(1, options.limit ?? 200)
    // Read ahead in bigger batches: most of the organization's entries are not this user's.
    const batch = await this.o.feed.readLog(after, Math.max(limit * 4, 200))
    const masks = await this.o.masks()
    const changes: RemoteChange[] = []
    let last = after
    const held = await this.o.store.getSnapshots(this.replicaId, batch.map((e) => e.nativeId))
    for (const [i, entry] of batch.entries()) {
      last = entry.seq
      const change = await this.viewOf(entry, held[i] !== undefined, masks)
      if (change) changes.push(change)
      if (changes.length >= limit) break
    }
    return { changes, nextCursor: `${CURSOR_PREFIX}${last}` as Cursor, hasMore: last < head }
  }

  private async viewOf(entry: LogEntry, held: boolean, masks: OwnerMasks): Promise<RemoteChange | undefined> {
    if (!this.o.kinds.includes(entry.kind)) return undefined
    if (entry.type === 'delete') return held ? { type: 'delete', nativeId: entry.nativeId, provenance: entry.provenance ?? 'user-deleted' } : undefined
    const meta = entry.meta ?? {}
    const userId = this.o.owner.id
    const owned = meta.ownerId === userId
    if (!held) {
      // CRM emails reach a mailbox only by being sent (outgoing email); a CRM email is synced with a
      // mailbox only when it came from that mailbox (tracked there).
      if (entry.kind === 'email') return undefined
      if (!matchesSyncFilters(this.o.filters(), { kind: entry.kind, fields: entry.fields ?? {}, meta, user: this.o.owner })) return undefined
    }
    if (!owned && !(await this.o.user.checkRecordAccess(entry.nativeId)).mayRead) {
      // Lost or never had access: a held record leaves this replica; an unheld one is not shown.
      return held ? { type: 'delete', nativeId: entry.nativeId, provenance: 'lost-access' } : undefined
    }
    const fields: Fields = {}
    const secured = masks.fields[entry.kind as keyof OwnerMasks['fields']] ?? {}
    for (const [name, value] of Object.entries(entry.fields ?? {})) if (secured[name]?.read !== false) fields[name] = value
    const stamped = entry.concordId !== concordIdFor(this.o.feed.replicaId, entry.nativeId) ? (entry.concordId as ConcordId) : undefined
    return {
      type: 'upsert',
      nativeId: entry.nativeId,
      kind: entry.kind,
      version: entry.version!,
      fields,
      ...(stamped ? { concordId: stamped } : {}),
      ...(entry.modifiedAt !== undefined ? { modifiedAt: entry.modifiedAt } : {}),
      meta,
    }
  }

  push(ops: readonly PushOp[], options?: PushOptions): Promise<PushResult> {
    return this.o.user.push(ops, options)
  }

  confirmMissing(nativeIds: readonly NativeId[], options?: PushOptions): Promise<NativeId[]> {
    return this.o.user.confirmMissing(nativeIds, options)
  }

  async close(): Promise<void> {}
}
