import type { AddressInfo } from 'node:net'
import { sampleFields } from '@concord/engine/testing'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { type WebSocket, WebSocketServer } from 'ws'
import { OutlookProtocolError } from './errors.js'
import { PROTOCOL_VERSION } from './protocol.js'
import { RawClient, type TestClient, type TestServer, makeClient, startServer } from './test/fixtures.js'

const hello = (token = 'tok-alice', clientId = 'raw-1') => ({ type: 'hello', protocol: PROTOCOL_VERSION, token, clientId })

describe('server side: frames from a client', () => {
  let server: TestServer
  const raws: RawClient[] = []
  const clients: TestClient[] = []
  beforeAll(async () => {
    server = await startServer({ maxFrameBytes: 64 * 1024, helloTimeoutMs: 2_000 })
  })
  afterEach(async () => {
    for (const r of raws.splice(0)) r.close()
    for (const c of clients.splice(0)) await c.client.stop()
  })
  afterAll(async () => {
    await server.close()
  })
  const raw = async () => {
    const r = await RawClient.connect(server.url)
    raws.push(r)
    return r
  }
  const welcomed = async (token = 'tok-alice', clientId = 'raw-1') => {
    const r = await raw()
    r.send(hello(token, clientId))
    expect(await r.frame((f) => f.type === 'welcome')).toMatchObject({ userId: TOKEN_USERS[token], clientId })
    return r
  }
  const TOKEN_USERS: Record<string, string> = { 'tok-alice': 'alice', 'tok-bob': 'bob' }

  test('malformed JSON and schema violations get a bad_request naming the field; the connection stays usable', async () => {
    const r = await welcomed()
    r.send('{not json')
    expect(await r.frame((f) => f.type === 'error')).toMatchObject({ code: 'bad_request', message: 'frame is not valid JSON' })
    r.send({ type: 'track', id: 'q1', input: { kind: 'memo', fields: {} } })
    const bad = await r.frame((f) => f.id === 'q1')
    expect(bad).toMatchObject({ type: 'error', code: 'bad_request' })
    expect(String(bad.message)).toContain('input.kind')
    r.send({ type: 'launchMissiles', id: 'q2' })
    expect(await r.frame((f) => f.id === 'q2')).toMatchObject({ type: 'error', code: 'bad_request' })
    r.socket.send(Buffer.from([1, 2, 3]), { binary: true })
    expect(await r.frame((f) => f.type === 'error')).toMatchObject({ code: 'bad_request', message: 'binary frames are not part of the protocol' })
    // state intact: the same connection still works
    r.send({ type: 'lookup', id: 'q3', input: { mode: 'ids', kind: 'contact' } })
    expect(await r.frame((f) => f.id === 'q3')).toMatchObject({ type: 'result', result: { ids: [] } })
    expect(r.closed).toBeUndefined()
  })

  test('the should-track check accepts only sender, recipients and subject', async () => {
    const r = await welcomed()
    r.send({ type: 'shouldTrack', id: 't1', email: { from: { address: 'x@y.test' }, to: [], cc: [], subject: 'hi', body: 'secret' } })
    const refused = await r.frame((f) => f.id === 't1')
    expect(refused).toMatchObject({ type: 'error', code: 'bad_request' })
    expect(String(refused.message)).toContain('body')
    const before = server.crm.shouldTrackCalls.length
    const c = await makeClient(server.url, 'tok-alice', 'privacy-client')
    clients.push(c)
    await c.client.start()
    const email = { ...sampleFields('email', 1), from: { address: 'bob@fabrikam.test' }, to: [{ address: 'alice@contoso.test' }], cc: [], subject: 'Order' }
    await c.client.shouldTrack(email as never)
    expect(server.crm.shouldTrackCalls.slice(before)).toEqual([{ from: { address: 'bob@fabrikam.test' }, to: [{ address: 'alice@contoso.test' }], cc: [], subject: 'Order' }])
  })

  test('an oversized frame closes the connection with 1009; other sessions and state are intact', async () => {
    const witness = await welcomed('tok-alice', 'raw-witness')
    const r = await welcomed('tok-alice', 'raw-big')
    r.send({ type: 'track', id: 'big', input: { kind: 'email', fields: { body: 'x'.repeat(70 * 1024) } } })
    expect((await r.whenClosed()).code).toBe(1009)
    expect(server.crm.remoteFor('alice').liveRecords().filter((x) => x.fields.body !== undefined && String(x.fields.body).length > 60_000)).toEqual([])
    witness.send({ type: 'lookup', id: 'w1', input: { mode: 'ids', kind: 'email' } })
    expect(await witness.frame((f) => f.id === 'w1')).toMatchObject({ type: 'result' })
  })

  test('handshake refusals: garbage first frame, wrong version, bad token, requests before hello', async () => {
    const a = await raw()
    a.send('garbage')
    expect(await a.frame((f) => f.type === 'error')).toMatchObject({ code: 'bad_request' })
    expect((await a.whenClosed()).code).toBe(1008)

    const b = await raw()
    b.send({ ...hello(), protocol: 99 })
    expect(await b.frame((f) => f.type === 'error')).toMatchObject({ code: 'unsupported_version' })
    expect((await b.whenClosed()).code).toBe(1008)

    const c = await raw()
    c.send(hello('tok-mallory'))
    expect(await c.frame((f) => f.type === 'error')).toMatchObject({ code: 'unauthorized' })
    expect((await c.whenClosed()).code).toBe(1008)

    const d = await raw()
    d.send({ type: 'syncNow', id: 'x', fencingToken: 1 })
    expect(await d.frame((f) => f.type === 'error')).toMatchObject({ code: 'bad_request' })
    expect((await d.whenClosed()).code).toBe(1008)

    const e = await raw()
    e.send({ ...hello(), clientId: 'bad id with spaces' })
    const refused = await e.frame((f) => f.type === 'error')
    expect(String(refused.message)).toContain('clientId')

    // the real client gives up on a refused token instead of retrying forever
    const refusedClient = await makeClient(server.url, 'tok-mallory', 'mallory-pc')
    await expect(refusedClient.client.start()).rejects.toMatchObject({ code: 'unauthorized' })
    expect(refusedClient.client.state).toBe('stopped')
  })

  test('a stale fencing token is refused on syncNow', async () => {
    const r = await welcomed('tok-bob', 'bob-raw')
    const welcome = await (async () => {
      r.send({ type: 'designate', id: 'd1' })
      return r.frame((f) => f.id === 'd1')
    })()
    const token = (welcome.result as { fencingToken: number }).fencingToken
    r.send({ type: 'syncNow', id: 's1', fencingToken: token - 1 })
    expect(await r.frame((f) => f.id === 's1')).toMatchObject({ type: 'error', code: 'fenced' })
  })

  test('malformed answers to the server’s pull/push are refused as InvalidRemoteData; nothing reaches the engine store', async () => {
    const r = await welcomed('tok-bob', 'bob-answers')
    r.send({ type: 'designate', id: 'd' })
    await r.frame((f) => f.id === 'd')
    const replica = server.host.designatedClient('bob')!.replica
    const answer = async (result: unknown) => {
      const pending = replica.pull(null, { limit: 10 }).catch((e: unknown) => e)
      const request = await r.frame((f) => f.type === 'pull')
      r.send({ type: 'result', id: request.id, result })
      return pending
    }
    const missingCursor = await answer({ changes: [], hasMore: false })
    expect(missingCursor).toMatchObject({ code: 'InvalidRemoteData' })
    expect(String((missingCursor as Error).message)).toContain('nextCursor')
    const badFields = await answer({ changes: [{ type: 'upsert', nativeId: 'x', kind: 'task', version: 'v1', fields: { status: 'sleeping' } }], nextCursor: 'c', hasMore: false })
    expect(badFields).toMatchObject({ code: 'InvalidRemoteData' })
    expect(String((badFields as Error).message)).toContain('status')
    // a client error reply becomes the matching engine error
    const pending = replica.pull(null, { limit: 10 }).catch((e: unknown) => e)
    const request = await r.frame((f) => f.type === 'pull')
    r.send({ type: 'result', id: 'no-such-request', result: {} }) // ignored
    r.send({ type: 'error', id: request.id, code: 'cursor_expired', message: 'gone' })
    expect(await pending).toMatchObject({ code: 'CursorExpired' })
    const good = replica.pull(null, { limit: 10 })
    const next = await r.frame((f) => f.type === 'pull')
    r.send({ type: 'result', id: next.id, result: { changes: [], nextCursor: 'c1', hasMore: false } })
    expect(await good).toMatchObject({ changes: [], nextCursor: 'c1', hasMore: false })
    expect(r.closed).toBeUndefined()
  })

  test('a bad personal interval is refused, naming the minimum', async () => {
    const r = await welcomed()
    r.send({ type: 'setInterval', id: 'i1', minutes: 1 })
    expect(await r.frame((f) => f.id === 'i1')).toMatchObject({ type: 'error', code: 'bad_request', message: "minutes: 1 is below the administrator's minimum of 5" })
    r.send({ type: 'setInterval', id: 'i2', minutes: 30 })
    expect(await r.frame((f) => f.id === 'i2')).toMatchObject({ type: 'result', result: { intervalMinutes: 30 } })
    // the personal interval comes back in the next welcome of any of the user's clients
    const other = await raw()
    other.send(hello('tok-alice', 'raw-2'))
    expect(await other.frame((f) => f.type === 'welcome')).toMatchObject({ intervalMinutes: 30, minIntervalMinutes: 5 })
    r.send({ type: 'setInterval', id: 'i3', minutes: 15 })
    await r.frame((f) => f.id === 'i3')
  })
})

describe('client side: frames from a server', () => {
  let wss: WebSocketServer
  let url: string
  let serverSocket: WebSocket | undefined
  let frames: Array<Record<string, unknown>> = []
  let waiters: Array<() => void> = []
  beforeAll(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`
    wss.on('connection', (socket) => {
      serverSocket = socket
      socket.on('message', (data) => {
        const frame = JSON.parse(String(data)) as Record<string, unknown>
        if (frame.type === 'hello') socket.send(JSON.stringify({ type: 'welcome', protocol: PROTOCOL_VERSION, userId: 'alice', clientId: frame.clientId, designated: true, fencingToken: 5, intervalMinutes: 15, minIntervalMinutes: 5, maxFrameBytes: 4096 }))
        else frames.push(frame)
        for (const w of waiters.splice(0)) w()
      })
    })
  })
  afterAll(async () => {
    for (const s of wss.clients) s.terminate()
    await new Promise<void>((resolve) => wss.close(() => resolve()))
  })
  const frame = async (predicate: (f: Record<string, unknown>) => boolean) => {
    for (let i = 0; i < 1000; i++) {
      const found = frames.find(predicate)
      if (found) return found
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
    throw new Error('no frame')
  }
  const connect = async () => {
    frames = []
    waiters = []
    const c = await makeClient(url, 'tok-alice', 'alice-laptop')
    await c.replica.createItem('contact', sampleFields('contact', 1))
    await c.client.start()
    return c
  }

  test('malformed frames get a bad_request answer; the client stays connected and its state intact', async () => {
    const c = await connect()
    const before = await c.replica.listItems()
    serverSocket!.send('nonsense')
    expect(await frame((f) => f.type === 'error' && f.id === undefined)).toMatchObject({ code: 'bad_request' })
    serverSocket!.send(JSON.stringify({ type: 'push', id: 'p1', fencingToken: 5, ops: [{ opId: 'o', type: 'create', kind: 'contact', fields: {} }] }))
    const bad = await frame((f) => f.id === 'p1')
    expect(bad).toMatchObject({ type: 'error', code: 'bad_request' })
    expect(String(bad.message)).toContain('concordId')
    // a push with fields that fail the canonical model is rejected per op, nothing written
    serverSocket!.send(JSON.stringify({ type: 'push', id: 'p2', fencingToken: 5, ops: [{ opId: 'o2', type: 'create', concordId: 'c9', kind: 'task', fields: { status: 'sleeping' } }] }))
    expect(await frame((f) => f.id === 'p2')).toMatchObject({ type: 'result', result: { applied: [], rejected: [{ opId: 'o2', code: 'Validation' }] } })
    // a pull with a stale fencing token is refused
    serverSocket!.send(JSON.stringify({ type: 'pull', id: 'p3', fencingToken: 4, cursor: null, limit: 10 }))
    expect(await frame((f) => f.id === 'p3')).toMatchObject({ type: 'error', code: 'fenced' })
    serverSocket!.send(JSON.stringify({ type: 'pull', id: 'p4', fencingToken: 5, cursor: '{"broken"', limit: 10 }))
    expect(await frame((f) => f.id === 'p4')).toMatchObject({ type: 'error', code: 'cursor_expired' })
    serverSocket!.send(JSON.stringify({ type: 'pull', id: 'p5', fencingToken: 5, cursor: null, limit: 10 }))
    const ok = await frame((f) => f.id === 'p5')
    expect((ok.result as { changes: unknown[] }).changes).toHaveLength(1)
    expect(c.client.state).toBe('open')
    expect(await c.replica.listItems()).toEqual(before)
    await c.client.stop()
  })

  test('an oversized server frame makes the client close with 1009, then reconnect with backoff', async () => {
    const c = await connect()
    const before = await c.replica.listItems()
    const closed = new Promise<number>((resolve) => serverSocket!.once('close', (code) => resolve(code)))
    serverSocket!.send(JSON.stringify({ type: 'push', id: 'big', fencingToken: 5, ops: [], pad: 'x'.repeat(8000) }))
    expect(await closed).toBe(1009)
    await c.next('disconnected')
    expect(c.timers.delays()).toEqual([75]) // 100 ms · 2^0, minus jitter 0.5 · random 0.5
    expect(await c.replica.listItems()).toEqual(before)
    c.timers.fire((ms) => ms < 60_000)
    await c.client.whenConnected()
    expect(c.client.state).toBe('open')
    await c.client.stop()
  })

  test('a pull answer too large for one frame is split into smaller pages', async () => {
    const c = await connect()
    for (let i = 0; i < 6; i++) await c.replica.createItem('task', { ...sampleFields('task', i), description: 'y'.repeat(1500) })
    serverSocket!.send(JSON.stringify({ type: 'pull', id: 'pp', fencingToken: 5, cursor: null, limit: 100 }))
    const page = await frame((f) => f.id === 'pp')
    expect(page.type).toBe('result')
    const result = page.result as { changes: unknown[]; hasMore: boolean }
    expect(result.changes.length).toBeGreaterThan(0)
    expect(result.changes.length).toBeLessThan(7)
    expect(result.hasMore).toBe(true)
    await c.client.stop()
  })

  test('requests fail cleanly when not connected', async () => {
    const c = await makeClient(url, 'tok-alice', 'idle-client')
    await expect(c.client.syncNow()).rejects.toBeInstanceOf(OutlookProtocolError)
    await expect(c.client.lookupIds('contact')).rejects.toMatchObject({ code: 'unavailable' })
  })
})
