/**
 * The official JS SDK (@microsoft/microsoft-graph-client 3.0.7, resolved from the workspace root) against
 * the emulator over https with a self-signed certificate. This test file runs in its own worker, where
 * certificate verification is turned off for the SDK's global fetch.
 */
import { Client, GraphError, PageIterator } from '@microsoft/microsoft-graph-client'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { startGraphEmulator, type GraphEmulator } from './index.js'
import { A, getToken } from './test/helpers.js'

let em: GraphEmulator
let client: Client
const previous = process.env['NODE_TLS_REJECT_UNAUTHORIZED']

beforeAll(async () => {
  process.env['NODE_TLS_REJECT_UNAUTHORIZED'] = '0'
  em = await startGraphEmulator({ mailboxes: [A], https: true })
  const token = await getToken(em)
  client = Client.initWithMiddleware({
    authProvider: { getAccessToken: async () => token },
    baseUrl: `${em.url}/`,
    customHosts: new Set(['127.0.0.1']),
  })
})
afterAll(async () => {
  await em.close()
  if (previous === undefined) delete process.env['NODE_TLS_REJECT_UNAUTHORIZED']
  else process.env['NODE_TLS_REJECT_UNAUTHORIZED'] = previous
})

test('SDK attaches the token, creates and reads items', async () => {
  expect(em.url.startsWith('https://127.0.0.1:')).toBe(true)
  const created = (await client.api(`/users/${A}/mailFolders/inbox/messages`).post({ subject: 'from sdk' })) as { id: string; subject: string }
  expect(created.subject).toBe('from sdk')
  const got = (await client.api(`/users/${A}/messages/${created.id}`).select('subject').get()) as { subject: string }
  expect(got.subject).toBe('from sdk')
})

test('SDK PageIterator follows absolute nextLinks to the deltaLink', async () => {
  em.control.seed(A, 'message', Array.from({ length: 7 }, (_, i) => ({ subject: `p${i}` })))
  const headers = { prefer: 'odata.maxpagesize=2' }
  const first = (await client.api(`/users/${A}/mailFolders/inbox/messages/delta`).headers(headers).get()) as Record<string, unknown>
  const seen: string[] = []
  const it = new PageIterator(client, first as never, (m: { id: string }) => {
    seen.push(m.id)
    return true
  }, { headers })
  await it.iterate()
  expect(it.isComplete()).toBe(true)
  expect(new Set(seen).size).toBe(8)
  const deltaLink = it.getDeltaLink()
  expect(deltaLink).toContain('$deltatoken=')
  const next = (await client.api(deltaLink as string).get()) as { value: unknown[] }
  expect(next.value).toEqual([])
})

test('SDK surfaces Graph errors with code and requestId, and retries 429 with Retry-After', async () => {
  try {
    await client.api(`/users/${A}/messages/AAMkAnope`).get()
    expect.unreachable()
  } catch (err) {
    expect(err).toBeInstanceOf(GraphError)
    const e = err as GraphError
    expect(e.statusCode).toBe(404)
    expect(e.code).toBe('ErrorItemNotFound')
    expect(e.requestId).toMatch(/^[0-9a-f-]{36}$/)
  }
  em.control.failNext({ status: 429, count: 1, retryAfterSeconds: 0.01 })
  const folder = (await client.api(`/users/${A}/mailFolders/inbox`).get()) as { displayName: string }
  expect(folder.displayName).toBe('Inbox')
  const log = em.control.requestLog().filter((r) => r.path.endsWith('mailFolders/inbox'))
  expect(log.map((r) => r.status).slice(-2)).toEqual([429, 200])
})
