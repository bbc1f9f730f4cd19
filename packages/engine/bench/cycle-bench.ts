import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { openLevelStore } from '../src/node/index.js'
import { openMemoryStore } from '../src/store/open-memory.js'
import type { ReplicaStore } from '../src/store/replica-store.js'
import { type NativeId, asPairId, asReplicaId } from '../src/ids.js'
import type { ItemKind } from '../src/model/item.js'
import { SyncPair } from '../src/sync/sync-pair.js'
import { MemoryRemote, MemoryReplicaAdapter } from '../src/testing/memory-replica.js'
import { sampleFields } from '../src/testing/sample-fields.js'

const KINDS: readonly ItemKind[] = ['email', 'email', 'appointment', 'contact', 'task']

interface Mailbox {
  crm: MemoryRemote
  mailbox: MemoryRemote
  pair: SyncPair
  items: NativeId[]
}

/** `pairs` mailboxes (a CRM and a mailbox each, in memory) synced through one store, as a sync server runs them. */
function mailboxes(store: ReplicaStore, pairs: number, clock: () => number): Mailbox[] {
  return Array.from({ length: pairs }, (_, i) => {
    const crm = new MemoryRemote(`crm${i}`, clock)
    const mailbox = new MemoryRemote(`mbx${i}`, clock)
    const pair = new SyncPair({
      pairId: asPairId(`pair-${i}`),
      store,
      crm: new MemoryReplicaAdapter(asReplicaId(`crm-${i}`), crm),
      mailbox: new MemoryReplicaAdapter(asReplicaId(`mbx-${i}`), mailbox),
      pageLimit: 50,
      now: clock,
    })
    return { crm, mailbox, pair, items: [] }
  })
}

/**
 * Whole sync cycles through `SyncPair` (pull, change log, merge, push, acknowledgement, and the echo
 * of the push pulled back), the engine's cost per item as a server or the simulator pays it:
 * - cycleBulkItemsPerSec: items per second when a cycle carries many (each of 100 mailboxes gets
 *   200 new items, then 200 edits, on the mailbox side);
 * - cycleSingleChangePerSec: changes per second when every cycle carries one (an edit, its cycle and
 *   the next cycle that sees the echo) — the common case of frequent polling;
 * - cycleSingleChangePerSecMemory: the same on memory-level, which leaves out LevelDB's share.
 * The store is LevelDB with group commit (as the sync server and the simulator open it).
 */
export async function runCycleBench(options: { pairs?: number; itemsPerPair?: number; rounds?: number } = {}): Promise<Record<string, number>> {
  const pairs = options.pairs ?? 100
  const perPair = options.itemsPerPair ?? 200
  const rounds = Math.min(perPair, options.rounds ?? 40)
  const results: Record<string, number> = {}
  for (const backend of ['leveldb', 'memory'] as const) {
    const dir = backend === 'leveldb' ? mkdtempSync(join(tmpdir(), 'concord-cycle-bench-')) : undefined
    const storeOptions = { groupCommit: true, cacheEntries: 400_000 }
    const store = dir ? (await openLevelStore(dir, storeOptions)).store : (await openMemoryStore(storeOptions)).store
    let now = Date.UTC(2026, 10, 2)
    const boxes = mailboxes(store, pairs, () => now)
    const syncAll = async (cyclesEach: number) => {
      for (const box of boxes) for (let i = 0; i < cyclesEach; i++) await box.pair.runCycle()
      await store.flush()
    }
    try {
      for (const box of boxes) for (let j = 0; j < perPair; j++) box.items.push(box.mailbox.create(KINDS[j % KINDS.length]!, sampleFields(KINDS[j % KINDS.length]!, j)))
      now += 60_000
      let t0 = performance.now()
      await syncAll(3)
      for (const box of boxes) for (const [j, nativeId] of box.items.entries()) box.mailbox.update(nativeId, { subject: `Edited ${j}` })
      now += 60_000
      await syncAll(3)
      const bulkSec = (performance.now() - t0) / 1000
      if (backend === 'leveldb') results.cycleBulkItemsPerSec = Math.round((2 * pairs * perPair) / bulkSec)

      t0 = performance.now()
      for (let round = 0; round < rounds; round++) {
        now += 60_000
        for (const box of boxes) {
          box.mailbox.update(box.items[round]!, { subject: `Round ${round}` })
          await box.pair.runCycle()
        }
        now += 60_000
        await syncAll(1)
      }
      const singleSec = (performance.now() - t0) / 1000
      results[backend === 'leveldb' ? 'cycleSingleChangePerSec' : 'cycleSingleChangePerSecMemory'] = Math.round((pairs * rounds) / singleSec)
      for (const box of boxes) {
        const crmCopy = box.crm.liveRecords().find((r) => r.fields.subject === `Round ${rounds - 1}`)
        if (!crmCopy) throw new Error(`cycle bench: the last edit of ${box.pair.pairId} did not reach the CRM`)
      }
    } finally {
      await store.close()
      if (dir) rmSync(dir, { recursive: true, force: true })
    }
  }
  return results
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(await runCycleBench())
}
