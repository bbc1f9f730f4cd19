import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { asCursor, asNativeId, asReplicaId, asVersion } from '../ids.js'
import { interceptedDatabase } from '../testing/gated-database.js'
import { propConfig } from '../testing/prop-config.js'
import { openMemoryStore } from './open-memory.js'
import { ReplicaStore, type StoreDatabase } from './replica-store.js'

const replica = asReplicaId('r')
const SOAK_TIMEOUT = 30 * 60_000

/** A memory database whose batch writes and point reads each take a while (`delays` ms, in turn): reads overlap writes. */
async function slowDatabase(delays: readonly number[]): Promise<StoreDatabase> {
  const { db } = await openMemoryStore()
  let turn = 0
  const pause = () => new Promise<void>((resolve) => setTimeout(resolve, delays[turn++ % delays.length]!))
  return interceptedDatabase(db, { batchWrite: pause, getMany: pause })
}

type Step = { type: 'pull'; ids: number[] } | { type: 'flush-in-background' } | { type: 'read'; id: number; wait: boolean }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ type: fc.constant('pull' as const), ids: fc.array(fc.integer({ min: 0, max: 11 }), { minLength: 1, maxLength: 3 }) }),
  fc.record({ type: fc.constant('flush-in-background' as const) }),
  fc.record({ type: fc.constant('read' as const), id: fc.integer({ min: 0, max: 11 }), wait: fc.boolean() }),
)

describe('properties', () => {
  test('under group commit with a small cache, writes in the background and reads that skip them never serve a stale value', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 60 }), fc.integer({ min: 2, max: 24 }), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 8 }), async (steps, cacheEntries, delays) => {
        const store = await ReplicaStore.open(await slowDatabase(delays), { groupCommit: true, cacheEntries })
        const model = new Map<number, number>() // id → newest version written
        let version = 0
        const reads: Array<Promise<void>> = []
        const versionOf = async (id: number) => Number((await store.getSnapshot(replica, asNativeId(`n${id}`)))?.version ?? 0)
        for (const step of steps) {
          if (step.type === 'pull') {
            version++
            const changes = step.ids.map((id) => ({ type: 'upsert' as const, nativeId: asNativeId(`n${id}`), kind: 'task' as const, version: asVersion(String(version)), fields: { subject: `s${version}` } }))
            await store.applyPulledPage(replica, { changes, nextCursor: asCursor(`c${version}`), hasMore: false })
            for (const id of step.ids) model.set(id, version)
          } else if (step.type === 'flush-in-background') store.flushInBackground()
          else {
            const atLeast = model.get(step.id) ?? 0 // a read overlapping later writes may see them too
            const read = versionOf(step.id).then((seen) => expect(seen).toBeGreaterThanOrEqual(atLeast))
            if (step.wait) await read
            else reads.push(read)
          }
        }
        await Promise.all(reads)
        for (let id = 0; id < 12; id++) expect(await versionOf(id)).toBe(model.get(id) ?? 0)
        await store.flush()
        const fresh = await ReplicaStore.open(store.db) // (what the database holds, no cache)
        for (let id = 0; id < 12; id++) expect(Number((await fresh.getSnapshot(replica, asNativeId(`n${id}`)))?.version ?? 0)).toBe(model.get(id) ?? 0)
      }),
      propConfig(150),
    )
  }, SOAK_TIMEOUT)
})
