import { asConcordId, asOpId, CursorExpiredError, PreconditionFailedError, ThrottledError, type NativeId, type RemoteUpsert, type Version } from '@concord/engine'
import { pullAll } from '@concord/engine/testing'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { crmSampleFields, startCrmWorld, type CrmWorld } from '../test/harness.js'

let w: CrmWorld
beforeEach(async () => {
  w = await startCrmWorld({ kinds: ['contact', 'task'] })
})
afterEach(async () => {
  await w.close()
})

const upserts = (changes: readonly { type: string }[]) => changes.filter((c): c is RemoteUpsert => c.type === 'upsert')

test('paging: odata.maxpagesize bounds every page and @odata.nextLink is followed to the deltaLink', async () => {
  for (let i = 0; i < 7; i++) await w.createRemote('contact', crmSampleFields('contact', i))
  for (let i = 0; i < 2; i++) await w.createRemote('task', crmSampleFields('task', i))
  const { pages, changes } = await pullAll(w.adapter, null, 3)
  expect(pages.map((p) => p.changes.length)).toEqual([3, 3, 1, 2])
  expect(pages.every((p) => p.fullListing === true)).toBe(true)
  expect(pages.slice(0, -1).every((p) => p.hasMore)).toBe(true)
  expect(pages.at(-1)!.hasMore).toBe(false)
  expect(new Set(changes.map((c) => c.nativeId)).size).toBe(9)
  // The next round is incremental and empty.
  const next = await w.adapter.pull(pages.at(-1)!.nextCursor, { limit: 3 })
  expect(next).toMatchObject({ changes: [], hasMore: false, fullListing: false })
})

test('a deleted row arrives as $deletedEntity → RemoteDelete user-deleted; confirmMissing GETs (404 = gone)', async () => {
  const keep = await w.createRemote('contact', crmSampleFields('contact', 1))
  const gone = await w.createRemote('contact', crmSampleFields('contact', 2))
  const first = await pullAll(w.adapter, null)
  await w.removeRemote(gone)
  const second = await pullAll(w.adapter, first.cursor)
  expect(second.changes).toEqual([{ type: 'delete', nativeId: gone, provenance: 'user-deleted' }])
  expect(await w.adapter.confirmMissing([keep, gone])).toEqual([gone])
})

test('an expired change-tracking token → CursorExpiredError; pull(null) is a fresh full listing', async () => {
  const id = await w.createRemote('contact', crmSampleFields('contact', 1))
  const first = await pullAll(w.adapter, null)
  w.emu.admin.expireChangeTracking()
  await expect(w.adapter.pull(first.cursor, { limit: 10 })).rejects.toBeInstanceOf(CursorExpiredError)
  const again = await pullAll(w.adapter, null)
  expect(again.pages.every((p) => p.fullListing)).toBe(true)
  expect(upserts(again.changes).map((c) => c.nativeId)).toContain(id)
})

test('a garbled cursor is a CursorExpiredError (resync), never a crash', async () => {
  await expect(w.adapter.pull('nonsense' as never, { limit: 10 })).rejects.toBeInstanceOf(CursorExpiredError)
  await expect(w.adapter.pull('crm1:e30' as never, { limit: 10 })).rejects.toBeInstanceOf(CursorExpiredError)
})

test('429 → ThrottledError with Retry-After in ms, on pull and as per-op rejections on push; nothing is retried', async () => {
  for (let i = 0; i < 2; i++) await w.createRemote('contact', crmSampleFields('contact', i))
  const page1 = await w.adapter.pull(null, { limit: 1 })
  expect(page1.hasMore).toBe(true)
  const before = w.adapter.http.requestCount
  w.emu.admin.injectFaults({ status: 429, count: 1, retryAfterSeconds: 7 })
  const err = await w.adapter.pull(page1.nextCursor, { limit: 1 }).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(ThrottledError)
  expect((err as ThrottledError).retryAfterMs).toBe(7000)
  expect(w.adapter.http.requestCount).toBe(before + 1)
  w.emu.admin.injectFaults({ status: 429, count: 1, retryAfterSeconds: 2 })
  const ops = [0, 1].map((i) => ({ opId: asOpId(`op-${i}`), type: 'create' as const, concordId: asConcordId(`c-${i}`), kind: 'contact' as const, fields: crmSampleFields('contact', i) }))
  const res = await w.adapter.push(ops)
  expect(res.applied).toEqual([])
  expect(res.rejected.map((r) => [r.opId, r.error instanceof ThrottledError && r.error.retryAfterMs])).toEqual([['op-0', 2000], ['op-1', 2000]])
  // After the throttle, the same ops go through.
  expect((await w.adapter.push(ops)).applied).toHaveLength(2)
})

test('$batch: each op is its own change set — one stale If-Match (412) does not roll back the others', async () => {
  const a = await w.createRemote('contact', crmSampleFields('contact', 1))
  const b = await w.createRemote('contact', crmSampleFields('contact', 2))
  const listed = upserts((await pullAll(w.adapter, null)).changes)
  const va = listed.find((c) => c.nativeId === a)!.version
  const vb = listed.find((c) => c.nativeId === b)!.version
  await w.updateRemote(a, 'contact', { jobTitle: 'Changed in CRM' })
  const res = await w.adapter.push([
    { opId: asOpId('u-a'), type: 'update', concordId: asConcordId('x-a'), kind: 'contact', nativeId: a, fields: { jobTitle: 'From mailbox' }, ifMatch: va },
    { opId: asOpId('u-b'), type: 'update', concordId: asConcordId('x-b'), kind: 'contact', nativeId: b, fields: { jobTitle: 'From mailbox' }, ifMatch: vb },
    { opId: asOpId('c-new'), type: 'create', concordId: asConcordId('x-new'), kind: 'task', fields: crmSampleFields('task', 3) },
  ])
  expect(res.rejected.map((r) => r.opId)).toEqual(['u-a'])
  expect(res.rejected[0]!.error).toBeInstanceOf(PreconditionFailedError)
  expect(res.applied.map((r) => r.opId)).toEqual(['u-b', 'c-new'])
  expect(res.applied[0]!.fields?.jobTitle).toBe('From mailbox')
  expect(res.applied[0]!.version).not.toBe(vb)
  const rowA = (await w.api('GET', `contacts(${a.slice(9, -1)})?$select=jobtitle`)).json
  expect(rowA.jobtitle).toBe('Changed in CRM')
})

test('an update of a deleted row is rejected NotFound (If-Match * never re-creates it); a delete of a gone row is applied', async () => {
  const a = await w.createRemote('contact', crmSampleFields('contact', 1))
  await w.removeRemote(a)
  const res = await w.adapter.push([
    { opId: asOpId('u'), type: 'update', concordId: asConcordId('x'), kind: 'contact', nativeId: a, fields: { jobTitle: 'x' } },
    { opId: asOpId('d'), type: 'delete', concordId: asConcordId('x'), kind: 'contact', nativeId: a, provenance: 'user-deleted' },
    { opId: asOpId('d2'), type: 'delete', concordId: asConcordId('never-created'), kind: 'task', provenance: 'user-deleted' },
  ])
  expect(res.rejected.map((r) => [r.opId, r.error.code])).toEqual([['u', 'NotFound']])
  expect(res.applied.map((r) => r.opId)).toEqual(['d', 'd2'])
  expect((await w.api('GET', `contacts(${a.slice(9, -1)})`)).status).toBe(404)
})

test('a delete without a native id finds the row by its stamped Concord id', async () => {
  const created = await w.adapter.push([{ opId: asOpId('c'), type: 'create', concordId: asConcordId('to-delete'), kind: 'task', fields: crmSampleFields('task', 1) }])
  const nativeId = created.applied[0]!.nativeId as NativeId
  const res = await w.adapter.push([{ opId: asOpId('d'), type: 'delete', concordId: asConcordId('to-delete'), kind: 'task', provenance: 'user-deleted' }])
  expect(res.rejected).toEqual([])
  expect(await w.adapter.confirmMissing([nativeId])).toEqual([nativeId])
})

test('invalid op data is rejected per op with a clear error; the rest of the batch is applied', async () => {
  const res = await w.adapter.push([
    { opId: asOpId('bad'), type: 'create', concordId: asConcordId('bad'), kind: 'task', fields: { subject: 'x', due: { dateTime: '2026-01-01T10:00:00', timeZone: 'Mars/Olympus' } } },
    { opId: asOpId('good'), type: 'create', concordId: asConcordId('good'), kind: 'task', fields: { subject: 'ok' } },
  ])
  expect(res.rejected.map((r) => [r.opId, r.error.code])).toEqual([['bad', 'Validation']])
  expect(res.rejected[0]!.error.message).toMatch(/Mars\/Olympus/)
  expect(res.applied.map((r) => r.opId)).toEqual(['good'])
})

test('the OAuth2 token is fetched once and cached across requests', async () => {
  await pullAll(w.adapter, null)
  await w.adapter.push([{ opId: asOpId('c'), type: 'create', concordId: asConcordId('tok'), kind: 'task', fields: { subject: 'x' } }])
  expect(w.adapter.http.tokenRequests).toBe(1)
  expect(w.adapter.http.requestCount).toBeGreaterThan(3)
})

test('the version reported by push is the one the next pull reports (the engine recognises its echo)', async () => {
  const res = await w.adapter.push([{ opId: asOpId('c'), type: 'create', concordId: asConcordId('echo'), kind: 'contact', fields: crmSampleFields('contact', 4) }])
  const { changes } = await pullAll(w.adapter, null)
  const row = upserts(changes).find((c) => c.nativeId === res.applied[0]!.nativeId)!
  expect(row.version).toBe(res.applied[0]!.version as Version)
  expect(row.concordId).toBe('echo')
  expect(row.fields).toEqual(res.applied[0]!.fields)
})

test('an expired token is renewed once after a 401; a wrong secret is an Unauthorized SyncError', async () => {
  await pullAll(w.adapter, null)
  w.emu.admin.advanceClock(3_700_000) // the server-side token (3599 s) has expired; the cached one is stale
  await pullAll(w.adapter, null)
  expect(w.adapter.http.tokenRequests).toBe(2)
  const bad = w.adapterFor(w.alice, { clientSecret: 'wrong' })
  const err = await bad.pull(null, { limit: 10 }).catch((e: unknown) => e)
  expect((err as { code?: string }).code).toBe('Unauthorized')
})

test('a 429 before the batch is sent (masks, address resolution) is reported per op, not thrown', async () => {
  const fresh = w.adapterFor(w.alice, { kinds: ['email'] })
  w.emu.admin.injectFaults({ status: 429, count: 1, retryAfterSeconds: 4 })
  const op = { opId: asOpId('e1'), type: 'create' as const, concordId: asConcordId('e1'), kind: 'email' as const, fields: crmSampleFields('email', 1) }
  const first = await fresh.push([op]) // masks request throttled
  expect(first.rejected.map((r) => r.error instanceof ThrottledError && r.error.retryAfterMs)).toEqual([4000])
  await fresh.getOwnerMasks()
  w.emu.admin.injectFaults({ status: 429, count: 1, retryAfterSeconds: 5 })
  const second = await fresh.push([op]) // address resolution throttled
  expect(second.rejected.map((r) => r.error instanceof ThrottledError && r.error.retryAfterMs)).toEqual([5000])
  expect((await fresh.push([op])).applied).toHaveLength(1)
})
