import { MemoryLevel } from 'memory-level'
import { type LocalDatabase, OutlookLocalReplica, type OutlookLocalReplicaOptions } from './local-replica.js'

const encodings = { keyEncoding: 'utf8', valueEncoding: 'utf8' } as const

/** A local replica in memory (tests, demos, browsers without IndexedDB). Lost on exit. */
export async function openMemoryLocalReplica(options: OutlookLocalReplicaOptions = {}): Promise<OutlookLocalReplica> {
  const db = new MemoryLevel<string, string>({ ...encodings, storeEncoding: 'utf8' }) as unknown as LocalDatabase
  return OutlookLocalReplica.open(db, options)
}

/** A local replica in a LevelDB directory (Node: the Outlook desktop companion, tests). */
export async function openClassicLocalReplica(location: string, options: OutlookLocalReplicaOptions = {}): Promise<OutlookLocalReplica> {
  const { ClassicLevel } = await import('classic-level')
  const db = new ClassicLevel<string, string>(location, encodings) as unknown as LocalDatabase
  return OutlookLocalReplica.open(db, options)
}

/** A local replica in IndexedDB (the Outlook add-in in a browser). */
export async function openBrowserLocalReplica(name: string, options: OutlookLocalReplicaOptions = {}): Promise<OutlookLocalReplica> {
  const { BrowserLevel } = await import('browser-level')
  const db = new BrowserLevel<string, string>(name, encodings) as unknown as LocalDatabase
  return OutlookLocalReplica.open(db, options)
}
