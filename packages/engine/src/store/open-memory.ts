import { MemoryLevel } from 'memory-level'
import { ReplicaStore, type ReplicaStoreOptions, type StoreDatabase } from './replica-store.js'

/** A store on an in-memory database (unit tests, the simulator's fast paths, browsers without IndexedDB). */
export async function openMemoryStore(options: ReplicaStoreOptions = {}): Promise<{ store: ReplicaStore; db: StoreDatabase }> {
  const db = new MemoryLevel<string, string>({ keyEncoding: 'utf8', valueEncoding: 'utf8', storeEncoding: 'utf8' }) as unknown as StoreDatabase
  return { store: await ReplicaStore.open(db, options), db }
}
