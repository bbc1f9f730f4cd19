import { afterAll, beforeAll, expect, test } from 'vitest'
import type { GraphEmulator } from './index.js'
import { A, type Client, setup } from './test/helpers.js'

let em: GraphEmulator
let c: Client

beforeAll(async () => {
  ;({ em, c } = await setup({ bodyLimitBytes: 64 * 1024 }))
})
afterAll(async () => {
  await em.close()
})

test('malformed JSON is 400 BadRequest with the Graph envelope', async () => {
  const r = await c.post(`users/${A}/messages`, '{"subject": ')
  expect(r.status).toBe(400)
  expect(r.body.error.code).toBe('BadRequest')
  expect(r.body.error.innerError['request-id']).toBeDefined()
})

test('unknown properties and wrong types are 400 RequestBodyRead naming the field', async () => {
  const unknown = await c.post(`users/${A}/messages`, { subject: 'x', fooBar: 1 })
  expect(unknown.status).toBe(400)
  expect(unknown.body.error.code).toBe('RequestBodyRead')
  expect(unknown.body.error.message).toContain("'fooBar'")
  const wrongType = await c.post(`users/${A}/messages`, { subject: 'x', isRead: 'true' })
  expect(wrongType.status).toBe(400)
  expect(wrongType.body.error.message).toContain("'isRead'")
  expect(wrongType.body.error.message).toContain('"true"')
  const notObject = await c.post(`users/${A}/messages`, [1, 2])
  expect(notObject.status).toBe(400)
  const empty = await c.req('POST', `users/${A}/mailFolders`, undefined)
  expect(empty.status).toBe(400)
})

test('read-only and annotation members are accepted and ignored', async () => {
  const r = await c.post(`users/${A}/messages`, { '@odata.type': '#microsoft.graph.message', id: 'ignored', changeKey: 'x', subject: 'ok' })
  expect(r.status).toBe(201)
  expect(r.body.id).not.toBe('ignored')
})

test('bad query options, unknown segments and methods are Graph-style errors', async () => {
  expect((await c.get(`users/${A}/messages?$top=abc`)).status).toBe(400)
  const filter = await c.get(`users/${A}/messages?$filter=subject eq 'unterminated`)
  expect(filter.status).toBe(400)
  expect(filter.body.error.message).toContain('filter')
  const seg = await c.get(`users/${A}/nonsense`)
  expect(seg.status).toBe(400)
  expect(seg.body.error.code).toBe('BadRequest')
  expect((await c.req('PUT', `users/${A}/messages`, {})).status).toBe(405)
  const version = await c.get(`${em.url}/v2.0/users`)
  expect(version.status).toBe(400)
  expect(version.body.error.code).toBe('BadRequest')
})

test('oversize bodies are 413 and the server keeps serving', async () => {
  const big = await c.post(`users/${A}/messages`, { subject: 'x', body: { contentType: 'text', content: 'a'.repeat(100_000) } })
  expect(big.status).toBe(413)
  expect(big.body.error.code).toBe('RequestEntityTooLarge')
  expect((await c.get(`users/${A}/mailFolders/inbox`)).status).toBe(200)
})

test('admin API validates its input', async () => {
  const r = await fetch(`${em.url}/_emulator/faults`, { method: 'POST', body: JSON.stringify({ status: 418 }), headers: { 'content-type': 'application/json' } })
  expect(r.status).toBe(400)
  const seed = await fetch(`${em.url}/_emulator/mailboxes/${A}/messages`, { method: 'POST', body: JSON.stringify({ items: [{ isRead: 'no' }] }), headers: { 'content-type': 'application/json' } })
  expect(seed.status).toBe(400)
  expect(((await seed.json()) as { error: { message: string } }).error.message).toContain('isRead')
  const unknown = await fetch(`${em.url}/_emulator/mailboxes/nobody@x.test/messages`, { method: 'POST', body: JSON.stringify({ items: [{}] }), headers: { 'content-type': 'application/json' } })
  expect(unknown.status).toBe(404)
  const stats = (await (await fetch(`${em.url}/_emulator/stats`)).json()) as { mailboxes: Record<string, { requests: number }> }
  expect(stats.mailboxes[A]?.requests).toBeGreaterThan(0)
})
