import type { PullPage, RemoteChange, ReplicaAdapter } from '../contract/replica-adapter.js'
import type { Cursor, NativeId } from '../ids.js'

/** Pulls to the end of the round, following pages. */
export async function pullAll(adapter: ReplicaAdapter, cursor: Cursor | null, limit = 50): Promise<{ changes: RemoteChange[]; cursor: Cursor; pages: PullPage[] }> {
  const changes: RemoteChange[] = []
  const pages: PullPage[] = []
  let current = cursor
  for (let i = 0; i < 10_000; i++) {
    const page = await adapter.pull(current, { limit })
    pages.push(page)
    changes.push(...page.changes)
    current = page.nextCursor
    if (!page.hasMore) return { changes, cursor: page.nextCursor, pages }
  }
  throw new Error('pullAll: more than 10,000 pages')
}

/** The newest state of each record in a list of changes (duplicates and reordering resolved). */
export function latestByNativeId(changes: readonly RemoteChange[]): Map<NativeId, RemoteChange> {
  const out = new Map<NativeId, RemoteChange>()
  for (const change of changes) out.set(change.nativeId, change)
  return out
}

