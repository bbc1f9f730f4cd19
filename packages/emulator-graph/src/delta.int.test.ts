import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import type { GraphEmulator } from './index.js'
import { A, type Client, setup } from './test/helpers.js'

let em: GraphEmulator
let c: Client

beforeAll(async () => {
  ;({ em, c } = await setup())
})
afterAll(async () => {
  await em.close()
})
beforeEach(() => {
  em.control.reset()
})

const inboxDelta = `users/${A}/mailFolders/inbox/messages/delta`

test.each([1, 3, 10, undefined])('initial round with page size %s returns every message once', async (size) => {
  em.control.seed(A, 'message', Array.from({ length: 23 }, (_, i) => ({ subject: `m${i}` })))
  const r = await c.deltaRound(inboxDelta, size)
  expect(r.items).toHaveLength(23)
  expect(new Set(r.items.map((m) => m.id)).size).toBe(23)
  expect(r.pages).toBe(Math.ceil(23 / (size ?? 10)))
  const m = r.items[0]
  expect(m['@odata.type']).toBe('#microsoft.graph.message')
  expect(m['@odata.etag']).toBe(`W/"${m.changeKey}"`)
  expect(r.deltaLink.startsWith(`${em.url}/v1.0/users/`)).toBe(true)
  expect(r.deltaLink).toContain("/mailfolders('")
  expect(r.deltaLink).toContain('/messages/delta?$deltatoken=')
})

test('page envelope, nextLink shape and Preference-Applied', async () => {
  em.control.seed(A, 'message', Array.from({ length: 5 }, (_, i) => ({ subject: `m${i}` })))
  const first = await c.get(inboxDelta, { prefer: 'odata.maxpagesize=2' })
  expect(first.status).toBe(200)
  expect(Object.keys(first.body)).toEqual(['@odata.context', '@odata.nextLink', 'value'])
  expect(first.body['@odata.context']).toBe(`${em.url}/v1.0/$metadata#Collection(message)`)
  expect(first.body['@odata.nextLink']).toMatch(/\/messages\/delta\?\$skiptoken=/)
  expect(first.headers.get('preference-applied')).toContain('odata.track-changes')
  expect(first.headers.get('preference-applied')).toContain('odata.maxpagesize=2')
  expect(first.body.value).toHaveLength(2)
})

test('Prefer odata.maxpagesize is honoured only on the request that sends it', async () => {
  em.control.seed(A, 'message', Array.from({ length: 30 }, (_, i) => ({ subject: `m${i}` })))
  const p1 = await c.get(inboxDelta, { prefer: 'odata.maxpagesize=3' })
  expect(p1.body.value).toHaveLength(3)
  const p2 = await c.get(p1.body['@odata.nextLink'])
  expect(p2.body.value).toHaveLength(10)
  expect(p2.headers.get('preference-applied')).toBe('odata.track-changes')
  const p3 = await c.get(p2.body['@odata.nextLink'], { prefer: 'odata.maxpagesize=5000' })
  expect(p3.body.value).toHaveLength(17)
  expect(p3.headers.get('preference-applied')).toContain('odata.maxpagesize=1000')
  expect(p3.body['@odata.deltaLink']).toBeDefined()
})

test('tracked rounds: updates, deletes and moves-out as @removed; moves-in as items', async () => {
  const [m1, m2, m3] = em.control.seed(A, 'message', [{ subject: 'a' }, { subject: 'b' }, { subject: 'c' }])
  const round1 = await c.deltaRound(inboxDelta)
  expect(round1.items).toHaveLength(3)
  const empty = await c.get(round1.deltaLink)
  expect(empty.body.value).toEqual([])
  const delta1 = empty.body['@odata.deltaLink'] as string
  expect(delta1).not.toBe(round1.deltaLink)

  await c.patch(`users/${A}/messages/${m1?.id}`, { subject: 'a2' })
  await c.del(`users/${A}/messages/${m2?.id}`)
  const moved = await c.post(`users/${A}/messages/${m3?.id}/move`, { destinationId: 'archive' })
  const round2 = await c.deltaRound(delta1)
  const byId = new Map(round2.items.map((x) => [x.id, x]))
  expect(byId.get(m1?.id).subject).toBe('a2')
  expect(byId.get(m2?.id)).toEqual({ '@odata.type': '#microsoft.graph.message', id: m2?.id, '@removed': { reason: 'deleted' } })
  expect(byId.get(m3?.id)['@removed']).toEqual({ reason: 'deleted' })
  expect(round2.items).toHaveLength(3)

  const archive = await c.deltaRound(`users/${A}/mailFolders/archive/messages/delta`)
  expect(archive.items.map((x) => x.id)).toEqual([moved.body.id])
})

test('items created and deleted before the first request never appear; several updates collapse', async () => {
  const [x, y] = em.control.seed(A, 'message', [{ subject: 'x' }, { subject: 'y' }])
  em.control.deleteItem(A, x?.id ?? '')
  const r1 = await c.deltaRound(inboxDelta)
  expect(r1.items.map((i) => i.id)).toEqual([y?.id])
  for (let i = 0; i < 5; i++) em.control.updateItem(A, y?.id ?? '', { subject: `y${i}` })
  const r2 = await c.deltaRound(r1.deltaLink)
  expect(r2.items).toHaveLength(1)
  expect(r2.items[0].subject).toBe('y4')
})

test('$select and changeType are encoded in the token', async () => {
  const [m1] = em.control.seed(A, 'message', [{ subject: 'one', isRead: false }])
  const r1 = await c.deltaRound(`${inboxDelta}?$select=subject&changeType=created`)
  expect(Object.keys(r1.items[0]).sort()).toEqual(['@odata.etag', '@odata.type', 'id', 'subject'])
  em.control.updateItem(A, m1?.id ?? '', { subject: 'one-b' })
  em.control.seed(A, 'message', [{ subject: 'two' }])
  const r2 = await c.deltaRound(r1.deltaLink)
  expect(r2.items.map((i) => i.subject)).toEqual(['two'])
  expect(Object.keys(r2.items[0]).sort()).toEqual(['@odata.etag', '@odata.type', 'id', 'subject'])
})

test('$top caps every round: then an empty page carrying the deltaLink; the rest comes in later rounds', async () => {
  em.control.seed(A, 'message', Array.from({ length: 5 }, (_, i) => ({ subject: `m${i}` })))
  const p1 = await c.get(`${inboxDelta}?$top=2`)
  expect(p1.body.value).toHaveLength(2)
  const p2 = await c.get(p1.body['@odata.nextLink'])
  expect(p2.body.value).toEqual([])
  const r2 = await c.deltaRound(p2.body['@odata.deltaLink'])
  expect(r2.items).toHaveLength(2)
  const r3 = await c.deltaRound(r2.deltaLink)
  expect(r3.items).toHaveLength(1)
  const seen = new Set([...p1.body.value, ...r2.items, ...r3.items].map((m: { subject: string }) => m.subject))
  expect(seen.size).toBe(5)
})

test('immutable ids in delta with the Prefer header; existing links work in both formats', async () => {
  const [m] = em.control.seed(A, 'message', [{ subject: 'imm' }])
  const p1 = await c.get(inboxDelta, { prefer: 'IdType="ImmutableId"' })
  expect(p1.body.value[0].id).toBe(m?.immutableId)
  const p2 = await c.get(p1.body['@odata.deltaLink'])
  expect(p2.status).toBe(200)
  em.control.updateItem(A, m?.id ?? '', { subject: 'imm2' })
  const p3 = await c.get(p2.body['@odata.deltaLink'])
  expect(p3.body.value[0].id).toBe(m?.id)
})

test('evicted generations and expired tokens answer 410 SyncStateNotFound with the documented body', async () => {
  em.control.seed(A, 'message', Array.from({ length: 12 }, (_, i) => ({ subject: `m${i}` })))
  const pages = [await c.get(inboxDelta, { prefer: 'odata.maxpagesize=1' })]
  for (let i = 0; i < 5; i++) pages.push(await c.get(pages[pages.length - 1]?.body['@odata.nextLink'], { prefer: 'odata.maxpagesize=1' }))
  // 6 links issued (generations 1..6); only the newest 4 are kept
  const stale = await c.get(pages[0]?.body['@odata.nextLink'])
  expect(stale.status).toBe(410)
  expect(Object.keys(stale.body.error).sort()).toEqual(['code', 'innerError', 'message'])
  expect(stale.body.error.code).toBe('SyncStateNotFound')
  expect(stale.body.error.message).toBe('The sync state generation is not found; generation=1;[highest=6][6][5][4][3].')
  expect(stale.body.error.innerError['request-id']).toBe(stale.headers.get('request-id'))
  expect(typeof stale.body.error.innerError.date).toBe('string')
  expect(stale.headers.get('location')).toBe(`${em.url}/v1.0/${inboxDelta.replace(A, encodeURIComponent(A)).replace('mailFolders/inbox', `mailfolders('${em.control.containerId(A, 'mailFolder', 'inbox')}')`)}`)
  const newest = await c.get(pages[5]?.body['@odata.nextLink'])
  expect(newest.status).toBe(200)
  const r = await c.deltaRound(newest.body['@odata.nextLink'] ?? newest.body['@odata.deltaLink'])
  em.control.expireDeltaTokens()
  const expired = await c.get(r.deltaLink)
  expect(expired.status).toBe(410)
  expect(expired.body.error.code).toBe('SyncStateNotFound')
  expect(expired.body.error.message).toMatch(/^The sync state generation is not found; generation=\d+;\[highest=-1\]\.$/)
})

test('malformed tokens answer 400 invalidRequest', async () => {
  const bad = await c.get(`${inboxDelta}?$deltatoken=garbage`)
  expect(bad.status).toBe(400)
  expect(bad.body.error.code).toBe('invalidRequest')
  const first = await c.get(inboxDelta)
  const link = first.body['@odata.deltaLink'] as string
  const tampered = link.replace(/\$deltatoken=(.)/, (_m, ch: string) => `$deltatoken=${ch === 'e' ? 'f' : 'e'}`)
  expect((await c.get(tampered)).status).toBe(400)
  // case-insensitive option names
  const upper = link.replace('$deltatoken=', '$deltaToken=')
  expect((await c.get(upper)).status).toBe(200)
})

test('contacts delta (default folder and per folder) and To Do tasks delta', async () => {
  const [ct] = em.control.seed(A, 'contact', [{ displayName: 'C1' }, { displayName: 'C2' }])
  const r1 = await c.deltaRound(`users/${A}/contacts/delta`)
  expect(r1.items.map((x) => x.displayName).sort()).toEqual(['C1', 'C2'])
  expect(r1.items[0]['@odata.type']).toBe('#microsoft.graph.contact')
  await c.del(`users/${A}/contacts/${ct?.id}`)
  const r2 = await c.deltaRound(r1.deltaLink)
  expect(r2.items).toEqual([{ '@odata.type': '#microsoft.graph.contact', id: ct?.id, '@removed': { reason: 'deleted' } }])
  const folderId = em.control.containerId(A, 'contactFolder', 'contacts')
  const r3 = await c.deltaRound(`users/${A}/contactFolders/${folderId}/contacts/delta`)
  expect(r3.items).toHaveLength(1)

  const listId = em.control.containerId(A, 'todoList', 'defaultList')
  const [t1] = em.control.seed(A, 'task', [{ title: 'T1' }, { title: 'T2' }])
  const t = await c.deltaRound(`users/${A}/todo/lists/${listId}/tasks/delta`, 1)
  expect(t.items.map((x) => x.title)).toEqual(['T1', 'T2'])
  expect(t.items[0]['@odata.type']).toBe('#microsoft.graph.todoTask')
  await c.patch(`users/${A}/todo/lists/${listId}/tasks/${t1?.id}`, { status: 'completed' })
  const t2 = await c.deltaRound(t.deltaLink)
  expect(t2.items.map((x) => x.status)).toEqual(['completed'])
})

test('calendarView delta: window required, window encoded, out-of-window changes as @removed', async () => {
  const cv = `users/${A}/calendarView/delta`
  const missing = await c.get(cv)
  expect(missing.status).toBe(400)
  expect(missing.body.error.code).toBe('ErrorInvalidParameter')
  expect((await c.get(`${cv}?startDateTime=2030-01-01T00:00:00Z`)).status).toBe(400)
  const ev = (d: string, subject: string) => ({ subject, start: { dateTime: `${d}T10:00:00`, timeZone: 'UTC' }, end: { dateTime: `${d}T11:00:00`, timeZone: 'UTC' } })
  const [inside, outside, leaving] = em.control.seed(A, 'event', [ev('2030-01-10', 'in'), ev('2031-01-10', 'out'), ev('2030-01-12', 'leaving')])
  const r1 = await c.deltaRound(`${cv}?startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-02-01T00:00:00Z`, 1)
  expect(r1.items.map((x) => x.subject).sort()).toEqual(['in', 'leaving'])
  expect(r1.deltaLink).not.toContain('startDateTime')
  em.control.updateItem(A, outside?.id ?? '', { subject: 'out2' })
  em.control.updateItem(A, leaving?.id ?? '', ev('2032-01-01', 'gone'))
  em.control.updateItem(A, inside?.id ?? '', { subject: 'in2' })
  const r2 = await c.deltaRound(r1.deltaLink)
  const byId = new Map(r2.items.map((x) => [x.id, x]))
  expect(byId.get(inside?.id).subject).toBe('in2')
  expect(byId.get(outside?.id)).toEqual({ '@odata.type': '#microsoft.graph.event', id: outside?.id, '@removed': { reason: 'deleted' } })
  expect(byId.get(leaving?.id)['@removed']).toEqual({ reason: 'deleted' })
})

test('faults: empty pages with a nextLink, random order, duplicate delivery mode', async () => {
  em.control.seed(A, 'message', Array.from({ length: 4 }, (_, i) => ({ subject: `m${i}` })))
  em.control.emptyPages(2)
  const p1 = await c.get(inboxDelta)
  expect(p1.body.value).toEqual([])
  expect(p1.body['@odata.nextLink']).toBeDefined()
  const rest = await c.deltaRound(p1.body['@odata.nextLink'])
  expect(rest.items).toHaveLength(4)
  expect(rest.pages).toBe(2)

  em.control.setShuffle(true)
  const shuffled = await c.deltaRound(inboxDelta, 3)
  expect(new Set(shuffled.items.map((x) => x.id)).size).toBe(4)
  expect(shuffled.items).toHaveLength(4)
  em.control.setShuffle(false)

  em.control.setDuplicates(true)
  const d = await c.deltaRound(inboxDelta, 2)
  expect(d.items.length).toBeGreaterThan(4)
  expect(new Set(d.items.map((x) => x.id)).size).toBe(4)
  const again = await c.get(d.deltaLink)
  expect(again.body.value).toHaveLength(1)
})

test('delta is per folder only; unknown folder is 404', async () => {
  expect((await c.get(`users/${A}/messages/delta`)).status).toBe(400)
  const r = await c.get(`users/${A}/mailFolders/nope/messages/delta`)
  expect(r.status).toBe(404)
  expect(r.body.error.code).toBe('ErrorItemNotFound')
})

test('processing delay: a change becomes visible only one round later', async () => {
  const [m] = em.control.seed(A, 'message', [{ subject: 'p0' }])
  em.control.setProcessingDelay(1)
  const r1 = await c.deltaRound(inboxDelta)
  expect(r1.items).toHaveLength(1)
  em.control.updateItem(A, m?.id ?? '', { subject: 'p1' })
  const r2 = await c.deltaRound(r1.deltaLink)
  expect(r2.items).toEqual([])
  const r3 = await c.deltaRound(r2.deltaLink)
  expect(r3.items.map((x) => x.subject)).toEqual(['p1'])
})

test('$filter=receivedDateTime ge … is encoded in the token; other filters are 400', async () => {
  em.control.seed(A, 'message', [
    { subject: 'old', receivedDateTime: '2020-01-01T00:00:00Z' },
    { subject: 'new', receivedDateTime: '2030-01-01T00:00:00Z' },
  ])
  const r1 = await c.deltaRound(`${inboxDelta}?$filter=receivedDateTime ge 2025-01-01T00:00:00Z`)
  expect(r1.items.map((x) => x.subject)).toEqual(['new'])
  em.control.seed(A, 'message', [{ subject: 'older', receivedDateTime: '2019-01-01T00:00:00Z' }, { subject: 'newer', receivedDateTime: '2031-01-01T00:00:00Z' }])
  const r2 = await c.deltaRound(r1.deltaLink)
  expect(r2.items.map((x) => x.subject)).toEqual(['newer'])
  const bad = await c.get(`${inboxDelta}?$filter=subject eq 'x'`)
  expect(bad.status).toBe(400)
  expect(bad.body.error.code).toBe('invalidRequest')
})

test('the deltaLink that started a round stays usable until the round ends, then is evicted like any generation', async () => {
  em.control.seed(A, 'message', Array.from({ length: 3 }, (_, i) => ({ subject: `m${i}` })))
  const r0 = await c.deltaRound(inboxDelta)
  em.control.seed(A, 'message', Array.from({ length: 8 }, (_, i) => ({ subject: `n${i}` })))
  let page = await c.get(r0.deltaLink, { prefer: 'odata.maxpagesize=1' })
  for (let i = 0; i < 5; i++) page = await c.get(page.body['@odata.nextLink'], { prefer: 'odata.maxpagesize=1' })
  // a crash mid-round: restart the round from the stored deltaLink
  const restarted = await c.deltaRound(r0.deltaLink, 3)
  expect(restarted.items).toHaveLength(8)
  const again = await c.get(r0.deltaLink)
  expect(again.status).toBe(410)
  expect(again.body.error.code).toBe('SyncStateNotFound')
})
