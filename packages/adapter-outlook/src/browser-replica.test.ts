import 'fake-indexeddb/auto'
import { ItemKinds, type NativeId } from '@concord/engine'
import { runReplicaAdapterContract } from '@concord/engine/contract-suite'
import { pullAll, sampleFields } from '@concord/engine/testing'
import { expect, test } from 'vitest'
import { openBrowserLocalReplica } from './open.js'

// The add-in keeps its replica in IndexedDB through browser-level; fake-indexeddb stands in for the browser.
let n = 0
runReplicaAdapterContract('OutlookLocalReplica on browser-level (IndexedDB)', async () => {
  const replica = await openBrowserLocalReplica(`outlook-contract-${++n}`)
  return {
    adapter: replica,
    kinds: ItemKinds,
    sampleFields,
    remote: {
      create: async (kind, fields) => (await replica.createItem(kind, fields)).nativeId,
      update: async (nativeId: NativeId, _kind, patch) => void (await replica.updateItem(nativeId, patch)),
      remove: async (nativeId: NativeId) => replica.deleteItem(nativeId),
      expireCursors: () => replica.expireCursors(),
    },
    teardown: () => replica.close(),
  }
})

test('an IndexedDB replica keeps its items and cursor across a reopen', async () => {
  const first = await openBrowserLocalReplica('outlook-reopen')
  const item = await first.createItem('task', sampleFields('task', 1), { tracked: true })
  const { cursor } = await pullAll(first, null)
  await first.close()
  const again = await openBrowserLocalReplica('outlook-reopen')
  expect((await again.getItem(item.nativeId))?.meta?.tracked).toBe(true)
  await again.updateItem(item.nativeId, { subject: 'changed' })
  expect((await pullAll(again, cursor)).changes).toHaveLength(1)
  await again.close()
})
