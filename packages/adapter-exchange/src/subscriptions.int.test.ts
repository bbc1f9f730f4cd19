/** Change notifications against the emulator: handshake, delivery, clientState, lost notifications, lifecycle events. */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ValidationError } from '@concord/engine'
import { latestByNativeId, pullAll } from '@concord/engine/testing'
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import type { ExchangeAdapter } from './adapter.js'
import { validationTokenOf, type NotificationResult } from './subscriptions.js'
import { exchangeSampleFields, startEmulatorEnv, UPN, type EmulatorEnv } from './test/emulator-env.js'

const CLIENT_STATE = 'concord-secret-0123456789abcdef'
let env: EmulatorEnv
let server: Server
let webhook: string
let adapter: ExchangeAdapter
const received: NotificationResult[] = []
let waiters: Array<() => void> = []

/** Resolves once `predicate` holds for the notifications received so far (bounded by the test timeout). */
function waitFor(predicate: (all: NotificationResult[]) => boolean): Promise<void> {
  if (predicate(received)) return Promise.resolve()
  return new Promise((resolve) => {
    const check = () => {
      if (predicate(received)) {
        waiters = waiters.filter((w) => w !== check)
        resolve()
      }
    }
    waiters.push(check)
  })
}

beforeAll(async () => {
  env = await startEmulatorEnv()
  server = createServer((req, res) => {
    const token = validationTokenOf(req.url ?? '')
    if (token !== undefined) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(token)
      return
    }
    let raw = ''
    req.on('data', (c: Buffer) => (raw += c.toString('utf8')))
    req.on('end', () => {
      res.writeHead(202).end()
      void adapter.handleNotification(JSON.parse(raw) as unknown).catch(() => undefined)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  webhook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graph-hook?mailbox=alice`
})
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
  await env.close()
})
beforeEach(() => {
  env.em.control.reset()
  received.length = 0
  adapter = env.adapter({ kinds: ['contact', 'email'], mailFolders: ['inbox'] })
  adapter.onNotification((r) => {
    received.push(r)
    for (const w of [...waiters]) w()
  })
})

test('subscriptions pass the validation handshake, and a change notifies which kind changed', async () => {
  await adapter.createSubscriptions(webhook, CLIENT_STATE)
  expect(adapter.subscriptions.active().map((s) => s.kind).sort()).toEqual(['contact', 'email'])
  await env.remote.create('contact', exchangeSampleFields('contact', 1))
  await waitFor((all) => all.some((r) => r.changedKinds.includes('contact')))
  expect(received.flatMap((r) => r.changes).some((c) => c.kind === 'contact' && c.changeType === 'created')).toBe(true)
})

test('a notification with the wrong clientState is rejected, a malformed body is a ValidationError', async () => {
  await adapter.createSubscriptions(webhook, CLIENT_STATE)
  const sub = adapter.subscriptions.active()[0]!
  const forged = await adapter.handleNotification({ value: [{ subscriptionId: sub.id, clientState: 'guess', changeType: 'created', resource: 'x' }] })
  expect(forged.rejected).toBe(1)
  expect(forged.changedKinds).toEqual([])
  await expect(adapter.handleNotification({ value: 'nope' })).rejects.toBeInstanceOf(ValidationError)
})

test('a lost notification (missed) requests a delta pull, which recovers the change', async () => {
  await adapter.createSubscriptions(webhook, CLIENT_STATE)
  const first = await pullAll(adapter, null)
  env.em.control.setNotifications({ mode: 'drop', dropCount: 1, missedOnDrop: true })
  const nativeId = await env.remote.create('contact', exchangeSampleFields('contact', 5))
  await waitFor((all) => all.some((r) => r.pullRequested))
  expect(received.some((r) => r.changedKinds.includes('contact'))).toBe(false)
  expect(adapter.subscriptions.takePullRequest()).toBe(true)
  const recovered = await pullAll(adapter, first.cursor)
  expect(latestByNativeId(recovered.changes).get(nativeId)?.type).toBe('upsert')
})

test('subscriptionRemoved re-creates the subscription and requests a pull; renew extends the rest', async () => {
  await adapter.createSubscriptions(webhook, CLIENT_STATE)
  const before = adapter.subscriptions.active()
  const removed = before.find((s) => s.kind === 'contact')!
  env.em.control.lifecycle(removed.id, 'subscriptionRemoved')
  await waitFor((all) => all.some((r) => r.lifecycle.some((l) => l.event === 'subscriptionRemoved')))
  const after = adapter.subscriptions.active()
  expect(after.some((s) => s.id === removed.id)).toBe(false)
  expect(after.filter((s) => s.kind === 'contact')).toHaveLength(1)
  expect(adapter.subscriptions.takePullRequest()).toBe(true)
  expect(env.em.control.subscriptions()).toHaveLength(2)
  // Pretend four days passed: every subscription is within a day of expiry and gets renewed.
  expect(await adapter.renewSubscriptions(Date.now() + 4 * 86_400_000)).toBe(2)
  // A change after re-creation is notified again.
  await env.remote.create('contact', exchangeSampleFields('contact', 9))
  await waitFor((all) => all.some((r) => r.changedKinds.includes('contact')))
  expect(env.em.control.count(UPN, 'contact')).toBe(1)
})

test('reauthorizationRequired reauthorizes; when Graph no longer knows the subscription it is re-created and a pull requested', async () => {
  await adapter.createSubscriptions(webhook, CLIENT_STATE)
  const contact = adapter.subscriptions.active().find((s) => s.kind === 'contact')!
  const ok = await adapter.handleNotification({ value: [{ subscriptionId: contact.id, clientState: CLIENT_STATE, lifecycleEvent: 'reauthorizationRequired' }] })
  expect(ok.lifecycle).toEqual([{ subscriptionId: contact.id, event: 'reauthorizationRequired' }])
  expect(ok.pullRequested).toBe(false)
  expect(adapter.subscriptions.active().some((s) => s.id === contact.id)).toBe(true)
  // The subscription disappears on the service side; the next reauthorizationRequired falls back to renew → re-create.
  env.em.control.lifecycle(contact.id, 'subscriptionRemoved')
  await waitFor((all) => all.some((r) => r.lifecycle.some((l) => l.event === 'subscriptionRemoved')))
  const recreated = adapter.subscriptions.active().find((s) => s.kind === 'contact')!
  adapter.subscriptions.takePullRequest()
  const gone = recreated.id
  await fetchDelete(gone)
  const r = await adapter.handleNotification({ value: [{ subscriptionId: gone, clientState: CLIENT_STATE, lifecycleEvent: 'reauthorizationRequired' }] })
  expect(r.pullRequested).toBe(true)
  const now = adapter.subscriptions.active().filter((s) => s.kind === 'contact')
  expect(now).toHaveLength(1)
  expect(now[0]!.id).not.toBe(gone)
  expect(env.em.control.subscriptions().map((s) => s['id'])).toContain(now[0]!.id)
})

/** Deletes a subscription on the service side only (as an administrator or an expiry would). */
async function fetchDelete(id: string): Promise<void> {
  const res = await adapter.http.send('DELETE', `/subscriptions/${encodeURIComponent(id)}`)
  expect(res.status).toBe(204)
}
