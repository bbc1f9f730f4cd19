import { ClassicLevel } from 'classic-level'
import { ReplicaStore, type ReplicaStoreOptions, type StoreDatabase } from '../store/replica-store.js'

/** Node only: a store on LevelDB in `dir` (created if missing). */
export async function openLevelStore(dir: string, options: ReplicaStoreOptions = {}): Promise<{ store: ReplicaStore; db: StoreDatabase }> {
  const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' }) as unknown as StoreDatabase
  await db.open()
  return { store: await ReplicaStore.open(db, options), db }
}
