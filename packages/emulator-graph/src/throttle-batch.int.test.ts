import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import type { GraphEmulator } from './index.js'
import { A, B, type Client, setup } from './test/helpers.js'

let em: GraphEmulator
let c: Client

beforeAll(async () => {
  ;({ em, c } = await setup({ throttle: { requestsPerWindow: 5, windowMs: 60_000, concurrentRequests: 4 } }))
})
afterAll(async () => {
  await em.close()
})
beforeEach(() => {
  em.control.reset()
  em.control.setThrottle({ requestsPerWindow: 5, windowMs: 60_000, concurrentRequests: 4 })
})

test('request budget per app + mailbox: 429 with Retry-After and the documented body', async () => {
  for (let i = 0; i < 5; i++) expect((await c.get(`users/${A}/mailFolders/inbox`)).status).toBe(200)
  const r = await c.get(`users/${A}/mailFolders/inbox`)
  expect(r.status).toBe(429)
  const retryAfter = Number(r.headers.get('retry-after'))
  expect(retryAfter).toBeGreaterThan(0)
  expect(retryAfter).toBeLessThanOrEqual(60)
  expect(r.body.error.code).toBe('TooManyRequests')
  expect(r.body.error.message).toBe('Please retry again later.')
  expect(r.body.error.innerError).toMatchObject({ code: '429', message: 'Please retry after', status: '429' })
  expect(r.body.error.innerError['request-id']).toBe(r.headers.get('request-id'))
  // another mailbox is not affected
  expect((await c.get(`users/${B}/mailFolders/inbox`)).status).toBe(200)
  // after the window the budget is back
  em.control.advanceClock(61_000)
  expect((await c.get(`users/${A}/mailFolders/inbox`)).status).toBe(200)
  expect(em.control.stats().mailboxes[A]?.throttled).toBe(1)
})

test('at most 4 concurrent requests per app + mailbox', async () => {
  em.control.setThrottle({ requestsPerWindow: 1000 })
  em.control.holdRequests()
  const slow = Array.from({ length: 4 }, () => c.get(`users/${A}/mailFolders/inbox`))
  // wait (bounded by count, not time) until the emulator sees 4 in flight
  for (let i = 0; i < 10_000 && em.control.stats().mailboxes[A]?.inFlight !== 4; i++) await new Promise((r) => setTimeout(r, 5))
  expect(em.control.stats().mailboxes[A]?.inFlight).toBe(4)
  const fifth = await c.get(`users/${A}/mailFolders/inbox`)
  expect(fifth.status).toBe(429)
  expect(fifth.body.error.code).toBe('ApplicationThrottled')
  expect(fifth.headers.get('retry-after')).toBeDefined()
  em.control.releaseRequests()
  const results = await Promise.all(slow)
  expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200])
  expect(em.control.stats().mailboxes[A]?.maxInFlight).toBe(4)
})

test('forced 429 / 503 bursts for the next N requests', async () => {
  em.control.setThrottle({ requestsPerWindow: 1000 })
  em.control.failNext({ status: 503, count: 2, retryAfterSeconds: 2.5 })
  const r1 = await c.get(`users/${A}/mailFolders/inbox`)
  expect(r1.status).toBe(503)
  expect(r1.headers.get('retry-after')).toBe('2.5')
  expect((await c.get(`users/${A}/mailFolders/inbox`)).status).toBe(503)
  expect((await c.get(`users/${A}/mailFolders/inbox`)).status).toBe(200)
  em.control.failNext({ status: 429, count: 1, mailbox: B })
  expect((await c.get(`users/${A}/mailFolders/inbox`)).status).toBe(200)
  const t = await c.get(`users/${B}/mailFolders/inbox`)
  expect(t.status).toBe(429)
  expect(t.body.error.code).toBe('TooManyRequests')
})

test('$batch: responses per id, dependsOn sequencing and 424 for dependants of a failure', async () => {
  em.control.setThrottle({ requestsPerWindow: 1000 })
  const r = await c.post('$batch', {
    requests: [
      { id: '1', method: 'POST', url: `/users/${A}/messages`, headers: { 'Content-Type': 'application/json' }, body: { subject: 'batched' } },
      { id: '2', method: 'GET', url: `/users/${A}/mailFolders/drafts/messages?$select=subject`, dependsOn: ['1'] },
      { id: '3', method: 'GET', url: `/users/${A}/messages/does-not-exist` },
      { id: '4', method: 'GET', url: `/users/${A}/mailFolders/inbox`, dependsOn: ['3'] },
      { id: '5', method: 'GET', url: `/users/${A}/mailFolders/inbox`, dependsOn: ['4'] },
    ],
  })
  expect(r.status).toBe(200)
  const byId = new Map(r.body.responses.map((x: { id: string }) => [x.id, x]))
  expect((byId.get('1') as { status: number }).status).toBe(201)
  const two = byId.get('2') as { status: number; body: { value: Array<{ subject: string }> } }
  expect(two.status).toBe(200)
  expect(two.body.value.map((m) => m.subject)).toContain('batched')
  expect((byId.get('3') as { status: number; body: { error: { code: string } } }).body.error.code).toBe('ErrorItemNotFound')
  expect((byId.get('4') as { status: number }).status).toBe(424)
  expect((byId.get('5') as { status: number }).status).toBe(424)
})

test('$batch: 21 requests, duplicate ids, missing Content-Type and malformed payloads are 400 for the whole batch', async () => {
  const many = Array.from({ length: 21 }, (_, i) => ({ id: String(i), method: 'GET', url: `/users/${A}/mailFolders/inbox` }))
  const r21 = await c.post('$batch', { requests: many })
  expect(r21.status).toBe(400)
  expect(r21.body.error.code).toBe('BadRequest')
  expect(r21.body.error.message).toContain('20')
  const r20 = await c.post('$batch', { requests: many.slice(0, 20) })
  expect(r20.status).toBe(200)
  const dup = await c.post('$batch', { requests: [{ id: 'a', method: 'GET', url: `/users/${A}` }, { id: 'A', method: 'GET', url: `/users/${A}` }] })
  expect(dup.status).toBe(400)
  expect(dup.body.error.message).toContain('duplicate')
  const noCt = await c.post('$batch', { requests: [{ id: '1', method: 'POST', url: `/users/${A}/messages`, body: { subject: 'x' } }] })
  expect(noCt.status).toBe(400)
  expect((await c.post('$batch', '{"requests": [')).status).toBe(400)
  expect((await c.post('$batch', { requests: [{ id: '1', method: 'GET', url: '/x', dependsOn: ['nope'] }] })).status).toBe(400)
})

test('$batch: each sub-request is throttled on its own with its own Retry-After', async () => {
  const reqs = Array.from({ length: 8 }, (_, i) => ({ id: String(i + 1), method: 'GET', url: `/users/${A}/mailFolders/inbox`, dependsOn: i === 0 ? undefined : [String(i)] }))
  const clean = reqs.map(({ dependsOn, ...rest }) => (dependsOn ? { ...rest, dependsOn } : rest))
  const r = await c.post('$batch', { requests: clean })
  expect(r.status).toBe(200)
  const statuses = r.body.responses.map((x: { status: number }) => x.status)
  expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200])
  expect(statuses[5]).toBe(429)
  expect(r.body.responses[5].headers['retry-after']).toBeDefined()
  expect(statuses.slice(6)).toEqual([424, 424])
  // unauthenticated batch is rejected as a whole
  const anon = await fetch(`${em.url}/v1.0/$batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ requests: [] }) })
  expect(anon.status).toBe(401)
})

test('upload budget: writes are throttled while reads still succeed', async () => {
  em.control.setThrottle({ requestsPerWindow: 1000, uploadBytesPerWindow: 2000, uploadWindowMs: 300_000 })
  const body = { subject: 'u', body: { contentType: 'text', content: 'x'.repeat(1500) } }
  expect((await c.post(`users/${A}/messages`, body)).status).toBe(201)
  const second = await c.post(`users/${A}/messages`, body)
  expect(second.status).toBe(429)
  expect(second.body.error.code).toBe('TooManyRequests')
  expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(0)
  expect((await c.get(`users/${A}/mailFolders/drafts/messages`)).status).toBe(200)
  em.control.advanceClock(300_001)
  expect((await c.post(`users/${A}/messages`, body)).status).toBe(201)
})
