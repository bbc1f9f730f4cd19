import type { NativeId, ReplicaId } from '../ids.js'
import type { ReplicaStore } from '../store/replica-store.js'
import type { Snapshot } from '../store/records.js'

/**
 * The snapshots one merge has read, so that a second look at the same record (metadata for the merge
 * context, then the version for If-Match) costs no second read. Lives for one merge: nothing writes
 * snapshots between its reads. Callers only read the snapshots.
 */
export class SnapshotsRead {
  private readonly seen = new Map<string, Snapshot | undefined>()

  constructor(private readonly store: ReplicaStore) {}

  /** Snapshots of `nativeIds` on `replicaId`, in order; undefined where none is stored. */
  async get(replicaId: ReplicaId, nativeIds: readonly NativeId[]): Promise<Array<Snapshot | undefined>> {
    if (nativeIds.length === 0) return []
    const out = new Array<Snapshot | undefined>(nativeIds.length)
    let unread: number[] | undefined
    for (let i = 0; i < nativeIds.length; i++) {
      const key = `${replicaId}\u0000${nativeIds[i]!}`
      if (this.seen.has(key)) out[i] = this.seen.get(key)
      else (unread ??= []).push(i)
    }
    if (unread) {
      const read = await this.store.getSnapshots(
        replicaId,
        unread.map((i) => nativeIds[i]!),
      )
      unread.forEach((i, k) => {
        out[i] = read[k]
        this.seen.set(`${replicaId}\u0000${nativeIds[i]!}`, read[k])
      })
    }
    return out
  }
}
