import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Fields, type PullPage, ReplicaStore, type StoreDatabase, asCursor, asNativeId, asReplicaId, asVersion } from '@concord/engine'
import { sampleFields } from '@concord/engine/testing'
import { ClassicLevel } from 'classic-level'
import { afterEach, beforeEach, expect, test, vi } from 'vitest'
import { LeaseLostError } from '../errors.js'
import { InProcessLeases } from '../lease.js'
import { ClientTokenStore, LevelDesignationStore, LevelIntervalStore, hashToken } from './stores.js'
import { UserLeases, clientSyncLeaseKey } from './user-leases.js'

let dir: string
let db: ClassicLevel<string, string>
const part = () => db.sublevel<string, string>('client-sync', { valueEncoding: 'utf8' }) as unknown as StoreDatabase

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concord-client-sync-'))
  db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  await db.open()
})
afterEach(async () => {
  await db.close()
  await rm(dir, { recursive: true, force: true })
})

test('concurrent designations of one user get distinct, strictly increasing fencing tokens; the last one wins', async () => {
  const store = new LevelDesignationStore(part())
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.designate('u1', `client-${i}`)))
  expect(results.map((r) => r.fencingToken)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
  expect(await store.current('u1')).toEqual({ clientId: 'client-19', fencingToken: 20 })
  expect(await store.current('u2')).toBeUndefined()
})

test('claimIfUnassigned: only the first of many concurrent clients is designated', async () => {
  const store = new LevelDesignationStore(part())
  const claims = await Promise.all(['a', 'b', 'c'].map((c) => store.claimIfUnassigned('u1', c)))
  expect(new Set(claims.map((c) => JSON.stringify(c)))).toEqual(new Set([JSON.stringify({ clientId: 'a', fencingToken: 1 })]))
})

test('designations, intervals and tokens survive a reopen; tokens are stored only hashed', async () => {
  const tokens = new ClientTokenStore(part(), () => 1000)
  const { token, info } = await tokens.issue('u1', { label: 'laptop' })
  await new LevelDesignationStore(part()).designate('u1', 'laptop')
  await new LevelIntervalStore(part()).set('u1', 30)
  await db.close()
  db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  await db.open()
  const all: string[] = []
  for await (const [k, v] of db.iterator()) all.push(k, v)
  expect(all.join('\n')).not.toContain(token)
  expect(all.join('\n')).toContain(hashToken(token))
  expect(await new ClientTokenStore(part()).authenticate(token)).toEqual(info)
  expect(await new LevelDesignationStore(part()).designate('u1', 'desktop')).toEqual({ clientId: 'desktop', fencingToken: 2 })
  expect(await new LevelIntervalStore(part()).get('u1')).toBe(30)
  expect(await new ClientTokenStore(part()).authenticate('cct_other')).toBeUndefined()
  expect(await new ClientTokenStore(part()).revoke('u1', info.tokenId)).toHaveLength(1)
  expect(await new ClientTokenStore(part()).authenticate(token)).toBeUndefined()
})

test('a corrupt stored value is an error naming the key, not a crash later', async () => {
  await part().put('d!u1', '{"clientId":5}')
  await expect(new LevelDesignationStore(part()).current('u1')).rejects.toThrow(/client-sync state d!u1 is malformed/)
})

test('an expired token no longer authenticates', async () => {
  let now = 1000
  const tokens = new ClientTokenStore(part(), () => now)
  const { token, info } = await tokens.issue('u1', { ttlMs: 500 })
  expect(info.expiresAt).toBe(1500)
  expect(await tokens.authenticate(token)).toEqual(info)
  now = 1500
  expect(await tokens.authenticate(token)).toBeUndefined()
})

test('fenced designations: written only under the user’s lease; another holder → unavailable; a lapsed lease → LeaseLostError, nothing written', async () => {
  let now = 1_000_000
  const manager = new InProcessLeases(() => now)
  const leases = new UserLeases({ leases: manager, holder: 'server-a', ttlMs: 60_000, now: () => now })
  const store = new LevelDesignationStore(part(), leases)
  expect(await store.designate('u1', 'laptop')).toEqual({ clientId: 'laptop', fencingToken: 1 })
  // The lease is given back after each write; writes while this process holds it (a sync) share it.
  expect(await manager.current(clientSyncLeaseKey('u1'))).toBeNull()
  const acquire = vi.spyOn(manager, 'acquire')
  const concurrent = await leases.run('u1', () => Promise.all(['a', 'b', 'c'].map((c) => store.designate('u1', c))))
  expect(concurrent.map((d) => d.fencingToken)).toEqual([2, 3, 4])
  expect(acquire).toHaveBeenCalledTimes(1)
  expect(await manager.current(clientSyncLeaseKey('u1'))).toBeNull()

  // Another server holds u1's lease: refused (retryable), the designation is unchanged.
  const other = await manager.acquire(clientSyncLeaseKey('u1'), 'server-b', 60_000)
  await expect(store.designate('u1', 'desktop')).rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('server-b') })
  expect(await store.current('u1')).toEqual({ clientId: 'c', fencingToken: 4 })
  // A user without a designation connecting meanwhile cannot claim one; a designated user's claim is a read.
  await expect(store.claimIfUnassigned('u1', 'desktop')).resolves.toEqual({ clientId: 'c', fencingToken: 4 })
  await manager.release(other!)

  // The lease lapses while a writer holds it (a long pause): its write is refused by the fence.
  await expect(
    leases.run('u1', async (fence) => {
      now += 60_000
      fence.assertHeld()
    }),
  ).rejects.toBeInstanceOf(LeaseLostError)
  await expect(
    leases.run('u1', async () => {
      const write = store.designate('u1', 'late')
      now += 120_000
      return write
    }),
  ).rejects.toBeInstanceOf(LeaseLostError)
  expect(await store.current('u1')).toEqual({ clientId: 'c', fencingToken: 4 })
})

test('the client pair’s engine store refuses writes outside the user’s lease', async () => {
  let now = 1_000_000
  const leases = new UserLeases({ leases: new InProcessLeases(() => now), holder: 'server-a', ttlMs: 60_000, now: () => now })
  const fence = leases.fence('u1')
  let opening = true
  const store = await ReplicaStore.open(part().sublevel<string, string>('pair', { valueEncoding: 'utf8' }) as unknown as StoreDatabase, { beforeWrite: () => opening || fence.assertHeld() })
  opening = false
  const crm = asReplicaId('crm:u1')
  const page = (n: number): PullPage => ({ changes: [{ type: 'upsert' as const, nativeId: asNativeId(`contacts(${n})`), kind: 'contact' as const, version: asVersion(`v${n}`), fields: sampleFields('contact', n) as Fields }], nextCursor: asCursor(`c${n}`), hasMore: false })
  await expect(store.applyPulledPage(crm, page(1))).rejects.toBeInstanceOf(LeaseLostError)
  await leases.run('u1', () => store.applyPulledPage(crm, page(1)))
  expect(await store.getCursor(crm)).toBe('c1')
  await expect(
    leases.run('u1', async () => {
      now += 61_000 // the lease lapsed during a long pause
      await store.applyPulledPage(crm, page(2))
    }),
  ).rejects.toBeInstanceOf(LeaseLostError)
  expect(await store.getCursor(crm)).toBe('c1')
  expect(await store.headSeq(crm)).toBe(1)
})
