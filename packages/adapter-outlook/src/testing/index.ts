/**
 * `@concord/adapter-outlook/testing`: runner-free helpers for testing a client-sync server: real
 * `OutlookSyncClient`s over real `ws` sockets with hand-fired timers, and a raw protocol peer for
 * malformed-frame and handshake tests.
 */
import { WebSocket } from 'ws'
import type { OutlookLocalReplica } from '../local-replica.js'
import { openMemoryLocalReplica } from '../open.js'
import { type ClientEvent, type ClientWebSocketConstructor, OutlookSyncClient, type OutlookSyncClientOptions, type Timers } from '../sync-client.js'

/** Timers the test fires by hand (reconnect backoff, sync schedule): no wall-clock waits. */
export class ManualTimers implements Timers {
  private next = 1
  readonly pending = new Map<number, { fn: () => void; ms: number }>()
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++
    this.pending.set(id, { fn, ms })
    return id
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number)
  }
  delays(): number[] {
    return [...this.pending.values()].map((t) => t.ms)
  }
  /** Fires every pending timer whose delay is below `maxMs`. Returns how many fired. */
  fire(filter: (ms: number) => boolean = () => true): number {
    let fired = 0
    for (const [id, timer] of [...this.pending]) {
      if (!filter(timer.ms)) continue
      this.pending.delete(id)
      timer.fn()
      fired++
    }
    return fired
  }
}

export const SYNC_TIMER = (ms: number) => ms >= 60_000
export const RECONNECT_TIMER = (ms: number) => ms < 60_000

export interface TestClient {
  client: OutlookSyncClient
  replica: OutlookLocalReplica
  timers: ManualTimers
  events: ClientEvent[]
  /** Every socket the client opened (the last one is the live one). */
  sockets: WebSocket[]
  /** Every text frame the client sent, parsed. */
  sent: Array<Record<string, unknown>>
  /** Resolves at the next event of a type (after the call). */
  next<T extends ClientEvent['type']>(type: T): Promise<Extract<ClientEvent, { type: T }>>
}

export async function makeClient(url: string, token: string, clientId: string, extra: Partial<OutlookSyncClientOptions> & { replica?: OutlookLocalReplica } = {}): Promise<TestClient> {
  const replica = extra.replica ?? (await openMemoryLocalReplica())
  const timers = new ManualTimers()
  const events: ClientEvent[] = []
  const listeners: Array<(e: ClientEvent) => void> = []
  const sockets: WebSocket[] = []
  const sent: Array<Record<string, unknown>> = []
  class RecordingWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols)
      sockets.push(this)
    }
    override send(data: unknown, ...rest: unknown[]): void {
      if (typeof data === 'string') sent.push(JSON.parse(data) as Record<string, unknown>)
      ;(super.send as (...args: unknown[]) => void)(data, ...rest)
    }
  }
  const client = new OutlookSyncClient({
    url,
    token,
    clientId,
    replica,
    WebSocket: RecordingWebSocket as unknown as ClientWebSocketConstructor,
    timers,
    random: () => 0.5,
    backoff: { initialMs: 100, maxMs: 10_000, jitter: 0.5 },
    requestTimeoutMs: 20_000,
    ...extra,
    onEvent: (event) => {
      events.push(event)
      for (const l of listeners.splice(0)) l(event)
      extra.onEvent?.(event)
    },
  })
  const next = <T extends ClientEvent['type']>(type: T) =>
    new Promise<Extract<ClientEvent, { type: T }>>((resolve) => {
      const listen = (e: ClientEvent) => {
        if (e.type === type) resolve(e as Extract<ClientEvent, { type: T }>)
        else listeners.push(listen)
      }
      listeners.push(listen)
    })
  return { client, replica, timers, events, sockets, sent, next }
}

/** A raw protocol peer over `ws`, for malformed-frame tests. */
export class RawClient {
  readonly frames: Array<Record<string, unknown>> = []
  private waiters: Array<() => void> = []
  closed: { code: number; reason: string } | undefined
  private closeWaiters: Array<() => void> = []
  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as Record<string, unknown>)
      for (const w of this.waiters.splice(0)) w()
    })
    socket.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) }
      for (const w of [...this.waiters.splice(0), ...this.closeWaiters.splice(0)]) w()
    })
    socket.on('error', () => undefined)
  }
  static async connect(url: string): Promise<RawClient> {
    const socket = new WebSocket(url)
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('error', reject)
    })
    return new RawClient(socket)
  }
  send(value: unknown): void {
    this.socket.send(typeof value === 'string' ? value : JSON.stringify(value))
  }
  /** Waits for the next frame matching `predicate` (frames already received count). */
  async frame(predicate: (f: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    for (let i = 0; i < 1000; i++) {
      const found = this.frames.find(predicate)
      if (found) {
        this.frames.splice(this.frames.indexOf(found), 1)
        return found
      }
      if (this.closed) throw new Error(`connection closed (${this.closed.code}) before the frame arrived`)
      await new Promise<void>((resolve) => this.waiters.push(resolve))
    }
    throw new Error('no matching frame after 1000 frames')
  }
  whenClosed(): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed)
    return new Promise((resolve) => this.closeWaiters.push(() => resolve(this.closed!)))
  }
  close(): void {
    this.socket.terminate()
  }
}

/**
 * Convergence through the server's links: every live CRM record of the user has exactly one live
 * local copy with equal fields, and every linked local item has a live CRM counterpart.
 */
