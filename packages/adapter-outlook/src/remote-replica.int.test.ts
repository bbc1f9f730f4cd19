import { ItemKinds, type NativeId } from '@concord/engine'
import { runReplicaAdapterContract } from '@concord/engine/contract-suite'
import { sampleFields } from '@concord/engine/testing'
import { expect, test } from 'vitest'
import { makeClient, startServer } from './test/fixtures.js'

// The same contract as the local replica, but through the server-side RemoteClientReplica: every
// pull and push crosses a real WebSocket, is fenced, validated and answered by the client.
runReplicaAdapterContract('RemoteClientReplica over a WebSocket to an OutlookSyncClient', async () => {
  const server = await startServer()
  const c = await makeClient(server.url, 'tok-alice', 'contract-laptop')
  await c.client.start()
  const designated = server.host.designatedClient('alice')
  if (!designated) throw new Error('no designated client')
  return {
    adapter: designated.replica,
    kinds: ItemKinds,
    sampleFields,
    remote: {
      create: async (kind, fields) => (await c.replica.createItem(kind, fields)).nativeId,
      update: async (nativeId: NativeId, _kind, patch) => void (await c.replica.updateItem(nativeId, patch)),
      remove: async (nativeId: NativeId) => c.replica.deleteItem(nativeId),
      expireCursors: () => c.replica.expireCursors(),
    },
    teardown: async () => {
      await c.client.stop()
      await server.close()
    },
  }
})

test('a fenced-off client is refused before anything is sent, with a non-retryable engine error', async () => {
  const server = await startServer()
  try {
    const laptop = await makeClient(server.url, 'tok-alice', 'laptop')
    const desktop = await makeClient(server.url, 'tok-alice', 'desktop')
    await laptop.client.start()
    await desktop.client.start()
    const old = server.host.designatedClient('alice')!
    await desktop.client.designate()
    let served = 0
    const pull = laptop.replica.pull.bind(laptop.replica)
    laptop.replica.pull = (...args) => {
      served++
      return pull(...args)
    }
    const error = await old.replica.pull(null, { limit: 10 }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'Forbidden', retryable: false })
    await expect(old.replica.push([])).resolves.toEqual({ applied: [], rejected: [] })
    expect(served).toBe(0)
    await laptop.client.stop()
    await desktop.client.stop()
  } finally {
    await server.close()
  }
})

test('a dropped socket fails a pending call with a retryable Transient error', async () => {
  const server = await startServer()
  try {
    const c = await makeClient(server.url, 'tok-alice', 'laptop')
    await c.client.start()
    const designated = server.host.designatedClient('alice')!
    c.replica.pull = async () => {
      server.dropAll()
      return new Promise(() => undefined) // never answers
    }
    const error = await designated.replica.pull(null, { limit: 10 }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'Transient', retryable: true })
    await c.client.stop()
  } finally {
    await server.close()
  }
})

test('a client that does not answer in time gives a Transient timeout', async () => {
  const server = await startServer({ rpcTimeoutMs: 50 })
  try {
    const c = await makeClient(server.url, 'tok-alice', 'laptop')
    await c.client.start()
    c.replica.pull = () => new Promise(() => undefined)
    const error = await server.host.designatedClient('alice')!.replica.pull(null, { limit: 10 }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'Transient' })
    expect(String((error as Error).message)).toContain('no answer to pull')
    await c.client.stop()
  } finally {
    await server.close()
  }
})

test('confirmMissing crosses the socket and only reports ids that were asked about', async () => {
  const server = await startServer()
  try {
    const c = await makeClient(server.url, 'tok-alice', 'laptop')
    await c.client.start()
    const kept = await c.replica.createItem('contact', sampleFields('contact', 1))
    const gone = await c.replica.createItem('contact', sampleFields('contact', 2))
    await c.replica.deleteItem(gone.nativeId)
    const replica = server.host.designatedClient('alice')!.replica
    expect(await replica.confirmMissing([kept.nativeId, gone.nativeId, 'ol-404' as NativeId])).toEqual([gone.nativeId, 'ol-404'])
    c.replica.confirmMissing = async () => ['ol-1', 'not-asked'] as NativeId[]
    expect(await replica.confirmMissing([kept.nativeId])).toEqual([kept.nativeId])
    await c.client.stop()
  } finally {
    await server.close()
  }
})
