import type { AddressInfo } from 'node:net'
import { sampleFields } from '@concord/engine/testing'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { WebSocketServer } from 'ws'
import { OutlookProtocolError } from './errors.js'
import { OutlookSyncClient } from './sync-client.js'
import { RECONNECT_TIMER, SYNC_TIMER, type TestServer, makeClient, startServer } from './test/fixtures.js'
import { openMemoryLocalReplica } from './open.js'

let server: TestServer
beforeAll(async () => {
  server = await startServer({ minIntervalMinutes: 5 })
})
afterAll(async () => {
  await server.close()
})

test('schedule: 15 minutes by default, the personal interval (not below the admin minimum), timers re-armed after each run', async () => {
  const c = await makeClient(server.url, 'tok-alice', 'sched-laptop')
  await c.client.start()
  expect(c.timers.delays()).toEqual([15 * 60_000])
  await expect(c.client.setInterval(2)).rejects.toMatchObject({ code: 'bad_request' })
  expect(await c.client.setInterval(30)).toBe(30)
  expect(c.timers.delays()).toEqual([30 * 60_000])
  server.crm.remoteFor('alice').create('contact', sampleFields('contact', 3), undefined, { ownerId: 'alice' })
  const synced = c.next('synced')
  expect(c.timers.fire(SYNC_TIMER)).toBe(1)
  expect((await synced).summary.pushed.mailbox).toBe(1)
  for (let i = 0; i < 100 && c.timers.delays().length === 0; i++) await new Promise((resolve) => setImmediate(resolve))
  expect(c.timers.delays()).toEqual([30 * 60_000])
  await c.client.stop()
  expect(c.timers.delays()).toEqual([])
})

test('reconnect backoff doubles with jitter up to the cap, and resets after a handshake', async () => {
  const probe = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => probe.once('listening', () => resolve()))
  const port = (probe.address() as AddressInfo).port
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  const c = await makeClient(`ws://127.0.0.1:${port}`, 'tok-alice', 'backoff-laptop', { backoff: { initialMs: 100, maxMs: 1000, jitter: 0.5 } })
  const seen: number[] = []
  void c.client.start().catch(() => undefined)
  for (let attempt = 0; attempt < 6; attempt++) {
    await c.next('disconnected')
    seen.push(...c.timers.delays())
    c.timers.fire(RECONNECT_TIMER)
  }
  expect(seen).toEqual([75, 150, 300, 600, 750, 750])
  await c.next('disconnected')
  await c.client.stop()
  expect(c.timers.delays()).toEqual([])
})

test('credentials are saved only when the user opts in with a credential store', async () => {
  const saved: string[] = []
  const store = { load: async () => saved.at(-1), save: async (t: string) => void saved.push(t), clear: async () => void saved.splice(0) }
  const optIn = await makeClient(server.url, 'tok-bob', 'bob-laptop', { credentialStore: store })
  await optIn.client.start()
  expect(saved).toEqual(['tok-bob'])
  await optIn.client.stop()
  // a later start without a token uses the saved one
  const fromSaved = await makeClient(server.url, undefined as never, 'bob-laptop', { credentialStore: store, token: undefined })
  expect((await fromSaved.client.start()).userId).toBe('bob')
  await fromSaved.client.stop()
  // without a store nothing is kept, and without a token the client refuses to start
  const noToken = new OutlookSyncClient({ url: server.url, clientId: 'x', replica: await openMemoryLocalReplica() })
  await expect(noToken.start()).rejects.toMatchObject({ code: 'unauthorized' })
})

test('options are validated, naming the field', async () => {
  const replica = await openMemoryLocalReplica()
  expect(() => new OutlookSyncClient({ url: 'http://x', clientId: 'ok', replica, token: 't' })).toThrow(/url/)
  expect(() => new OutlookSyncClient({ url: 'ws://x', clientId: 'no spaces', replica, token: 't' })).toThrow(OutlookProtocolError)
})
