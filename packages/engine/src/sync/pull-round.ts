/**
 * Pulls one replica to the end of its round into the store: follows pages until the adapter says there
 * is no more, turns a stale cursor into one full listing, and after a full listing deletes the records
 * it did not list only once the remote confirms they are gone. Used by `SyncPair` for both sides and by
 * anything else that keeps a replica's log (e.g. a server's organization-wide CRM feed).
 */
import type { ReplicaAdapter } from '../contract/replica-adapter.js'
import { CursorExpiredError, SyncError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { ReplicaStore } from '../store/replica-store.js'

export interface PullRoundOptions {
  pageLimit: number
  maxPages: number
  logger: Logger
  signal?: AbortSignal | undefined
  /** Fields added to the "cursor expired" warning (e.g. which side of a pair). */
  logContext?: Record<string, unknown> | undefined
}

export interface PullRoundResult {
  /** Changes the adapter reported. */
  pulled: number
  /** Records that really changed and went into the log (confirmed deletes included). */
  logged: number
  /** The cursor had expired and the round became a full listing. */
  resynced: boolean
}

export async function pullRound(store: ReplicaStore, adapter: ReplicaAdapter, o: PullRoundOptions): Promise<PullRoundResult> {
  const result: PullRoundResult = { pulled: 0, logged: 0, resynced: false }
  let cursor = await store.getCursor(adapter.replicaId)
  for (let pages = 0; pages < o.maxPages; pages++) {
    o.signal?.throwIfAborted()
    let page
    try {
      page = await adapter.pull(cursor, { limit: o.pageLimit, signal: o.signal })
    } catch (error) {
      if (error instanceof CursorExpiredError && cursor !== null && !result.resynced) {
        o.logger.warn({ replicaId: adapter.replicaId, ...o.logContext }, 'cursor expired; resyncing from a full listing')
        result.resynced = true
        await store.resetCursor(adapter.replicaId)
        cursor = null
        continue
      }
      throw error
    }
    const applied = await store.applyPulledPage(adapter.replicaId, page)
    result.pulled += page.changes.length
    result.logged += applied.logged
    cursor = page.nextCursor
    if (!page.hasMore) {
      result.logged += await confirmUnlisted(store, adapter, o)
      return result
    }
  }
  throw new SyncError('InvalidRemoteData', `Replica ${adapter.replicaId} returned more than ${o.maxPages} pages in one round`)
}

/** After a full listing: records we knew that it did not contain are deleted only if the remote confirms. */
async function confirmUnlisted(store: ReplicaStore, adapter: ReplicaAdapter, o: PullRoundOptions): Promise<number> {
  const unlisted = await store.unlistedAfterFullListing(adapter.replicaId)
  if (unlisted === undefined) return 0 // no completed listing awaiting its check
  if (unlisted.length > 0 && !adapter.confirmMissing) {
    o.logger.warn({ replicaId: adapter.replicaId, unlisted: unlisted.length }, 'records missing from a full listing; the adapter cannot confirm deletes, so they stay linked')
  }
  // Recorded even when nothing is missing, so the listing is not checked again. A throttle here leaves it unconfirmed; the next round asks again.
  const gone = unlisted.length > 0 && adapter.confirmMissing ? await adapter.confirmMissing(unlisted, { signal: o.signal }) : []
  return store.recordConfirmedMissing(adapter.replicaId, gone)
}
