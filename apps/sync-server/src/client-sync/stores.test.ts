import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { StoreDatabase } from '@concord/engine'
import { ClassicLevel } from 'classic-level'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { ClientTokenStore, LevelDesignationStore, LevelIntervalStore, hashToken } from './stores.js'

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
