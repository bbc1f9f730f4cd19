import { type RedisService, useRedis } from '@concord/tools'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { LeaseLostError } from '../errors.js'
import { Fence } from '../lease.js'
import { ClusterRateLimits, DEFAULT_BUDGETS, FENCE_HEADER, clusterFetch, graphMailboxOf } from './cluster-fetch.js'

let redisService: RedisService
const connections: Redis[] = []
const connect = async () => {
  const r = new Redis(redisService.url)
  connections.push(r)
  await r.ping() // the limiters refuse to run on a connection that is not ready yet
  return r
}

beforeAll(async () => {
  redisService = await useRedis()
})
afterAll(async () => {
  for (const c of connections) c.disconnect()
  await redisService?.stop()
})

/** The far side: records what arrives. */
function farSide() {
  const seen: Array<{ url: string; fence: string | null }> = []
  const base = (async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    seen.push({ url: String(input), fence: new Headers(init?.headers).get(FENCE_HEADER) })
    return new Response('{}', { status: 200 })
  }) as typeof fetch
  return { seen, base }
}

test('a per-mailbox budget is shared by every instance: over it, a 429 with Retry-After comes back and nothing is sent', async () => {
  const prefix = `rl-${process.pid}-${Date.now()}`
  const budgets = { ...DEFAULT_BUDGETS, graphPerMailbox: { requests: 5, perMs: 60_000 } }
  const fence = new Fence()
  fence.set({ key: 'shard-1', holder: 'x', token: 7, expiresAt: Date.now() + 60_000 })
  const far = farSide()
  // Two instances: two connections, two limiter objects, one Redis.
  const instances = await Promise.all(
    [0, 1].map(async () => clusterFetch({ base: far.base, fence, shardKey: 'shard-1', side: 'graph', limits: new ClusterRateLimits(await connect(), prefix, budgets), isTokenRequest: (u) => u.includes('/oauth2/') })),
  )
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push((await instances[i % 2]!(`https://graph.test/v1.0/users/Ann@Contoso.test/contacts/delta`)).status)
  expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429])
  expect(far.seen).toHaveLength(5)
  expect(far.seen.every((r) => r.fence === 'shard-1:7')).toBe(true)
  const throttled = await instances[0]!('https://graph.test/v1.0/users/ann@contoso.test/messages')
  expect(Number(throttled.headers.get('Retry-After'))).toBeGreaterThan(0)
  expect((await throttled.json()) as unknown).toMatchObject({ error: { code: 'TooManyRequests' } })
  // Another mailbox has its own budget; token requests are never budgeted or fenced.
  expect((await instances[1]!('https://graph.test/v1.0/users/ben@contoso.test/contacts')).status).toBe(200)
  expect((await instances[1]!('https://login.test/oauth2/v2.0/token')).status).toBe(200)
})

test('a CRM user budget counts the impersonated user; a request from a holder without its lease is never sent', async () => {
  const prefix = `rl-crm-${process.pid}-${Date.now()}`
  const budgets = { ...DEFAULT_BUDGETS, crmPerUser: { requests: 2, perMs: 60_000 } }
  let now = 1_000_000
  const fence = new Fence(() => now, 100)
  fence.set({ key: 'shard-2', holder: 'x', token: 3, expiresAt: now + 5_000 })
  const far = farSide()
  const crm = clusterFetch({ base: far.base, fence, shardKey: 'shard-2', side: 'crm', limits: new ClusterRateLimits(await connect(), prefix, budgets), isTokenRequest: () => false })
  const asAnn = { headers: { CallerObjectId: 'ann' } }
  expect((await crm('http://crm.test/api/data/v9.2/contacts', asAnn)).status).toBe(200)
  expect((await crm('http://crm.test/api/data/v9.2/contacts', asAnn)).status).toBe(200)
  expect((await crm('http://crm.test/api/data/v9.2/contacts', asAnn)).status).toBe(429)
  expect((await crm('http://crm.test/api/data/v9.2/contacts', { headers: { CallerObjectId: 'ben' } })).status).toBe(200)
  now += 5_000 // the lease ran out (paused past it, say)
  await expect(crm('http://crm.test/api/data/v9.2/contacts', { headers: { CallerObjectId: 'ben' } })).rejects.toThrow(LeaseLostError)
  expect(far.seen).toHaveLength(3)
})

test('the mailbox of a Graph request is read from its path', () => {
  expect(graphMailboxOf('https://graph.microsoft.com/v1.0/users/ann%40contoso.test/events?x=1')).toBe('ann@contoso.test')
  expect(graphMailboxOf('https://graph.microsoft.com/v1.0/$batch')).toBeUndefined()
})
