/**
 * The task pane's reconnect: the real pane (taskpane.html in jsdom, Office.js from office-addin-mock)
 * against a real `ClientSessionHost` on a `ws` server. The socket drops while Track waits for its
 * answer: the pane shows that it is reconnecting, backs off with jitter (timers fired by hand),
 * reconnects, re-reads the e-mail's state, and never sends the interrupted Track again.
 */
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { JSDOM } from 'jsdom'
import { OfficeMockObject } from 'office-addin-mock'
import { afterEach, expect, test } from 'vitest'
import { type WebSocket, WebSocketServer } from 'ws'
import { InMemoryDesignationStore } from '../../src/designation.js'
import type { ItemInfoResult } from '../../src/protocol.js'
import { ClientSessionHost, type ClientRequestHandlers } from '../../src/session-host.js'
import { ManualTimers } from '../../src/testing/index.js'
import { type OfficeLike, TOKEN_SETTING } from './office-item.js'
import type { PaneSocketConstructor } from './pane-client.js'
import { Pane } from './pane.js'

const HTML = readFileSync(new URL('./taskpane.html', import.meta.url), 'utf8')
const message = {
  itemType: 'message',
  itemId: 'AAMkAGI2TG93AAA=',
  internetMessageId: '<m1@fabrikam.test>',
  subject: 'Quarterly review',
  from: { emailAddress: 'dan@fabrikam.test', displayName: 'Dan Jump' },
  to: [{ emailAddress: 'alice@contoso.test', displayName: 'Alice' }],
  cc: [],
  dateTimeCreated: new Date('2026-11-20T10:00:00Z'),
}

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

function office(token: string): OfficeLike {
  const saved = new Map<string, unknown>([[TOKEN_SETTING, token]])
  return new OfficeMockObject(
    {
      context: {
        mailbox: { item: message, userProfile: { emailAddress: 'alice@contoso.test' } },
        roamingSettings: { get: (n: string) => saved.get(n), set: (n: string, v: unknown) => void saved.set(n, v), remove: (n: string) => void saved.delete(n), saveAsync: (cb?: (r: { status: string; error: null }) => void) => cb?.({ status: 'succeeded', error: null }) },
      },
    },
    'outlook' as never,
  ) as unknown as OfficeLike
}

/** The sync server's side: a session host whose Track can be held open, and the frames each socket got. */
async function startServer() {
  let tracked: ItemInfoResult['tracked'] = null
  let release: (() => void) | undefined
  const calls = { track: 0, itemInfo: 0 }
  const handlers: ClientRequestHandlers = {
    shouldTrack: async () => ({ track: false }),
    track: async () => {
      calls.track++
      await new Promise<void>((resolve) => (release = resolve))
      tracked = { crmId: 'emails(1)', regarding: null }
      return { crmId: 'emails(1)' }
    },
    setRegarding: async (_ctx, input) => ({ crmId: input.crmId }),
    stopTracking: async () => ({ deleted: false }),
    addContact: async () => ({ crmId: 'contacts(1)', created: true }),
    lookupIds: async () => [],
    lookupDetails: async () => [],
    mailboxStatus: async () => ({ serverSideSync: true, profile: 'exchange', manualTracking: true }),
    itemInfo: async (_ctx, input) => {
      calls.itemInfo++
      return { tracked, parties: input.addresses.map((address) => ({ address, records: address === 'dan@fabrikam.test' ? [{ table: 'contact', id: 'c1', name: 'Dan Jump' }] : [] })) }
    },
  }
  const host = new ClientSessionHost({
    authenticate: async (token) => (token === 'cct_alice' ? { userId: 'alice' } : null),
    designations: new InMemoryDesignationStore(),
    handlers,
    sync: { sync: () => Promise.reject(new Error('the pane never syncs')) },
  })
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: host.maxFrameBytes })
  const received: Array<Record<string, unknown>> = []
  const state = { refuse: false }
  wss.on('connection', (ws: WebSocket) => {
    if (state.refuse) return ws.terminate() // the server is down: no handshake
    ws.on('message', (data) => received.push(JSON.parse(String(data)) as Record<string, unknown>))
    host.handleWebSocket(ws)
  })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  cleanup.push(() => new Promise<void>((resolve) => wss.close(() => resolve())))
  cleanup.push(() => {
    for (const ws of wss.clients) ws.terminate()
  })
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, wss, calls, received, state, release: () => release?.() }
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error(`gave up waiting for ${what}`)
}

async function openPane(url: string) {
  const dom = new JSDOM(HTML)
  const doc = dom.window.document
  const timers = new ManualTimers()
  const { WebSocket } = await import('ws')
  const pane = new Pane(doc, office('cct_alice'), { url, WebSocket: WebSocket as unknown as PaneSocketConstructor, clientId: 'addin-test', timers, random: () => 0.5, backoff: { initialMs: 1_000, maxMs: 3_000, jitter: 0.5 } })
  cleanup.push(() => dom.window.close())
  const text = (id: string) => doc.getElementById(id)!.textContent ?? ''
  const disabled = (id: string) => (doc.getElementById(id) as unknown as { disabled: boolean }).disabled
  return { pane, doc, timers, text, disabled, click: (id: string) => (doc.getElementById(id) as unknown as { click(): void }).click() }
}

test('the socket drops while Track waits: reconnecting state, backoff with jitter, state re-read, Track not resent', async () => {
  const server = await startServer()
  const p = await openPane(server.url)
  await p.pane.start()
  await until(() => p.doc.getElementById('tracking')!.dataset.state === 'untracked', 'the first render')
  expect(p.doc.body.dataset.connection).toBe('connected')
  expect(p.text('status')).toBe('Connected.')
  expect(p.disabled('track')).toBe(false)
  // The pane's hello says it never syncs items: it is not made the user's sync client.
  expect(server.received.find((f) => f.type === 'hello')).toMatchObject({ syncItems: false, clientName: 'App for Outlook' })

  p.click('track')
  await until(() => server.calls.track === 1, 'Track to reach the server')
  for (const ws of server.wss.clients) ws.terminate() // the socket drops before the answer
  await until(() => p.pane.connection === 'reconnecting' && p.text('status').includes('not resent'), 'the reconnecting state')
  expect(p.doc.body.dataset.connection).toBe('reconnecting')
  expect(p.text('status')).toMatch(/Connection lost while “Tracking” waited for an answer; it is not resent/)
  for (const id of ['track', 'set-regarding', 'stop-tracking', 'add-contact', 'search']) expect(p.disabled(id)).toBe(true)
  // First retry after min(3000, 1000·2^0)·(1 − 0.5·0.5) = 750 ms.
  expect(p.timers.delays()).toEqual([750])
  server.release() // the CRM applied the Track; its answer went to the dead socket

  // The server is still down at the first retry: the next delay doubles (1500 ms), then caps (3000·0.75).
  server.state.refuse = true
  expect(p.timers.fire()).toBe(1)
  await until(() => p.timers.delays().length === 1, 'the second retry to be scheduled')
  expect(p.timers.delays()).toEqual([1_500])
  expect(p.text('status')).toMatch(/Reconnecting in 2 s \(attempt 2\)/)
  p.timers.fire()
  await until(() => p.timers.delays().length === 1, 'the third retry to be scheduled')
  p.timers.fire()
  await until(() => p.timers.delays().length === 1, 'the fourth retry to be scheduled')
  expect(p.timers.delays()).toEqual([2_250])

  // Back up: the pane reconnects, re-reads the mailbox and the e-mail, and shows the CRM's state.
  server.state.refuse = false
  p.timers.fire()
  await until(() => p.pane.connection === 'connected' && p.doc.getElementById('tracking')!.dataset.state === 'tracked', 'the reconnect')
  expect(p.text('status')).toBe('Reconnected. “Tracking” was interrupted and not resent; the state above is the CRM\'s.')
  expect(p.disabled('stop-tracking')).toBe(false)
  expect(p.disabled('track')).toBe(true)
  expect(p.timers.delays()).toEqual([])
  // Nothing was sent twice: one Track ever, and one hello per successful connection.
  expect(server.calls.track).toBe(1)
  expect(server.received.filter((f) => f.type === 'track')).toHaveLength(1)
  expect(server.received.filter((f) => f.type === 'hello')).toHaveLength(2)

  // A second drop starts the backoff from the beginning again.
  for (const ws of server.wss.clients) ws.terminate()
  await until(() => p.pane.connection === 'reconnecting', 'the second drop')
  expect(p.timers.delays()).toEqual([750])
})

test('a policy close (token revoked) is not retried: the pane asks for a token again', async () => {
  const server = await startServer()
  const p = await openPane(server.url)
  await p.pane.start()
  await until(() => p.pane.connection === 'connected' && p.text('status') === 'Connected.', 'the connection')
  for (const ws of server.wss.clients) ws.close(1008, 'token revoked')
  await until(() => p.pane.connection === 'disconnected', 'the disconnect')
  expect(p.text('status')).toBe('The sync server closed the connection (token revoked); enter your client token again.')
  expect((p.doc.getElementById('login') as unknown as { hidden: boolean }).hidden).toBe(false)
  expect(p.timers.delays()).toEqual([])
  expect(p.disabled('track')).toBe(true)
})
