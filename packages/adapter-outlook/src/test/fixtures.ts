import { type AddressInfo } from 'node:net'
import { type Fields, type ItemKind, type NativeId, PolicyMerge, type ReplicaStore, asReplicaId, jsonEqual, openMemoryStore } from '@concord/engine'
import { MemoryRemote, MemoryReplicaAdapter } from '@concord/engine/testing'
import { WebSocket, WebSocketServer } from 'ws'
import { InMemoryDesignationStore } from '../designation.js'
import { OutlookProtocolError } from '../errors.js'
import type { OutlookLocalReplica } from '../local-replica.js'
import { openMemoryLocalReplica } from '../open.js'
import { SyncPairDriver, type SyncPairDriverOptions } from '../pair-driver.js'
import { outlookReplicaId } from '../remote-replica.js'
import type { ShouldTrackInput } from '../protocol.js'
import { ClientSessionHost, type ClientRequestHandlers, type ClientSessionHostOptions } from '../session-host.js'
import { type ClientEvent, type ClientWebSocketConstructor, OutlookSyncClient, type OutlookSyncClientOptions, type Timers } from '../sync-client.js'

/** The CRM as the tests see it: one in-memory remote per user (the user's scope), ids prefixed by user. */
export class MemoryCrm {
  readonly remotes = new Map<string, MemoryRemote>()
  readonly shouldTrackCalls: ShouldTrackInput[] = []

  remoteFor(userId: string): MemoryRemote {
    let remote = this.remotes.get(userId)
    if (!remote) this.remotes.set(userId, (remote = new MemoryRemote(`crm-${userId}`)))
    return remote
  }

  /** Which user a CRM id belongs to (the CRM's own security check). */
  private find(crmId: string): { userId: string; remote: MemoryRemote } | undefined {
    for (const [userId, remote] of this.remotes) if (remote.records.has(crmId as NativeId)) return { userId, remote }
    return undefined
  }

  private readable(userId: string, crmId: string): MemoryRemote {
    const found = this.find(crmId)
    if (!found || !found.remote.get(crmId as NativeId)) throw new OutlookProtocolError('not_found', `no CRM record ${crmId}`)
    if (found.userId !== userId) throw new OutlookProtocolError('forbidden', `user ${userId} may not read CRM record ${crmId}`)
    return found.remote
  }

  /** The handlers a sync server would implement against adapter-crm. */
  handlers(): ClientRequestHandlers {
    return {
      shouldTrack: async (ctx, email) => {
        this.shouldTrackCalls.push(email)
        const known = new Set(this.remoteFor(ctx.userId).liveRecords().filter((r) => r.kind === 'contact').map((r) => String(r.fields.email1).toLowerCase()))
        const addresses = [email.from, ...email.to, ...email.cc].map((a) => a.address.toLowerCase())
        return { track: addresses.some((a) => known.has(a)) }
      },
      track: async (ctx, input) => {
        const remote = this.remoteFor(ctx.userId)
        const existing = input.concordId === undefined ? undefined : remote.findByConcordId(input.concordId as never)
        if (existing) return { crmId: existing.nativeId }
        const fields = input.regarding ? { ...input.fields, regarding: input.regarding } : input.fields
        return { crmId: remote.create(input.kind, fields, input.concordId as never, { ownerId: ctx.userId, tracked: true }) }
      },
      setRegarding: async (ctx, input) => {
        this.readable(ctx.userId, input.crmId).update(input.crmId as NativeId, { regarding: input.regarding })
        return { crmId: input.crmId }
      },
      stopTracking: async (ctx, input) => {
        const remote = this.readable(ctx.userId, input.crmId)
        const record = remote.live(input.crmId as NativeId)
        if (record.meta?.ownerId === ctx.userId) {
          remote.remove(record.nativeId, 'stopped-tracking')
          return { deleted: true }
        }
        remote.setMeta(record.nativeId, { tracked: false })
        return { deleted: false }
      },
      addContact: async (ctx, input) => {
        const remote = this.remoteFor(ctx.userId)
        const existing = remote.liveRecords().find((r) => r.kind === 'contact' && String(r.fields.email1).toLowerCase() === input.sender.address.toLowerCase())
        if (existing) return { crmId: existing.nativeId, created: false }
        const [givenName, ...rest] = (input.sender.name ?? '').split(' ')
        const fields = { email1: input.sender.address, ...(givenName ? { givenName } : {}), ...(rest.length ? { surname: rest.join(' ') } : {}) }
        return { crmId: remote.create('contact', fields, undefined, { ownerId: ctx.userId }), created: true }
      },
      lookupIds: async (ctx, kind: ItemKind) => this.remoteFor(ctx.userId).liveRecords().filter((r) => r.kind === kind).map((r) => r.nativeId),
      lookupDetails: async (ctx, crmIds) =>
        crmIds.map((crmId) => {
          const record = this.readable(ctx.userId, crmId).live(crmId as NativeId)
          return { crmId, kind: record.kind, fields: record.fields }
        }),
    }
  }
}

export interface TestServer {
  url: string
  host: ClientSessionHost
  crm: MemoryCrm
  designations: InMemoryDesignationStore
  stores: Map<string, ReplicaStore>
  wss: WebSocketServer
  /** Kills every server-side socket without a close handshake (a dropped connection). */
  dropAll(): void
  close(): Promise<void>
}

export const TOKENS: Record<string, string> = { 'tok-alice': 'alice', 'tok-bob': 'bob' }

export async function startServer(options: Partial<ClientSessionHostOptions> = {}, driverOptions: Pick<SyncPairDriverOptions, 'context'> = {}): Promise<TestServer> {
  const crm = new MemoryCrm()
  const designations = new InMemoryDesignationStore()
  const stores = new Map<string, ReplicaStore>()
  const driver = new SyncPairDriver({
    store: async (userId) => {
      let store = stores.get(userId)
      if (!store) stores.set(userId, (store = (await openMemoryStore()).store))
      return store
    },
    crm: (userId) => new MemoryReplicaAdapter(asReplicaId(`crm-${userId}`), crm.remoteFor(userId)),
    pairOptions: { merge: new PolicyMerge() },
    ...driverOptions,
  })
  const host = new ClientSessionHost({
    authenticate: async (token) => (TOKENS[token] ? { userId: TOKENS[token] } : null),
    designations,
    handlers: crm.handlers(),
    sync: driver,
    ...options,
  })
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: host.maxFrameBytes })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  wss.on('connection', (socket) => host.handleWebSocket(socket))
  const { port } = wss.address() as AddressInfo
  return {
    url: `ws://127.0.0.1:${port}`,
    host,
    crm,
    designations,
    stores,
    wss,
    dropAll: () => {
      for (const socket of wss.clients) socket.terminate()
    },
    close: async () => {
      host.close()
      for (const socket of wss.clients) socket.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    },
  }
}

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
  /** Resolves at the next event of a type (after the call). */
  next<T extends ClientEvent['type']>(type: T): Promise<Extract<ClientEvent, { type: T }>>
}

export async function makeClient(url: string, token: string, clientId: string, extra: Partial<OutlookSyncClientOptions> & { replica?: OutlookLocalReplica } = {}): Promise<TestClient> {
  const replica = extra.replica ?? (await openMemoryLocalReplica())
  const timers = new ManualTimers()
  const events: ClientEvent[] = []
  const listeners: Array<(e: ClientEvent) => void> = []
  const client = new OutlookSyncClient({
    url,
    token,
    clientId,
    replica,
    WebSocket: WebSocket as unknown as ClientWebSocketConstructor,
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
  return { client, replica, timers, events, next }
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
export async function convergence(server: TestServer, userId: string, clientId: string, replica: OutlookLocalReplica): Promise<string[]> {
  const problems: string[] = []
  const store = server.stores.get(userId)
  if (!store) return ['no store for user']
  const crmReplica = asReplicaId(`crm-${userId}`)
  const mailboxReplica = outlookReplicaId(userId, clientId)
  const linkedLocal = new Set<string>()
  for (const record of server.crm.remoteFor(userId).liveRecords()) {
    const snapshot = await store.getSnapshot(crmReplica, record.nativeId)
    if (!snapshot) {
      problems.push(`crm ${record.nativeId} never seen`)
      continue
    }
    const link = await store.getLink(snapshot.concordId)
    const localId = link?.natives[mailboxReplica]
    const local = localId === undefined ? undefined : await replica.getItem(localId)
    if (!local || local.deleted) {
      problems.push(`crm ${record.nativeId} has no live local copy`)
      continue
    }
    linkedLocal.add(local.nativeId)
    if (!fieldsEqual(record.fields, local.fields)) problems.push(`${record.nativeId}: fields differ crm=${JSON.stringify(record.fields)} local=${JSON.stringify(local.fields)}`)
  }
  for (const item of await replica.listItems()) {
    const snapshot = await store.getSnapshot(mailboxReplica, item.nativeId)
    const link = snapshot && (await store.getLink(snapshot.concordId))
    if (link?.natives[crmReplica] !== undefined && !linkedLocal.has(item.nativeId)) problems.push(`local ${item.nativeId} is linked to a CRM record that is gone`)
  }
  return problems
}

function fieldsEqual(a: Fields, b: Fields): boolean {
  for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) if (!jsonEqual(a[name] ?? null, b[name] ?? null)) return false
  return true
}
