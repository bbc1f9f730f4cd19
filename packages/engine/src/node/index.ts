import { ClassicLevel } from 'classic-level'
import { ReplicaStore, type ReplicaStoreOptions, type StoreDatabase } from '../store/replica-store.js'

/** LevelDB settings of {@link openLevelStore}. */
export interface LevelOptions {
  /**
   * Bytes of writes LevelDB buffers in memory before it writes them out as a sorted file (LevelDB's
   * default: 4 MiB). A write-heavy store spends much of its CPU compacting those files; 64 MiB cut a
   * batch write's cost by about a third in the simulator's pattern, at the price of that much memory
   * and a longer log replay when the store opens after a crash.
   */
  writeBufferSize?: number | undefined
}

/** The LevelDB database of a store in `dir`, not opened yet. */
function levelDatabase(dir: string, level: LevelOptions): StoreDatabase {
  return new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8', ...(level.writeBufferSize !== undefined ? { writeBufferSize: level.writeBufferSize } : {}) }) as unknown as StoreDatabase
}

/** Node only: a store on LevelDB in `dir` (created if missing). */
export async function openLevelStore(dir: string, options: ReplicaStoreOptions = {}, level: LevelOptions = {}): Promise<{ store: ReplicaStore; db: StoreDatabase }> {
  const db = levelDatabase(dir, level)
  await db.open()
  return { store: await ReplicaStore.open(db, options), db }
}

/**
 * Opens and closes a closed store's LevelDB directory once, so that LevelDB replays its write-ahead log
 * into a sorted table here: copies of the directory (forks, see `closeKeepingCaches`) then open without
 * replaying it each (≈ 0.9 s for the simulator's start at 200 mailboxes). The data stays the same.
 */
export async function settleLevelStore(dir: string, level: LevelOptions = {}): Promise<void> {
  const db = levelDatabase(dir, level)
  await db.open()
  await db.close()
}
