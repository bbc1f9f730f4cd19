import { MemoryLevel } from 'memory-level'
import { ReplicaStore, type ReplicaStoreOptions, type StoreDatabase } from './replica-store.js'

const newMemoryDatabase = () => new MemoryLevel<string, string>({ keyEncoding: 'utf8', valueEncoding: 'utf8', storeEncoding: 'utf8' }) as unknown as StoreDatabase

/** A store on an in-memory database (unit tests, the simulator's fast paths, browsers without IndexedDB). */
export async function openMemoryStore(options: ReplicaStoreOptions = {}): Promise<{ store: ReplicaStore; db: StoreDatabase }> {
  const db = newMemoryDatabase()
  return { store: await ReplicaStore.open(db, options), db }
}

/**
 * A store on an in-memory copy of every entry of `source` (e.g. the database of a store closed with
 * `closeKeepingCaches`, reopened), typically resumed with `options.resumeCaches`.
 */
export async function openMemoryStoreCopy(source: StoreDatabase, options: ReplicaStoreOptions = {}): Promise<{ store: ReplicaStore; db: StoreDatabase }> {
  if (source.status !== 'open') await source.open()
  const db = newMemoryDatabase()
  await db.open()
  const iterator = source.iterator()
  try {
    for (let chunk = await iterator.nextv(4096); chunk.length > 0; chunk = await iterator.nextv(4096)) {
      const batch = db.batch()
      for (const [key, value] of chunk) batch.put(String(key), value)
      await batch.write()
    }
  } finally {
    await iterator.close()
  }
  return { store: await ReplicaStore.open(db, options), db }
}
