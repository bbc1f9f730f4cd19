/** The App for Outlook's requests (`mailboxStatus`, `itemInfo`, `search`) through the session host. */
import { expect, test } from 'vitest'
import { InMemoryDesignationStore } from './designation.js'
import { ClientRequestSchema } from './protocol.js'
import { ClientSessionHost, type ClientRequestHandlers } from './session-host.js'
import type { FrameTransport } from './transport.js'
import { MemoryCrm } from './test/fixtures.js'

function connect(handlers: ClientRequestHandlers) {
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
  const host = new ClientSessionHost({
    authenticate: async (token) => (token === 'good' ? { userId: 'alice' } : null),
    designations: new InMemoryDesignationStore(),
    handlers,
    sync: { sync: () => Promise.reject(new Error('not used')) },
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
  const hello = async (clientId: string) => {
    send({ type: 'hello', protocol: 1, token: 'good', clientId })
    await waitFor((m) => m.type === 'welcome', 'welcome')
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
