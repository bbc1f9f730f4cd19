/** Subscription state across a restart: snapshot → new adapter → restore, against the emulator over HTTPS. */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ValidationError } from '@concord/engine'
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import type { ExchangeAdapter } from './adapter.js'
import { SubscriptionStateSchema, validationTokenOf, type NotificationResult, type SubscriptionState } from './subscriptions.js'
import { exchangeSampleFields, startEmulatorEnv, type EmulatorEnv } from './test/emulator-env.js'

const CLIENT_STATE = 'concord-secret-0123456789abcdef'
let env: EmulatorEnv
let server: Server
let webhook: string
/** The adapter the webhook hands notifications to (the "running process"). */
let current: ExchangeAdapter | undefined
const received: NotificationResult[] = []
let waiters: Array<() => void> = []

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

function start(): ExchangeAdapter {
  const a = env.adapter({ kinds: ['contact', 'email'], mailFolders: ['inbox'] })
  a.onNotification((r) => {
    received.push(r)
    for (const w of [...waiters]) w()
  })
  current = a
  return a
}

/** Subscriptions the service knows (GET /subscriptions drops expired ones first). */
async function serviceIds(a: ExchangeAdapter): Promise<string[]> {
  const res = await a.http.send('GET', '/subscriptions')
  expect(res.status).toBe(200)
  return (res.body as { value: Array<{ id: string }> }).value.map((s) => s.id).sort()
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
      void current?.handleNotification(JSON.parse(raw) as unknown).then(
        (r) => {
          if (r.rejected > 0) {
            received.push(r)
            for (const w of [...waiters]) w()
          }
        },
        () => undefined,
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  webhook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graph-hook`
})
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
  await env.close()
})
beforeEach(() => {
  env.em.control.reset()
  received.length = 0
  current = undefined
})

test('snapshot holds no secret; a restarted adapter adopts the subscriptions and accepts their notifications', async () => {
  const first = start()
  // What a server would write to its database on every state change.
  let persisted: string | undefined
  first.subscriptions.onStateChange((state) => (persisted = JSON.stringify(state)))
  await first.createSubscriptions(webhook, CLIENT_STATE)
  const ids = first.subscriptions.active().map((s) => s.id).sort()
  const snap = first.snapshotSubscriptions()
  expect(persisted).toBeDefined()
  const stored = JSON.parse(persisted!) as unknown // as it comes back from the database
  expect({ ...(stored as SubscriptionState), savedAt: snap.savedAt }).toEqual(snap)
  expect(JSON.stringify(snap)).not.toContain(CLIENT_STATE)
  expect(snap.clientStateHash).toMatch(/^sha256:[0-9a-f]{64}$/)
  expect({ ...SubscriptionStateSchema.parse(stored), savedAt: snap.savedAt }).toEqual(snap)
  await first.close()

  const second = start()
  const changes: SubscriptionState[] = []
  second.subscriptions.onStateChange((state) => changes.push(state))
  const report = await second.restoreSubscriptions(stored, { notificationUrl: webhook, clientState: CLIENT_STATE })
  expect(changes.map((c) => c.subscriptions.map((x) => x.id).sort())).toEqual([ids])
  expect(report.adopted.sort()).toEqual(ids)
  expect(report).toMatchObject({ renewed: [], created: [], deleted: [], pullRequested: false })
  expect(second.subscriptions.active().map((s) => s.id).sort()).toEqual(ids)
  expect(second.subscriptions.takePullRequest()).toBe(false)
  // No duplicates on the service.
  expect(env.em.control.subscriptions().map((s) => s['id']).sort()).toEqual(ids)

  await env.remote.create('contact', exchangeSampleFields('contact', 1))
  await waitFor((all) => all.some((r) => r.changedKinds.includes('contact')))
  expect(received.every((r) => r.rejected === 0)).toBe(true)
  // A forged clientState is still refused by the restored manager.
  const forged = await second.handleNotification({ value: [{ subscriptionId: ids[0]!, clientState: 'x'.repeat(31), changeType: 'created', resource: 'r' }] })
  expect(forged.rejected).toBe(1)
})

test('restore renews subscriptions about to expire', async () => {
  const first = start()
  await first.createSubscriptions(webhook, CLIENT_STATE)
  const before = new Map(first.subscriptions.active().map((s) => [s.id, s.expirationDateTime]))
  const snap = first.snapshotSubscriptions()
  await first.close()
  const second = start()
  // Everything expires within 8 days, so everything is renewed (PATCH) rather than re-created.
  const report = await second.restoreSubscriptions(snap, { notificationUrl: webhook, clientState: CLIENT_STATE, renewWithinMs: 8 * 86_400_000, options: { expirationMinutes: 4230 } })
  expect(report.renewed.sort()).toEqual([...before.keys()].sort())
  expect(report.created).toEqual([])
  for (const s of second.subscriptions.active()) expect(Date.parse(s.expirationDateTime)).toBeGreaterThan(Date.parse(before.get(s.id)!))
  expect(await serviceIds(second)).toEqual([...before.keys()].sort())
})

test('an expired and a deleted subscription are re-created, a pull is requested, nothing is duplicated', async () => {
  const first = start()
  await first.createSubscriptions(webhook, CLIENT_STATE)
  const snap = first.snapshotSubscriptions()
  const contact = snap.subscriptions.find((s) => s.kind === 'contact')!
  const email = snap.subscriptions.find((s) => s.kind === 'email')!
  // While the process was down: Graph deleted the contact subscription, and the email one expired
  // (the snapshot says so, and Graph removed it).
  expect((await first.http.send('DELETE', `/subscriptions/${contact.id}`)).status).toBe(204)
  expect((await first.http.send('DELETE', `/subscriptions/${email.id}`)).status).toBe(204)
  const stale: SubscriptionState = {
    ...snap,
    subscriptions: snap.subscriptions.map((s) => (s.id === email.id ? { ...s, expirationDateTime: new Date(Date.now() - 60_000).toISOString() } : s)),
  }
  await first.close()

  const second = start()
  const report = await second.restoreSubscriptions(stale, { notificationUrl: webhook, clientState: CLIENT_STATE })
  expect(report.adopted).toEqual([])
  expect(report.created).toHaveLength(2)
  expect(report.pullRequested).toBe(true)
  expect(second.subscriptions.takePullRequest()).toBe(true)
  const active = second.subscriptions.active()
  expect(active.map((s) => s.kind).sort()).toEqual(['contact', 'email'])
  expect(active.map((s) => s.id)).not.toContain(contact.id)
  expect(await serviceIds(second)).toEqual(active.map((s) => s.id).sort())
  expect(env.em.control.subscriptions()).toHaveLength(2)
  await env.remote.create('contact', exchangeSampleFields('contact', 2))
  await waitFor((all) => all.some((r) => r.changedKinds.includes('contact')))
})

test('a changed clientState replaces the old subscriptions instead of orphaning them', async () => {
  const first = start()
  await first.createSubscriptions(webhook, CLIENT_STATE)
  const snap = first.snapshotSubscriptions()
  await first.close()
  const second = start()
  const rotated = 'rotated-secret-abcdefghijklmnop'
  const report = await second.restoreSubscriptions(snap, { notificationUrl: webhook, clientState: rotated })
  expect(report.deleted.sort()).toEqual(snap.subscriptions.map((s) => s.id).sort())
  expect(report.created).toHaveLength(2)
  expect(report.pullRequested).toBe(true)
  const ids = await serviceIds(second)
  expect(ids).toEqual(second.subscriptions.active().map((s) => s.id).sort())
  expect(env.em.control.subscriptions().every((s) => s['clientState'] === rotated)).toBe(true)
  await env.remote.create('contact', exchangeSampleFields('contact', 3))
  await waitFor((all) => all.some((r) => r.changedKinds.includes('contact')))
  expect(received.every((r) => r.rejected === 0)).toBe(true)
})

test('bad snapshots are ValidationErrors naming the field; snapshot before create is refused', async () => {
  const a = start()
  expect(() => a.snapshotSubscriptions()).toThrow(ValidationError)
  await expect(a.restoreSubscriptions({ version: 2 }, { notificationUrl: webhook, clientState: CLIENT_STATE })).rejects.toThrow(/version/)
  const good: SubscriptionState = {
    version: 1,
    user: 'users/someone-else@contoso.test',
    notificationUrl: webhook,
    clientStateHash: `sha256:${'0'.repeat(64)}`,
    options: {},
    subscriptions: [],
    savedAt: new Date().toISOString(),
  }
  await expect(a.restoreSubscriptions(good, { notificationUrl: webhook, clientState: CLIENT_STATE })).rejects.toThrow(/user: it belongs to/)
  await expect(a.restoreSubscriptions({ ...good, clientStateHash: CLIENT_STATE }, { notificationUrl: webhook, clientState: CLIENT_STATE })).rejects.toThrow(/clientStateHash/)
  await expect(a.restoreSubscriptions({ ...good, subscriptions: [{ id: 'x', resource: 'r', kind: 'fax', expirationDateTime: 'soon' }] }, { notificationUrl: webhook, clientState: CLIENT_STATE })).rejects.toBeInstanceOf(ValidationError)
  expect(env.em.control.subscriptions()).toHaveLength(0)
})
