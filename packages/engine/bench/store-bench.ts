import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { openLevelStore } from '../src/node/index.js'
import type { PullPage, RemoteUpsert } from '../src/contract/replica-adapter.js'
import { asCursor, asNativeId, asReplicaId, asVersion } from '../src/ids.js'

const replica = asReplicaId('bench')

/** ~200-byte canonical contact, as a log entry carries it. */
function record(i: number, version: number): RemoteUpsert {
  return {
    type: 'upsert',
    nativeId: asNativeId(`AAMkAGI2TG93AAA=${i.toString(36).padStart(8, '0')}`),
    kind: 'contact',
    version: asVersion(`W/"CQAAABYAAAD${version}"`),
    fields: { givenName: `Given${i}`, surname: `Surname${version}`, email1: `p${i}@fabrikam.test`, jobTitle: 'Buyer', businessPhone: `+49 30 ${i}` },
  }
}

function pages(count: number, pageSize: number, version: number, offset = 0): PullPage[] {
  const out: PullPage[] = []
  for (let start = 0; start < count; start += pageSize) {
    const changes = []
    for (let i = start; i < Math.min(count, start + pageSize); i++) changes.push(record(offset + i, version))
    out.push({ changes, nextCursor: asCursor(`c${version}-${start}`), hasMore: false })
  }
  return out
}

async function withStore<T>(durable: boolean, fn: (store: Awaited<ReturnType<typeof openLevelStore>>['store']) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'concord-bench-'))
  const { store } = await openLevelStore(dir, { durable })
  try {
    return await fn(store)
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

async function countTracked(store: { listSnapshots(r: typeof replica): Promise<unknown[]> }): Promise<number> {
  return (await store.listSnapshots(replica)).length
}

function gc() {
  ;(globalThis as { gc?: () => void }).gc?.()
}

/**
 * Change-log figures of the replica store on LevelDB (classic-level):
 * - logAppendPerSec: records/s through `applyPulledPage` (the real path: snapshot lookups, change
 *   detection, log + snapshot + link + cursor in one batch), pages of 500 changed records;
 * - logAppendDurablePerSec: the same with fsync per batch;
 * - replayScanPerSec: log entries/s read back with `readLog` (iterator nextv);
 * - bytesPerTrackedRecord: resident memory (process RSS growth) per tracked record between 50k and 100k
 *   records, every record touched; heapBytesPerTrackedRecord: the JS heap + external part (the engine keeps
 *   records on disk, so this is ~0).
 */
export async function runStoreBench(options: { records?: number } = {}): Promise<Record<string, number>> {
  const n = options.records ?? 100_000
  const results: Record<string, number> = {}

  // First, while the process is fresh: later phases leave freed memory that would hide the growth.
  await withStore(false, async (store) => {
    // Resident cost of tracking records: growth of the JS heap + external memory (what the engine
    // keeps per record) after writing them and touching every one, and of the process RSS (which adds
    // LevelDB's caches and allocator slack). Pages are generated lazily so the input is not counted.
    // Marginal cost: memory at n/2 records against memory at n records, so that one-off costs
    // (compiled code, caches filling up) are not charged to the records.
    const half = Math.floor(n / 2)
    const measure = async (upto: number, from: number) => {
      for (let start = from; start < upto; start += 500) await store.applyPulledPage(replica, pages(Math.min(500, upto - start), 500, 1, start)[0]!)
      const touched = await countTracked(store) // a separate frame, so the listing is garbage at the GC
      gc()
      gc()
      return { touched, usage: process.memoryUsage() }
    }
    const first = await measure(half, 0)
    const second = await measure(n, half)
    const records = second.touched - first.touched
    results.bytesPerTrackedRecord = Math.max(0, Math.round((second.usage.rss - first.usage.rss) / records))
    results.heapBytesPerTrackedRecord = Math.max(0, Math.round((second.usage.heapUsed + second.usage.external - first.usage.heapUsed - first.usage.external) / records))
  })

  await withStore(false, async (store) => {
    for (const page of pages(n, 500, 1)) await store.applyPulledPage(replica, page) // create (links)
    const update = pages(n, 500, 2)
    const t0 = performance.now()
    for (const page of update) await store.applyPulledPage(replica, page)
    results.logAppendPerSec = Math.round(n / ((performance.now() - t0) / 1000))

    const t1 = performance.now()
    const entries = await store.readLog(replica, 0)
    results.replayScanPerSec = Math.round(entries.length / ((performance.now() - t1) / 1000))
  })

  await withStore(true, async (store) => {
    const count = Math.min(n, 50_000)
    for (const page of pages(count, 500, 1)) await store.applyPulledPage(replica, page)
    const t0 = performance.now()
    for (const page of pages(count, 500, 2)) await store.applyPulledPage(replica, page)
    results.logAppendDurablePerSec = Math.round(count / ((performance.now() - t0) / 1000))
  })

  return results
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(await runStoreBench())
}
