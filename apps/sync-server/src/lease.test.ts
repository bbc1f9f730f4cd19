import { ReplicaStore, asReplicaId, type StoreDatabase } from '@concord/engine'
import { MemoryLevel } from 'memory-level'
import { expect, test } from 'vitest'
import { LeaseLostError } from './errors.js'
import { Fence, InProcessLeases } from './lease.js'

test('one holder at a time; tokens only grow; an expired lease can be taken over', async () => {
  let now = 1_000
  const leases = new InProcessLeases(() => now)
  const a = await leases.acquire('mailbox:1', 'server-a', 10_000)
  expect(a?.token).toBe(1)
  expect(await leases.acquire('mailbox:1', 'server-b', 10_000)).toBeNull()
  now += 10_001
  const b = await leases.acquire('mailbox:1', 'server-b', 10_000)
  expect(b?.token).toBe(2)
  expect(await leases.renew(a!, 10_000)).toBeNull() // the old holder lost it
  expect((await leases.renew(b!, 10_000))?.token).toBe(2)
  await leases.release(a!) // a stale release does not free b's lease
  expect((await leases.current('mailbox:1'))?.holder).toBe('server-b')
})

test('a store fenced by a lease refuses writes once the lease is lost, and keeps its data', async () => {
  let now = 1_000
  const leases = new InProcessLeases(() => now)
  const fence = new Fence(() => now, 100)
  const db = new MemoryLevel<string, string>() as unknown as StoreDatabase
  let opening = true
  const store = await ReplicaStore.open(db, { now: () => now, beforeWrite: () => opening || fence.assertHeld() })
  opening = false
  const replica = asReplicaId('crm:1')
  await expect(store.resetCursor(replica)).rejects.toBeInstanceOf(LeaseLostError) // no lease yet
  fence.set(await leases.acquire('mailbox:1', 'a', 1_000))
  await store.resetCursor(replica) // held: writes go through
  now += 950 // inside the safety margin before expiry: refuse rather than risk a late write
  await expect(store.resetCursor(replica)).rejects.toBeInstanceOf(LeaseLostError)
  now += 1_000
  fence.set(await leases.acquire('mailbox:1', 'b', 1_000)) // a new holder (token 2) takes over
  expect(fence.token).toBe(2)
  expect(await store.getCursor(replica)).toBeNull()
})
