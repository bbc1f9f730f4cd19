import { expect, test } from 'vitest'
import { InMemoryDesignationStore } from './designation.js'
import { OutlookProtocolError } from './errors.js'
import { ClientSessionHost, type ClientSessionHostOptions } from './session-host.js'
import type { FrameTransport } from './transport.js'
import { MemoryCrm } from './test/fixtures.js'

/** An in-memory transport: what the host sends is recorded; the test plays the client. */
function memoryTransport() {
  const sent: Array<Record<string, unknown>> = []
  let closed: { code: number; reason: string } | undefined
  let onMessage: (text: string | undefined, bytes: number) => void = () => undefined
  let onClose: (code: number, reason: string) => void = () => undefined
  const waiters: Array<() => void> = []
  const transport: FrameTransport = {
    send: (text) => {
      sent.push(JSON.parse(text) as Record<string, unknown>)
      for (const w of waiters.splice(0)) w()
    },
    close: (code, reason) => {
      if (closed) return
      closed = { code, reason }
      onClose(code, reason)
      for (const w of waiters.splice(0)) w()
    },
    onMessage: (h) => void (onMessage = h),
    onClose: (h) => void (onClose = h),
  }
  return {
    transport,
    sent,
    get closed() {
      return closed
    },
    receive: (value: unknown) => {
      const text = typeof value === 'string' ? value : JSON.stringify(value)
      onMessage(text, new TextEncoder().encode(text).byteLength)
    },
    until: async (predicate: () => boolean) => {
      for (let i = 0; i < 100 && !predicate(); i++) await new Promise<void>((resolve) => waiters.push(resolve))
    },
  }
}

function host(overrides: Partial<ClientSessionHostOptions> = {}) {
  return new ClientSessionHost({
    authenticate: async (token) => (token === 'good' ? { userId: 'alice' } : null),
    designations: new InMemoryDesignationStore(),
    handlers: new MemoryCrm().handlers(),
    sync: { sync: async () => ({ cycles: 0, pulled: { crm: 0, mailbox: 0 }, pushed: { crm: 0, mailbox: 0 }, rejected: { crm: 0, mailbox: 0 }, merged: 0 }) },
    maxFrameBytes: 2048,
    ...overrides,
  })
}

test('without ws maxPayload the host itself closes an oversized frame with 1009', async () => {
  const h = host()
  const t = memoryTransport()
  h.handleConnection(t.transport)
  t.receive({ type: 'hello', protocol: 1, token: 'good', clientId: 'c1' })
  await t.until(() => t.sent.length > 0)
  expect(t.sent[0]).toMatchObject({ type: 'welcome', userId: 'alice', designated: true, fencingToken: 1, maxFrameBytes: 2048 })
  t.receive({ type: 'lookup', id: 'l1', input: { mode: 'ids', kind: 'contact' } })
  await t.until(() => t.sent.length > 1)
  expect(t.sent[1]).toMatchObject({ type: 'result', id: 'l1', result: { ids: [] } })
  t.receive({ type: 'track', id: 'big', input: { kind: 'email', fields: { body: 'x'.repeat(4000) } } })
  expect(t.sent.at(-1)).toMatchObject({ type: 'error', code: 'too_large' })
  expect(t.closed?.code).toBe(1009)
  expect(h.sessionsOf('alice')).toEqual([])
})

test('an authentication backend failure is reported as unavailable and closed with 1011', async () => {
  const h = host({
    authenticate: async () => {
      throw new Error('directory down')
    },
  })
  const t = memoryTransport()
  h.handleConnection(t.transport)
  t.receive({ type: 'hello', protocol: 1, token: 'good', clientId: 'c1' })
  await t.until(() => t.closed !== undefined)
  expect(t.sent).toEqual([{ type: 'error', code: 'unavailable', message: 'authentication is unavailable; retry later' }])
  expect(t.closed?.code).toBe(1011)
})

test('a connection that never says hello is closed with 1008', async () => {
  const h = host({ helloTimeoutMs: 10 })
  const t = memoryTransport()
  h.handleConnection(t.transport)
  await t.until(() => t.closed !== undefined)
  expect(t.closed?.code).toBe(1008)
  expect(t.sent[0]).toMatchObject({ type: 'error', code: 'bad_request' })
})

test('a handler error keeps its code; a handler returning a malformed result is an internal error', async () => {
  const crm = new MemoryCrm()
  const handlers = crm.handlers()
  const h = host({
    handlers: {
      ...handlers,
      setRegarding: async () => {
        throw new OutlookProtocolError('forbidden', 'not yours')
      },
      addContact: async () => ({ crmId: '', created: 'yes' }) as never,
    },
  })
  const t = memoryTransport()
  h.handleConnection(t.transport)
  t.receive({ type: 'hello', protocol: 1, token: 'good', clientId: 'c1' })
  await t.until(() => t.sent.length > 0)
  t.receive({ type: 'setRegarding', id: 'r1', input: { crmId: 'x', regarding: { table: 'account', id: 'a' } } })
  t.receive({ type: 'addContact', id: 'r2', input: { sender: { address: 'a@b.test' } } })
  await t.until(() => t.sent.length > 2)
  expect(t.sent.find((f) => f.id === 'r1')).toMatchObject({ type: 'error', code: 'forbidden', message: 'not yours' })
  expect(t.sent.find((f) => f.id === 'r2')).toMatchObject({ type: 'error', code: 'internal' })
  expect(String(t.sent.find((f) => f.id === 'r2')?.message)).toContain('created')
  expect(t.closed).toBeUndefined()
})

test('options are validated, naming the field', () => {
  expect(() => host({ maxFrameBytes: 10 })).toThrow(/maxFrameBytes/)
  expect(() => host({ minIntervalMinutes: -1 })).toThrow(/minIntervalMinutes/)
})

test('a session may not flood the host with concurrent requests', async () => {
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  const handlers = new MemoryCrm().handlers()
  const h = host({
    maxPendingRequests: 2,
    handlers: {
      ...handlers,
      shouldTrack: async () => {
        await gate
        return { track: false }
      },
    },
  })
  const t = memoryTransport()
  h.handleConnection(t.transport)
  t.receive({ type: 'hello', protocol: 1, token: 'good', clientId: 'c1' })
  await t.until(() => t.sent.length > 0)
  for (const id of ['a', 'b', 'c']) t.receive({ type: 'shouldTrack', id, email: { from: { address: 'x@y.test' }, to: [], cc: [], subject: 's' } })
  expect(t.sent.find((f) => f.id === 'c')).toMatchObject({ type: 'error', code: 'unavailable' })
  release()
  await t.until(() => t.sent.filter((f) => f.type === 'result').length === 2)
  expect(t.sent.filter((f) => f.type === 'result').map((f) => f.id)).toEqual(['a', 'b'])
})
