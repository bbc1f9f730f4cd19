/** The adapter against the Graph emulator over https: paging, expiry, throttling, conflicts, duplicates, moves. */
import { CursorExpiredError, PreconditionFailedError, ThrottledError, asConcordId, asOpId } from '@concord/engine'
import type { NativeId, RemoteChange, RemoteUpsert } from '@concord/engine'
import { latestByNativeId, pullAll } from '@concord/engine/testing'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { exchangeSampleFields, startEmulatorEnv, UPN, type EmulatorEnv } from './test/emulator-env.js'

let env: EmulatorEnv
beforeAll(async () => {
  env = await startEmulatorEnv()
})
afterAll(async () => {
  await env.close()
})
beforeEach(() => {
  env.em.control.reset()
})

const upserts = (changes: readonly RemoteChange[]) => [...latestByNativeId(changes).values()].filter((c): c is RemoteUpsert => c.type === 'upsert')
let op = 0
const opId = () => asOpId(`int-op-${++op}`)

function seedMessages(n: number, folder = 'inbox'): string[] {
  return env.em.control.seed(UPN, 'message', Array.from({ length: n }, (_, i) => ({ subject: `m${i}` })), folder).map((s) => s.immutableId)
}

describe('paging', () => {
  test.each([1, 3, 10, 50])('page size %i covers every record exactly, following nextLinks', async (limit) => {
    const ids = seedMessages(23)
    env.em.control.seed(UPN, 'contact', Array.from({ length: 4 }, (_, i) => ({ givenName: `c${i}` })))
    const adapter = env.adapter({ kinds: ['email', 'contact'] })
    const { changes, pages } = await pullAll(adapter, null, limit)
    const seen = upserts(changes).filter((c) => c.kind === 'email')
    expect(new Set(seen.map((c) => env.graphId(c.nativeId)))).toEqual(new Set(ids))
    expect(upserts(changes).filter((c) => c.kind === 'contact')).toHaveLength(4)
    for (const page of pages) expect(page.changes.length).toBeLessThanOrEqual(limit)
    expect(pages.every((p) => p.fullListing === true)).toBe(true)
    expect(pages.at(-1)!.hasMore).toBe(false)
    if (limit < 23) expect(pages.length).toBeGreaterThanOrEqual(Math.ceil(27 / limit))
  })

  test('empty pages with a nextLink are followed', async () => {
    seedMessages(5)
    env.em.control.emptyPages(3)
    const adapter = env.adapter({ kinds: ['email'], mailFolders: ['inbox'] })
    const { changes } = await pullAll(adapter, null, 2)
    expect(upserts(changes)).toHaveLength(5)
  })

  test('the next round after a full listing is incremental (fullListing false)', async () => {
    seedMessages(3)
    const adapter = env.adapter({ kinds: ['email'] })
    const first = await pullAll(adapter, null)
    seedMessages(2)
    const second = await pullAll(adapter, first.cursor)
    expect(second.pages.every((p) => !p.fullListing)).toBe(true)
    expect(upserts(second.changes)).toHaveLength(2)
  })
})

describe('expired cursors', () => {
  test('a delta token evicted mid-round raises CursorExpiredError; pull(null) then lists everything', async () => {
    seedMessages(12)
    const adapter = env.adapter({ kinds: ['email'], mailFolders: ['inbox'] })
    const page1 = await adapter.pull(null, { limit: 5 })
    expect(page1.hasMore).toBe(true)
    env.em.control.expireDeltaTokens()
    await expect(adapter.pull(page1.nextCursor, { limit: 5 })).rejects.toBeInstanceOf(CursorExpiredError)
    const again = await pullAll(adapter, null, 5)
    expect(again.pages.every((p) => p.fullListing)).toBe(true)
    expect(upserts(again.changes)).toHaveLength(12)
  })

  test('an unreadable cursor is a CursorExpiredError, not a crash', async () => {
    const adapter = env.adapter()
    await expect(adapter.pull('garbage' as never, { limit: 5 })).rejects.toBeInstanceOf(CursorExpiredError)
  })
})

describe('throttling', () => {
  test('a 429 storm surfaces as ThrottledError with Retry-After in ms; nothing is lost once it ends', async () => {
    const ids = seedMessages(9)
    const adapter = env.adapter({ kinds: ['email'], mailFolders: ['inbox'] })
    env.em.control.failNext({ status: 429, count: 4, retryAfterSeconds: 2.5 })
    const changes: RemoteChange[] = []
    let cursor = null as Parameters<typeof adapter.pull>[0]
    let throttled = 0
    for (let i = 0; i < 50; i++) {
      try {
        const page = await adapter.pull(cursor, { limit: 4 })
        changes.push(...page.changes)
        cursor = page.nextCursor
        if (!page.hasMore) break
      } catch (error) {
        expect(error).toBeInstanceOf(ThrottledError)
        expect((error as ThrottledError).retryAfterMs).toBe(2500)
        throttled++
      }
    }
    expect(throttled).toBeGreaterThan(0)
    expect(new Set(upserts(changes).map((c) => env.graphId(c.nativeId)))).toEqual(new Set(ids))
  })

  test('a throttled push is rejected per op with ThrottledError; the replay creates each record once', async () => {
    const adapter = env.adapter({ kinds: ['contact'] })
    const ops = [0, 1, 2].map((n) => ({ opId: opId(), type: 'create' as const, concordId: asConcordId(`storm-${n}`), kind: 'contact' as const, fields: exchangeSampleFields('contact', n) }))
    env.em.control.failNext({ status: 503, count: 2, retryAfterSeconds: 1 })
    const first = await adapter.push(ops)
    expect(first.rejected.length).toBeGreaterThan(0)
    for (const r of first.rejected) expect(r.error).toBeInstanceOf(ThrottledError)
    const second = await adapter.push(ops)
    expect(second.rejected).toEqual([])
    expect(env.em.control.count(UPN, 'contact')).toBe(3)
    const ids = new Set([...first.applied, ...second.applied].map((a) => a.nativeId))
    expect(ids.size).toBe(3)
  })
})

describe('conflicts and idempotence', () => {
  test('412: an update with a stale If-Match is rejected; re-read and retried it applies', async () => {
    const adapter = env.adapter({ kinds: ['task'] })
    const nativeId = await env.remote.create('task', exchangeSampleFields('task', 1))
    const listed = upserts((await pullAll(adapter, null)).changes).find((c) => c.nativeId === nativeId)!
    await env.remote.update(nativeId, 'task', { subject: 'changed in Outlook' })
    const concordId = asConcordId('task-412')
    const stale = await adapter.push([{ opId: opId(), type: 'update', concordId, kind: 'task', nativeId, fields: { subject: 'from CRM' }, ifMatch: listed.version }])
    expect(stale.rejected[0]?.error).toBeInstanceOf(PreconditionFailedError)
    const fresh = upserts((await pullAll(adapter, null)).changes).find((c) => c.nativeId === nativeId)!
    expect(fresh.fields['subject']).toBe('changed in Outlook')
    const ok = await adapter.push([{ opId: opId(), type: 'update', concordId, kind: 'task', nativeId, fields: { subject: 'from CRM', regarding: { table: 'contacts', id: 'c-1', name: 'Ann' } }, ifMatch: fresh.version }])
    expect(ok.rejected).toEqual([])
    const after = upserts((await pullAll(adapter, null)).changes).find((c) => c.nativeId === nativeId)!
    expect(after.fields['subject']).toBe('from CRM')
    expect(after.fields['regarding']).toEqual({ table: 'contacts', id: 'c-1', name: 'Ann' })
    expect(after.concordId).toBe(concordId)
    expect(after.version).toBe(ok.applied[0]!.version)
  })

  test('duplicated and replayed delta items are harmless', async () => {
    const ids = seedMessages(10)
    env.em.control.setDuplicates(true)
    const adapter = env.adapter({ kinds: ['email'], mailFolders: ['inbox'] })
    const { changes } = await pullAll(adapter, null, 3)
    expect(changes.length).toBeGreaterThan(10)
    expect(new Set(upserts(changes).map((c) => env.graphId(c.nativeId)))).toEqual(new Set(ids))
  })

  test('an event create is idempotent through transactionId and the stamp', async () => {
    const adapter = env.adapter({ kinds: ['appointment'] })
    const create = { opId: opId(), type: 'create' as const, concordId: asConcordId('evt-1'), kind: 'appointment' as const, fields: exchangeSampleFields('appointment', 3) }
    const a = await adapter.push([create])
    const b = await adapter.push([{ ...create, opId: opId() }])
    expect(b.applied[0]!.nativeId).toBe(a.applied[0]!.nativeId)
    expect(env.em.control.count(UPN, 'event')).toBe(1)
    const listed = upserts((await pullAll(adapter, null)).changes)
    expect(listed).toHaveLength(1)
    expect(listed[0]!.concordId).toBe('evt-1')
    expect(listed[0]!.fields['recurrence']).toEqual(create.fields['recurrence'])
  })
})

describe('moves and immutable ids', () => {
  async function pushedMessage(adapter: ReturnType<EmulatorEnv['adapter']>): Promise<NativeId> {
    const res = await adapter.push([{ opId: opId(), type: 'create', concordId: asConcordId('moved-1'), kind: 'email', fields: exchangeSampleFields('email', 2) }])
    return res.applied[0]!.nativeId!
  }

  test('a move between tracked folders keeps the id and the stamp, and reports no delete', async () => {
    const adapter = env.adapter({ kinds: ['email'] })
    const nativeId = await pushedMessage(adapter)
    const first = await pullAll(adapter, null)
    env.em.control.moveItem(UPN, env.graphId(nativeId), 'sentitems')
    const second = await pullAll(adapter, first.cursor)
    expect(second.changes.some((c) => c.type === 'delete')).toBe(false)
    const moved = upserts(second.changes).find((c) => c.nativeId === nativeId)
    expect(moved?.concordId).toBe('moved-1')
    expect(moved?.fields['direction']).toBe('outgoing')
  })

  test('a move to an untracked folder is left-filter; to Deleted Items is a user delete', async () => {
    const adapter = env.adapter({ kinds: ['email'] })
    const nativeId = await pushedMessage(adapter)
    const other = (await adapter.push([{ opId: opId(), type: 'create', concordId: asConcordId('moved-2'), kind: 'email', fields: exchangeSampleFields('email', 4) }])).applied[0]!.nativeId!
    const first = await pullAll(adapter, null)
    env.em.control.moveItem(UPN, env.graphId(nativeId), 'archive')
    env.em.control.moveItem(UPN, env.graphId(other), 'deleteditems')
    const latest = latestByNativeId((await pullAll(adapter, first.cursor)).changes)
    expect(latest.get(nativeId)).toEqual({ type: 'delete', nativeId, provenance: 'left-filter' })
    expect(latest.get(other)).toEqual({ type: 'delete', nativeId: other, provenance: 'user-deleted' })
    expect(await adapter.confirmMissing([nativeId, other])).toEqual([])
    env.em.control.deleteItem(UPN, env.graphId(other))
    expect(await adapter.confirmMissing([nativeId, other])).toEqual([other])
  })
})

describe('auth', () => {
  test('a rejected token is refreshed once on 401 and the request succeeds', async () => {
    seedMessages(2)
    const adapter = env.adapter({ kinds: ['email'], mailFolders: ['inbox'] })
    await pullAll(adapter, null)
    expect(adapter.auth.tokensIssued).toBe(1)
    env.em.control.expireAccessTokens()
    const { changes } = await pullAll(adapter, null)
    expect(upserts(changes)).toHaveLength(2)
    expect(adapter.auth.tokensIssued).toBe(2)
  })
})
