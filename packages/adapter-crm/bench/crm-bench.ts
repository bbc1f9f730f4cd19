/**
 * CRM adapter benchmark against the Dataverse emulator over HTTP (127.0.0.1).
 * - crmPullRowsPerSec: 10,000 contacts seeded through the emulator, read by change tracking
 *   (odata.maxpagesize=5000, nextLink paging) and mapped to canonical fields.
 * - crmBatchWritesPerSec: 1,000 creates then 1,000 updates pushed through `$batch` change sets.
 * Run: npx tsx packages/adapter-crm/bench/crm-bench.ts
 */
import { pathToFileURL } from 'node:url'
import { asConcordId, asOpId, type NativeId, type PushOp } from '@concord/engine'
import { startCrmWorld } from '../test/harness.js'

export async function runCrmBench(): Promise<Record<string, number>> {
  const w = await startCrmWorld({ kinds: ['contact'], batchSize: 500 })
  try {
    const rows = 10_000
    const records = Array.from({ length: rows }, (_, i) => ({ firstname: `First${i}`, lastname: `Last${i}`, emailaddress1: `bench${i}@example.test`, telephone1: `+1 555 ${i}`, jobtitle: 'Buyer', address1_city: 'Springfield' }))
    for (const r of records) w.emu.admin.createRecord('contacts', r, w.alice.systemuserid)
    await w.adapter.getOwnerMasks() // token + masks outside the timed part

    let t0 = performance.now()
    let cursor = null
    let pulled = 0
    for (let i = 0; i < 1000; i++) {
      const page = await w.adapter.pull(cursor, { limit: 5000 })
      pulled += page.changes.length
      cursor = page.nextCursor
      if (!page.hasMore) break
    }
    const pullSec = (performance.now() - t0) / 1000
    if (pulled !== rows) throw new Error(`bench pulled ${pulled} rows, expected ${rows}`)

    const n = 1000
    const creates: PushOp[] = Array.from({ length: n }, (_, i) => ({ opId: asOpId(`bc-${i}`), type: 'create', concordId: asConcordId(`bench-${i}`), kind: 'contact', fields: { givenName: `New${i}`, surname: 'Bench', email1: `new${i}@example.test` } }))
    t0 = performance.now()
    const created = await w.adapter.push(creates)
    const ids = created.applied.map((a) => ({ nativeId: a.nativeId as NativeId, version: a.version }))
    const updates: PushOp[] = ids.map((r, i) => ({ opId: asOpId(`bu-${i}`), type: 'update', concordId: asConcordId(`bench-${i}`), kind: 'contact', nativeId: r.nativeId, ifMatch: r.version, fields: { jobTitle: `Updated ${i}` } }))
    const updated = await w.adapter.push(updates)
    const writeSec = (performance.now() - t0) / 1000
    const ok = created.applied.length + updated.applied.length
    if (ok !== 2 * n) throw new Error(`bench: ${created.rejected.length + updated.rejected.length} writes rejected`)

    return { crmPullRowsPerSec: Math.round(rows / pullSec), crmBatchWritesPerSec: Math.round(ok / writeSec) }
  } finally {
    await w.close()
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runCrmBench()
  console.log(JSON.stringify(result, null, 2))
}
