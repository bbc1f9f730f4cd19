import { createServer, type IncomingMessage, type Server } from 'node:http'
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import type { GraphEmulator } from './index.js'
import { A, type Client, getToken, setup } from './test/helpers.js'

let em: GraphEmulator
let c: Client
let receiver: Server
let rx = ''
const received: Record<string, Array<Record<string, unknown>>> = { notify: [], lifecycle: [] }
let failNext = 0

function readAll(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = ''
    req.on('data', (d: Buffer) => (s += d.toString()))
    req.on('end', () => resolve(s))
  })
}

beforeAll(async () => {
  // a generous acknowledgement timeout keeps retries (and so duplicates) out of these tests on slow machines
  ;({ em, c } = await setup({ subscriptions: { ackTimeoutMs: 30_000 } }))
  receiver = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    void readAll(req).then((body) => {
      const token = url.searchParams.get('validationToken')
      if (token !== null) {
        if (url.pathname === '/wrong') {
          res.writeHead(200, { 'content-type': 'text/plain' }).end(encodeURIComponent(token))
        } else {
          res.writeHead(200, { 'content-type': 'text/plain' }).end(token)
        }
        return
      }
      if (url.pathname === '/notify' && failNext > 0) {
        failNext--
        res.writeHead(503).end()
        return
      }
      const key = url.pathname.slice(1)
      for (const v of (JSON.parse(body) as { value: Array<Record<string, unknown>> }).value) (received[key] ??= []).push(v)
      res.writeHead(202).end()
    })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  const addr = receiver.address()
  rx = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`
})
afterAll(async () => {
  await em.close()
  await new Promise((r) => receiver.close(r))
})
beforeEach(() => {
  em.control.reset()
  received['notify'] = []
  received['lifecycle'] = []
})

async function waitFor(key: string, n: number): Promise<Array<Record<string, unknown>>> {
  for (let i = 0; i < 8000 && (received[key]?.length ?? 0) < n; i++) await new Promise((r) => setTimeout(r, 5))
  return received[key] ?? []
}

function sub(extra: Record<string, unknown> = {}) {
  return {
    changeType: 'created,updated,deleted',
    notificationUrl: `${rx}/notify`,
    lifecycleNotificationUrl: `${rx}/lifecycle`,
    resource: `/users/${A}/mailFolders('inbox')/messages`,
    expirationDateTime: new Date(Date.now() + 3600_000).toISOString(),
    clientState: 'secret-state',
    ...extra,
  }
}

test('create with validation handshake, notifications with clientState, renew, delete', async () => {
  const s = await c.post('subscriptions', sub())
  expect(s.status).toBe(201)
  expect(s.body.clientState).toBe('secret-state')
  expect(em.control.deliveries().filter((d) => d.type === 'validation')).toHaveLength(2)
  const m = (await c.post(`users/${A}/mailFolders/inbox/messages`, { subject: 'hi' })).body
  const n = await waitFor('notify', 1)
  expect(n[0]).toMatchObject({
    subscriptionId: s.body.id,
    clientState: 'secret-state',
    changeType: 'created',
    tenantId: em.tenant,
    subscriptionExpirationDateTime: s.body.expirationDateTime,
  })
  expect((n[0]?.['resourceData'] as { id: string }).id).toBe(m.id)
  await c.patch(`users/${A}/messages/${m.id}`, { subject: 'v2' })
  await c.del(`users/${A}/messages/${m.id}`)
  const all = await waitFor('notify', 3)
  expect(all.map((x) => x['changeType']).sort()).toEqual(['created', 'deleted', 'updated'])
  // other folders do not notify this subscription
  await c.post(`users/${A}/mailFolders/sentitems/messages`, { subject: 'elsewhere' })
  const later = new Date(Date.now() + 7200_000).toISOString()
  const renewed = await c.patch(`subscriptions/${s.body.id}`, { expirationDateTime: later })
  expect(renewed.status).toBe(200)
  expect(renewed.body.expirationDateTime).toBe(later)
  expect((await c.post(`subscriptions/${s.body.id}/reauthorize`, {})).status).toBe(200)
  expect((await c.del(`subscriptions/${s.body.id}`)).status).toBe(204)
  expect((await c.get(`subscriptions/${s.body.id}`)).status).toBe(404)
  expect(received['notify']).toHaveLength(3)
})

test('expiration is capped (10080 min; 4230 for To Do tasks)', async () => {
  const far = new Date(Date.now() + 30 * 24 * 3600_000).toISOString()
  const s = await c.post('subscriptions', sub({ expirationDateTime: far }))
  expect(Date.parse(s.body.expirationDateTime) - Date.now()).toBeLessThanOrEqual(10080 * 60_000)
  expect(Date.parse(s.body.expirationDateTime) - Date.now()).toBeGreaterThan(10000 * 60_000)
  const listId = em.control.containerId(A, 'todoList', 'defaultList')
  const t = await c.post('subscriptions', sub({ expirationDateTime: far, resource: `users/${A}/todo/lists/${listId}/tasks` }))
  expect(t.status).toBe(201)
  expect(Date.parse(t.body.expirationDateTime) - Date.now()).toBeLessThanOrEqual(4230 * 60_000)
  const past = await c.post('subscriptions', sub({ expirationDateTime: new Date(Date.now() - 1000).toISOString() }))
  expect(past.status).toBe(400)
})

test('failed handshake, non-loopback http and bad resources are rejected', async () => {
  const wrong = await c.post('subscriptions', sub({ notificationUrl: `${rx}/wrong`, lifecycleNotificationUrl: undefined }))
  expect(wrong.status).toBe(400)
  expect(wrong.body.error.code).toBe('ValidationError')
  const remote = await c.post('subscriptions', sub({ notificationUrl: 'http://example.com/hook' }))
  expect(remote.status).toBe(400)
  const unreachable = await c.post('subscriptions', sub({ notificationUrl: 'http://127.0.0.1:1/hook', lifecycleNotificationUrl: undefined }))
  expect(unreachable.status).toBe(400)
  const badRes = await c.post('subscriptions', sub({ resource: `users/${A}/somethingElse` }))
  expect(badRes.status).toBe(400)
  const badType = await c.post('subscriptions', sub({ changeType: 'created,exploded' }))
  expect(badType.status).toBe(400)
  expect(em.control.subscriptions()).toHaveLength(0)
})

test('lifecycle events go to lifecycleNotificationUrl; subscriptionRemoved deletes it', async () => {
  const s = (await c.post('subscriptions', sub({ resource: `users/${A}/events` }))).body
  expect(em.control.lifecycle(s.id, 'reauthorizationRequired')).toBe(true)
  expect(em.control.lifecycle(s.id, 'missed')).toBe(true)
  expect(em.control.lifecycle(s.id, 'subscriptionRemoved')).toBe(true)
  const l = await waitFor('lifecycle', 3)
  expect(l.map((x) => x['lifecycleEvent']).sort()).toEqual(['missed', 'reauthorizationRequired', 'subscriptionRemoved'])
  expect(l[0]).toMatchObject({ subscriptionId: s.id, clientState: 'secret-state', tenantId: em.tenant })
  expect((await c.get(`subscriptions/${s.id}`)).status).toBe(404)
})

test('drop fault loses notifications (and can announce them as missed); failed deliveries are retried', async () => {
  await c.post('subscriptions', sub())
  em.control.setNotifications({ mode: 'drop', dropCount: 1, missedOnDrop: true })
  await c.post(`users/${A}/mailFolders/inbox/messages`, { subject: 'dropped' })
  const l = await waitFor('lifecycle', 1)
  expect(l[0]?.['lifecycleEvent']).toBe('missed')
  await c.post(`users/${A}/mailFolders/inbox/messages`, { subject: 'delivered' })
  const n = await waitFor('notify', 1)
  expect(n).toHaveLength(1)
  expect(em.control.deliveries().filter((d) => d.dropped)).toHaveLength(1)
  failNext = 1
  await c.post(`users/${A}/mailFolders/inbox/messages`, { subject: 'retried' })
  const n2 = await waitFor('notify', 2)
  expect(n2).toHaveLength(2)
  expect(em.control.deliveries().some((d) => d.type === 'notification' && d.status === 503)).toBe(true)
})

test('immutable ids in notifications when the subscription was created with the Prefer header', async () => {
  await c.post('subscriptions', sub(), { prefer: 'IdType="ImmutableId"' })
  const [m] = em.control.seed(A, 'message', [{ subject: 'seeded' }])
  const n = await waitFor('notify', 1)
  expect((n[0]?.['resourceData'] as { id: string }).id).toBe(m?.immutableId)
})

test('delay mode still delivers, later; expired subscriptions stop notifying', async () => {
  const s = (await c.post('subscriptions', sub())).body
  em.control.setNotifications({ mode: 'delay', delayMs: 50 })
  await c.post(`users/${A}/mailFolders/inbox/messages`, { subject: 'delayed' })
  const n = await waitFor('notify', 1)
  expect(n).toHaveLength(1)
  em.control.setNotifications({ mode: 'deliver' })
  em.control.advanceClock(2 * 3600_000)
  c.token = await getToken(em)
  const late = (await c.post(`users/${A}/mailFolders/inbox/messages`, { subject: 'after expiry' })).body
  expect((await c.get(`subscriptions/${s.id}`)).status).toBe(404)
  expect(em.control.subscriptions()).toEqual([])
  expect((received['notify'] ?? []).map((x) => (x['resourceData'] as { id: string }).id)).not.toContain(late.id)
})
