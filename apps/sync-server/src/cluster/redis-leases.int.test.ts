import { ReplicaStore, asReplicaId, type StoreDatabase } from '@concord/engine'
import { type RedisService, useRedis } from '@concord/tools'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { LeaseLostError } from '../errors.js'
import { Fence } from '../lease.js'
import { ClusterKeys, RedisLeases, withLeaseScripts } from './redis-leases.js'
import { FencedShardStore } from './shard-store.js'

let redisService: RedisService
let redis: Redis
let n = 0
const keysFor = () => new ClusterKeys(`t${process.pid}-${++n}`)

beforeAll(async () => {
  redisService = await useRedis()
  redis = new Redis(redisService.url)
})
afterAll(async () => {
  redis?.disconnect()
  await redisService?.stop()
})

test('one holder at a time; tokens only grow; an expired lease is taken over with a higher token', async () => {
  const leases = new RedisLeases(redis, keysFor())
  const a = await leases.acquire('shard-1', 'instance-a', 300)
  expect(a).not.toBeNull()
  expect(await leases.acquire('shard-1', 'instance-b', 300)).toBeNull()
  expect((await leases.current('shard-1'))?.holder).toBe('instance-a')
  const renewed = await leases.renew(a!, 300)
  expect(renewed?.token).toBe(a!.token)
  await new Promise((r) => setTimeout(r, 400)) // Redis expires the key
  const b = await leases.acquire('shard-1', 'instance-b', 5_000)
  expect(b!.token).toBeGreaterThan(a!.token)
  expect(await leases.renew(a!, 5_000)).toBeNull() // the old holder learns it lost the lease
  await leases.release(a!) // a stale release frees nothing
  expect((await leases.current('shard-1'))?.holder).toBe('instance-b')
  await leases.release(b!)
  expect(await leases.current('shard-1')).toBeNull()
})

test('shard state: writes need the current token; the next owner loads exactly what was committed', async () => {
  const keys = keysFor()
  const leases = new RedisLeases(redis, keys)
  const scripted = withLeaseScripts(redis)
  const lease1 = await leases.acquire('shard-0', 'a', 60_000)
  const fence1 = new Fence()
  fence1.set(lease1)
  const first = await FencedShardStore.load({ redis: scripted, keys, leaseKey: 'shard-0', fence: fence1 })
  const engineDb = first.sublevel('m-1', { valueEncoding: 'utf8' }) as unknown as StoreDatabase
  const store = await ReplicaStore.open(engineDb)
  const replica = asReplicaId('crm:1')
  await store.applyPulledPage(replica, { changes: [{ type: 'upsert', nativeId: 'c1' as never, kind: 'contact', version: 'v1' as never, fields: { lastName: 'Ng' } }], nextCursor: 'cur-1' as never, hasMore: false })
  await store.close()
  await first.put('plain', 'value')
  await first.del('plain')

  // Someone else takes the shard (the first owner is paused, say): its token is now stale.
  await redis.del(keys.lease('shard-0'))
  const lease2 = await leases.acquire('shard-0', 'b', 60_000)
  expect(lease2!.token).toBeGreaterThan(lease1!.token)
  const before = await redis.hlen(keys.state('shard-0'))
  let fenced = 0
  const stale = await FencedShardStore.load({ redis: scripted, keys, leaseKey: 'shard-0', fence: fence1, onFenced: () => fenced++ })
  await expect(stale.put('late', 'write')).rejects.toThrow(LeaseLostError)
  await expect(stale.batch([{ type: 'put', key: 'x', value: 'y' }, { type: 'del', key: 'plain' }])).rejects.toThrow(/fencing token/)
  expect(fenced).toBe(2)
  expect(await redis.hlen(keys.state('shard-0'))).toBe(before)
  expect(await stale.get('late')).toBeUndefined() // nothing applied locally either

  // The new owner sees the first owner's committed state and carries on from the same cursor.
  const fence2 = new Fence()
  fence2.set(lease2)
  const second = await FencedShardStore.load({ redis: scripted, keys, leaseKey: 'shard-0', fence: fence2 })
  const reopened = await ReplicaStore.open(second.sublevel('m-1', { valueEncoding: 'utf8' }) as unknown as StoreDatabase)
  expect(await reopened.getCursor(replica)).toBe('cur-1')
  expect((await reopened.getSnapshots(replica, ['c1' as never]))[0]?.version).toBe('v1')
  expect((await reopened.readLog(replica, 0)).map((e) => e.fields)).toEqual([{ lastName: 'Ng' }])
  expect(await second.get('plain')).toBeUndefined()
  await reopened.close()
  await second.clear()
  expect(await redis.hlen(keys.state('shard-0'))).toBe(0)
})

test('a holder whose local lease time ran out stops before Redis is asked', async () => {
  const keys = keysFor()
  let now = 1_000_000
  const leases = new RedisLeases(redis, keys, () => now)
  const fence = new Fence(() => now, 100)
  fence.set(await leases.acquire('shard-9', 'a', 60_000))
  const store = await FencedShardStore.load({ redis: withLeaseScripts(redis), keys, leaseKey: 'shard-9', fence })
  await store.put('k', '1')
  now += 60_000 // e.g. woken from SIGSTOP
  await expect(store.put('k', '2')).rejects.toThrow(LeaseLostError)
  expect(await redis.hget(keys.state('shard-9'), '!k')).toBeNull()
  expect(await redis.hget(keys.state('shard-9'), 'k')).toBe('1')
})
