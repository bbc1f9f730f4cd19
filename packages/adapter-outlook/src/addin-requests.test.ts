/** The App for Outlook's requests (`mailboxStatus`, `itemInfo`, `search`) through the session host. */
import { expect, test } from 'vitest'
import { InMemoryDesignationStore } from './designation.js'
import { ClientRequestSchema } from './protocol.js'
import { ClientSessionHost, type ClientRequestHandlers, type ClientSessionHostOptions, type GuardedAction, type RequestContext } from './session-host.js'
import { OutlookProtocolError } from './errors.js'
import type { FrameTransport } from './transport.js'
import { MemoryCrm } from './test/fixtures.js'

function connect(handlers: ClientRequestHandlers, extra: Partial<ClientSessionHostOptions> = {}, existing?: ClientSessionHost) {
  const sent: Array<Record<string, unknown>> = []
  const waiters: Array<() => void> = []
  let onMessage: (text: string | undefined, bytes: number) => void = () => undefined
  const transport: FrameTransport = {
    send: (text) => {
      sent.push(JSON.parse(text) as Record<string, unknown>)
      for (const w of waiters.splice(0)) w()
    },
    close: () => undefined,
    onMessage: (h) => void (onMessage = h),
    onClose: () => undefined,
  }
  const host = existing ?? new ClientSessionHost({
    authenticate: async (token) => (token === 'good' ? { userId: 'alice' } : null),
    designations: new InMemoryDesignationStore(),
    handlers,
    sync: { sync: () => Promise.reject(new Error('not used')) },
    ...extra,
  })
  host.handleConnection(transport)
  const send = (value: unknown) => {
    const text = JSON.stringify(value)
    onMessage(text, new TextEncoder().encode(text).byteLength)
  }
  const waitFor = async (predicate: (m: Record<string, unknown>) => boolean, what: string) => {
    for (let i = 0; i < 100; i++) {
      const found = sent.find(predicate)
      if (found) return found
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
    throw new Error(`no ${what}`)
  }
  /** Sends a frame and resolves with the reply carrying its id. */
  const ask = async (frame: Record<string, unknown>) => {
    send(frame)
    return waitFor((m) => m.id === frame.id, `reply to ${String(frame.id)}`)
  }
  const hello = async (clientId: string, more: Record<string, unknown> = {}) => {
    send({ type: 'hello', protocol: 1, token: 'good', clientId, ...more })
    return waitFor((m) => m.type === 'welcome' && m.clientId === clientId, 'welcome')
  }
  return { hello, ask, sent, host }
}

const ref = { table: 'contact', id: '00000000-0000-0000-0000-00000000000d', name: 'Dan Jump' }
const addinHandlers = (): ClientRequestHandlers => ({
  ...new MemoryCrm().handlers(),
  mailboxStatus: async (ctx) => (ctx.userId === 'alice' ? { serverSideSync: false, reason: 'incoming: incomingemailstatus is 0 (Not Run)' } : { serverSideSync: true }),
  itemInfo: async (_ctx, input) => ({ tracked: null, parties: input.addresses.map((address) => ({ address, records: address === 'dan@fabrikam.test' ? [ref] : [] })) }),
  search: async (_ctx, input) => ({ records: input.text === 'Jump' ? [ref] : [] }),
})

test('mailboxStatus, itemInfo and search reach the handlers as the session user and their results are validated', async () => {
  const c = connect(addinHandlers())
  await c.hello('pane-1')
  expect(await c.ask({ type: 'mailboxStatus', id: 'm1' })).toEqual({ type: 'result', id: 'm1', result: { serverSideSync: false, reason: 'incoming: incomingemailstatus is 0 (Not Run)' } })
  expect(await c.ask({ type: 'itemInfo', id: 'i1', input: { internetMessageId: '<m@x>', addresses: ['dan@fabrikam.test', 'erin@x.test'] } })).toEqual({
    type: 'result',
    id: 'i1',
    result: { tracked: null, parties: [{ address: 'dan@fabrikam.test', records: [ref] }, { address: 'erin@x.test', records: [] }] },
  })
  expect(await c.ask({ type: 'search', id: 's1', input: { text: '  Jump ' } })).toEqual({ type: 'result', id: 's1', result: { records: [ref] } })
})

test('bad App for Outlook input is bad_request naming the field; a server without the handlers says it does not support them', async () => {
  const c = connect(addinHandlers())
  await c.hello('pane-2')
  expect(await c.ask({ type: 'search', id: 's2', input: { text: '   ' } })).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringContaining('input.text') })
  expect(await c.ask({ type: 'itemInfo', id: 'i2', input: { addresses: ['a@x.test'], extra: 1 } })).toMatchObject({ type: 'error', code: 'bad_request' })
  expect(await c.ask({ type: 'search', id: 's3', input: { text: 'x', top: 500 } })).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringContaining('input.top') })

  const bare = connect(new MemoryCrm().handlers())
  await bare.hello('pane-3')
  expect(await bare.ask({ type: 'mailboxStatus', id: 'm2' })).toMatchObject({ type: 'error', code: 'bad_request', message: 'type: this server does not support mailboxStatus requests' })
  expect(await bare.ask({ type: 'search', id: 's4', input: { text: 'x' } })).toMatchObject({ type: 'error', code: 'bad_request', message: 'type: this server does not support search requests' })
})

test('a handler answering outside the protocol is an internal error, not a malformed result', async () => {
  const c = connect({ ...addinHandlers(), search: async () => ({ records: [{ table: 'contact' }] }) as never })
  await c.hello('pane-4')
  expect(await c.ask({ type: 'search', id: 's5', input: { text: 'x' } })).toMatchObject({ type: 'error', code: 'internal', message: expect.stringContaining('search handler returned an invalid result') })
  expect(ClientRequestSchema.safeParse({ type: 'itemInfo', id: 'x', input: { addresses: Array.from({ length: 201 }, () => 'a@x.test') } }).success).toBe(false)
})

test('the server policy (authorize) refuses requests with its code; a refused automatic designation connects undesignated', async () => {
  const asked: Array<[GuardedAction, RequestContext]> = []
  let actSyncedServerSide = true
  const authorize = async (ctx: RequestContext, action: GuardedAction) => {
    asked.push([action, ctx])
    if (action === 'track') throw new OutlookProtocolError('mailbox_not_enabled', 'track requires server-side synchronization')
    if ((action === 'designate' || action === 'syncNow') && actSyncedServerSide) throw new OutlookProtocolError('sync_method_conflict', 'the mailbox syncs contacts server-side')
  }
  const c = connect(addinHandlers(), { authorize })
  const welcome = await c.hello('laptop')
  expect(welcome).toMatchObject({ designated: false, fencingToken: null })
  expect(asked[0]).toEqual(['designate', { userId: 'alice', clientId: 'laptop', designated: false }])
  expect(await c.ask({ type: 'track', id: 't1', input: { kind: 'email', fields: {} } })).toEqual({ type: 'error', id: 't1', code: 'mailbox_not_enabled', message: 'track requires server-side synchronization' })
  expect(await c.ask({ type: 'designate', id: 'd1' })).toMatchObject({ type: 'error', code: 'sync_method_conflict' })
  expect(await c.host.designatedClient('alice')).toBeUndefined()
  // Requests the policy allows reach their handlers.
  expect(await c.ask({ type: 'search', id: 's1', input: { text: 'Jump' } })).toMatchObject({ type: 'result' })
  actSyncedServerSide = false
  expect(await c.ask({ type: 'designate', id: 'd2' })).toEqual({ type: 'result', id: 'd2', result: { fencingToken: 1 } })
  // The policy changes while the client is designated: its sync is refused before anything runs.
  actSyncedServerSide = true
  expect(await c.ask({ type: 'syncNow', id: 'n1', fencingToken: 1 })).toMatchObject({ type: 'error', code: 'sync_method_conflict' })
  await expect(c.host.syncUser('alice')).rejects.toMatchObject({ code: 'sync_method_conflict' })
})

test('a client that says it never syncs items (the App for Outlook) is never designated', async () => {
  const c = connect(addinHandlers())
  expect(await c.hello('pane-x', { syncItems: false, clientName: 'App for Outlook' })).toMatchObject({ designated: false })
  expect(await c.ask({ type: 'designate', id: 'd1' })).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringContaining('syncItems: false') })
  // The user's real Outlook client, connecting afterwards, is still the first sync client.
  const outlook = connect(addinHandlers(), {}, c.host)
  expect(await outlook.hello('laptop')).toMatchObject({ designated: true, fencingToken: 1 })
})
