import { CursorExpiredError, type ItemKind, type Logger, type NativeId, type PushOp, type Regarding, SyncError, asConcordId, asCursor, asNativeId, asOpId, asVersion, concordIdFor, silentLogger } from '@concord/engine'
import { z } from 'zod'
import { OutlookProtocolError, protocolCodeOf } from './errors.js'
import type { OutlookLocalReplica } from './local-replica.js'
import {
  type AddContactResult,
  ClientResultSchemas,
  type ClientRequestType,
  CloseCodes,
  type CrmRecord,
  DEFAULT_MAX_FRAME_BYTES,
  HandshakeReplySchema,
  PROTOCOL_VERSION,
  ServerMessageSchema,
  type ShouldTrackInput,
  type ShouldTrackResult,
  type StopTrackingResult,
  type SyncSummary,
  type TrackInput,
  type TrackResult,
  type WelcomeMessage,
  decodeFrame,
  encodeFrame,
  parseResult,
} from './protocol.js'
import { outlookReplicaId } from './remote-replica.js'
import { ALL_KINDS } from './scope.js'
import { RpcPeer } from './rpc.js'
import { type FrameTransport, browserTransport } from './transport.js'

/** A WebSocket as both `ws` and browsers provide it (the event-target API). */
export interface ClientWebSocket {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  addEventListener(type: 'open', listener: () => void): void
  addEventListener(type: 'error', listener: (event: unknown) => void): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void
}
/** `ws`'s `WebSocket` in Node, `globalThis.WebSocket` in a browser. */
export type ClientWebSocketConstructor = new (url: string) => ClientWebSocket

/** Where a user's token is kept when they opt in to saving credentials. */
export interface CredentialStore {
  load(): Promise<string | undefined>
  save(token: string): Promise<void>
  clear(): Promise<void>
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export type ClientEvent =
  | { type: 'connected'; welcome: WelcomeMessage }
  | { type: 'disconnected'; code: number; reason: string }
  | { type: 'designation'; designated: boolean; fencingToken: number | null }
  /** The server changed the sync scope (`syncScope`): the kinds this client syncs from the next sync on. */
  | { type: 'scope'; kinds: readonly ItemKind[] }
  | { type: 'synced'; summary: SyncSummary }
  | { type: 'error'; error: Error }

export interface OutlookSyncClientOptions {
  /** `ws://` or `wss://` URL of the sync server's client endpoint. */
  url: string
  /** Stable id of this Outlook installation (1–64 of A–Z a–z 0–9 . _ : -). */
  clientId: string
  clientName?: string | undefined
  replica: OutlookLocalReplica
  /** The user's token (or a function that fetches a fresh one). Optional when `credentialStore` holds one. */
  token?: string | (() => Promise<string>) | undefined
  /** Opt-in: keep the token locally after a successful handshake. Default: nothing is saved. */
  credentialStore?: CredentialStore | undefined
  /** The WebSocket constructor: `ws`'s in Node. Default `globalThis.WebSocket`. */
  WebSocket?: ClientWebSocketConstructor | undefined
  /** Reconnect backoff: `initialMs · 2^attempt`, capped at `maxMs`, minus up to `jitter` of it at random. Defaults 1 s, 5 min, 0.5. */
  backoff?: { initialMs?: number | undefined; maxMs?: number | undefined; jitter?: number | undefined } | undefined
  /** Timeout of a client request. Default 60 s (a `syncNow` runs a whole cycle). */
  requestTimeoutMs?: number | undefined
  /** Frames larger than this are refused before the server's limit is known. Default 1 MiB. */
  maxFrameBytes?: number | undefined
  timers?: Timers | undefined
  random?: (() => number) | undefined
  logger?: Logger | undefined
  onEvent?: ((event: ClientEvent) => void) | undefined
  /** Sync at once after a handshake when offline edits are pending. Default true. */
  syncOnReconnect?: boolean | undefined
}

const OptionsSchema = z.object({
  url: z.string().regex(/^wss?:\/\//, 'expected a ws:// or wss:// URL'),
  clientId: z.string().regex(/^[A-Za-z0-9._:-]{1,64}$/, 'expected 1–64 characters of A–Z a–z 0–9 . _ : -'),
  clientName: z.string().max(256).optional(),
  requestTimeoutMs: z.number().int().positive().optional(),
  maxFrameBytes: z.number().int().min(1024).optional(),
  backoff: z.object({ initialMs: z.number().positive().optional(), maxMs: z.number().positive().optional(), jitter: z.number().min(0).max(1).optional() }).optional(),
})

/** Connection state of the client. */
export type ClientState = 'idle' | 'connecting' | 'open' | 'stopped'

/**
 * The Outlook side of client sync: keeps a WebSocket to the sync server (reconnecting with
 * exponential backoff and jitter), serves the server's pull/push from the local replica, runs the
 * sync schedule (the user's interval, never below the admin minimum) and offers `syncNow`,
 * designation, and the tracking requests. Offline edits stay in the local change log and are
 * synced after the next handshake.
 */
export class OutlookSyncClient {
  private readonly options: OutlookSyncClientOptions
  private readonly timers: Timers
  private readonly random: () => number
  private readonly logger: Logger
  private socket: ClientWebSocket | undefined
  private transport: FrameTransport | undefined
  private peer: RpcPeer | undefined
  private welcome: WelcomeMessage | undefined
  private attempt = 0
  private reconnectTimer: unknown
  private syncTimer: unknown
  private inflightSync: Promise<SyncSummary> | undefined
  private waiters: Array<{ resolve(w: WelcomeMessage): void; reject(e: Error): void }> = []
  private closeWaiters: Array<() => void> = []
  private _state: ClientState = 'idle'
  designated = false
  fencingToken: number | null = null
  intervalMinutes = 15
  /**
   * The kinds this client syncs, as the server last said (`welcome.syncKinds`, `syncScope`): the others
   * are synced server-side (e.g. e-mail when incoming e-mail is delivered by server-side sync) and are
   * never offered in a pull; tracking them with `track` still works. Every kind until told otherwise.
   */
  syncKinds: readonly ItemKind[] = ALL_KINDS

  constructor(options: OutlookSyncClientOptions) {
    const parsed = OptionsSchema.safeParse({ url: options.url, clientId: options.clientId, clientName: options.clientName, requestTimeoutMs: options.requestTimeoutMs, maxFrameBytes: options.maxFrameBytes, backoff: options.backoff })
    if (!parsed.success) throw new OutlookProtocolError('bad_request', `invalid OutlookSyncClient options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
    this.options = options
    this.timers = options.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>) }
    this.random = options.random ?? Math.random
    this.logger = options.logger ?? silentLogger
  }

  get state(): ClientState {
    return this._state
  }

  /** The last `welcome` of the current connection (user id, limits). */
  get session(): WelcomeMessage | undefined {
    return this._state === 'open' ? this.welcome : undefined
  }

  /** Connects (and keeps reconnecting until `stop`). Resolves at the first `welcome`. */
  start(): Promise<WelcomeMessage> {
    if (this._state === 'stopped') return Promise.reject(new OutlookProtocolError('unavailable', 'the client was stopped'))
    const connected = this.whenConnected()
    if (this._state === 'idle') void this.connect()
    return connected
  }

  /** Resolves at the next successful handshake (at once when connected). */
  whenConnected(): Promise<WelcomeMessage> {
    if (this._state === 'open' && this.welcome) return Promise.resolve(this.welcome)
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }

  /** Disconnects for good: no reconnect, no schedule. */
  async stop(): Promise<void> {
    if (this._state === 'stopped') return
    const wasOpen = this.socket !== undefined
    this._state = 'stopped'
    this.clearTimers()
    const closed = new Promise<void>((resolve) => this.closeWaiters.push(resolve))
    this.peer?.close(new OutlookProtocolError('unavailable', 'the client was stopped'))
    for (const w of this.waiters.splice(0)) w.reject(new OutlookProtocolError('unavailable', 'the client was stopped'))
    if (wasOpen) {
      this.transport?.close(CloseCodes.normal, 'client stopped')
      await closed
    }
  }

  private clearTimers(): void {
    if (this.reconnectTimer !== undefined) this.timers.clearTimeout(this.reconnectTimer)
    if (this.syncTimer !== undefined) this.timers.clearTimeout(this.syncTimer)
    this.reconnectTimer = undefined
    this.syncTimer = undefined
  }

  private async resolveToken(): Promise<string | undefined> {
    const token = this.options.token
    if (typeof token === 'string') return token
    if (typeof token === 'function') return token()
    return this.options.credentialStore?.load()
  }

  private async connect(): Promise<void> {
    if (this._state === 'stopped') return
    this._state = 'connecting'
    let token: string | undefined
    try {
      token = await this.resolveToken()
    } catch (error) {
      this.emit({ type: 'error', error: error as Error })
      return this.scheduleReconnect()
    }
    if (token === undefined) return this.fail(new OutlookProtocolError('unauthorized', 'no token given and no saved credentials'))
    if ((this._state as ClientState) === 'stopped') return
    const Ctor = this.options.WebSocket ?? (globalThis as { WebSocket?: ClientWebSocketConstructor }).WebSocket
    if (!Ctor) return this.fail(new OutlookProtocolError('unavailable', 'no WebSocket implementation: pass the `ws` WebSocket as options.WebSocket'))
    let socket: ClientWebSocket
    try {
      socket = new Ctor(this.options.url)
    } catch (error) {
      this.emit({ type: 'error', error: error as Error })
      return this.scheduleReconnect()
    }
    this.socket = socket
    const transport = browserTransport(socket)
    this.transport = transport
    let limit = this.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    const peer = new RpcPeer(transport, limit, 'c')
    this.peer = peer
    let welcomed = false
    socket.addEventListener('error', () => {
      // 'close' always follows; reconnect is handled there.
    })
    socket.addEventListener('open', () => {
      transport.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, token, clientId: this.options.clientId, ...(this.options.clientName === undefined ? {} : { clientName: this.options.clientName }) }))
    })
    transport.onClose((code, reason) => {
      peer.close(new OutlookProtocolError('unavailable', `connection closed (${code}${reason ? ` ${reason}` : ''})`))
      if (this.socket === socket) {
        this.socket = undefined
        if (this.syncTimer !== undefined) this.timers.clearTimeout(this.syncTimer)
        this.syncTimer = undefined
      }
      this.emit({ type: 'disconnected', code, reason })
      for (const resolve of this.closeWaiters.splice(0)) resolve()
      if (this._state !== 'stopped') {
        this._state = 'connecting'
        this.scheduleReconnect()
      }
    })
    transport.onMessage((text, bytes) => {
      if (bytes > limit) {
        transport.send(JSON.stringify({ type: 'error', code: 'too_large', message: `frame of ${bytes} bytes exceeds the maximum of ${limit} bytes` }))
        transport.close(CloseCodes.tooLarge, 'frame too large')
        return
      }
      if (text === undefined) return peer.replyError(undefined, 'bad_request', 'binary frames are not part of the protocol')
      if (!welcomed) {
        const reply = decodeFrame(text, HandshakeReplySchema)
        if (!reply.ok) {
          peer.replyError(undefined, 'bad_request', `expected welcome: ${reply.error.message}`)
          transport.close(CloseCodes.policy, 'bad handshake')
          return
        }
        if (reply.message.type === 'error') {
          const error = new OutlookProtocolError(reply.message.code, reply.message.message)
          if (error.code === 'unauthorized' || error.code === 'unsupported_version') {
            void this.options.credentialStore?.clear()
            this.fail(error)
          } else this.emit({ type: 'error', error })
          return
        }
        if (reply.message.protocol !== PROTOCOL_VERSION || reply.message.clientId !== this.options.clientId) {
          this.fail(new OutlookProtocolError('unsupported_version', `the server answered with protocol ${reply.message.protocol} for client ${reply.message.clientId}; this client speaks ${PROTOCOL_VERSION} as ${this.options.clientId}`))
          return
        }
        welcomed = true
        limit = reply.message.maxFrameBytes
        ;peer.maxFrameBytes = limit
        void this.onWelcome(reply.message, token)
        return
      }
      this.onFrame(peer, text)
    })
  }

  /** A fatal handshake refusal: stop reconnecting and report it. */
  private fail(error: OutlookProtocolError): void {
    this._state = 'stopped'
    this.clearTimers()
    this.transport?.close(CloseCodes.normal, error.code)
    if (this.socket === undefined) for (const resolve of this.closeWaiters.splice(0)) resolve()
    for (const w of this.waiters.splice(0)) w.reject(error)
    this.emit({ type: 'error', error })
  }

  private scheduleReconnect(): void {
    if (this._state === 'stopped' || this.reconnectTimer !== undefined) return
    const initial = this.options.backoff?.initialMs ?? 1000
    const max = this.options.backoff?.maxMs ?? 5 * 60_000
    const jitter = this.options.backoff?.jitter ?? 0.5
    const base = Math.min(max, initial * 2 ** Math.min(this.attempt, 30))
    const delay = base * (1 - jitter * this.random())
    this.attempt++
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = undefined
      void this.connect()
    }, delay)
  }

  /** Reconnect attempts since the last successful handshake, for diagnostics. */
  get reconnectAttempts(): number {
    return this.attempt
  }

  private async onWelcome(welcome: WelcomeMessage, token: string): Promise<void> {
    this.welcome = welcome
    this.attempt = 0
    this._state = 'open'
    this.designated = welcome.designated
    this.fencingToken = welcome.fencingToken
    this.intervalMinutes = Math.max(welcome.intervalMinutes, welcome.minIntervalMinutes)
    this.syncKinds = welcome.syncKinds ?? ALL_KINDS
    if (this.options.credentialStore && this.options.token !== undefined) {
      try {
        await this.options.credentialStore.save(token)
      } catch (error) {
        this.emit({ type: 'error', error: error as Error })
      }
    }
    this.schedule()
    for (const w of this.waiters.splice(0)) w.resolve(welcome)
    this.emit({ type: 'connected', welcome })
    // Offline edits go up right after reconnecting.
    if (this.options.syncOnReconnect !== false && this.designated && (await this.options.replica.pendingEdits()) > 0) this.syncNow().catch((error: unknown) => this.emit({ type: 'error', error: error as Error }))
  }

  private schedule(): void {
    if (this.syncTimer !== undefined) this.timers.clearTimeout(this.syncTimer)
    this.syncTimer = undefined
    if (!this.designated || this._state !== 'open') return
    this.syncTimer = this.timers.setTimeout(() => {
      this.syncTimer = undefined
      this.syncNow()
        .catch((error: unknown) => this.emit({ type: 'error', error: error as Error }))
        .finally(() => this.schedule())
    }, this.intervalMinutes * 60_000)
  }

  private emit(event: ClientEvent): void {
    if (event.type === 'error') this.logger.warn({ err: event.error }, 'outlook sync client error')
    try {
      this.options.onEvent?.(event)
    } catch (error) {
      this.logger.error({ err: error }, 'onEvent listener threw')
    }
  }

  // -------------------------------------------------------------------------------------------
  // Server → client
  // -------------------------------------------------------------------------------------------

  private onFrame(peer: RpcPeer, text: string): void {
    const decoded = decodeFrame(text, ServerMessageSchema)
    if (!decoded.ok) return peer.replyError(decoded.id, 'bad_request', decoded.error.message)
    const message = decoded.message
    switch (message.type) {
      case 'result':
        if (!peer.settle(message.id, message.result)) this.logger.debug({ id: message.id }, 'result for no pending request')
        return
      case 'error':
        if (message.id === undefined || !peer.settle(message.id, undefined, new OutlookProtocolError(message.code, message.message))) this.emit({ type: 'error', error: new OutlookProtocolError(message.code, message.message) })
        return
      case 'designation':
        this.designated = message.designated
        this.fencingToken = message.fencingToken
        this.schedule()
        this.emit({ type: 'designation', designated: message.designated, fencingToken: message.fencingToken })
        return
      case 'syncScope':
        this.syncKinds = message.kinds
        this.emit({ type: 'scope', kinds: message.kinds })
        return
      case 'pull':
      case 'push':
      case 'confirmMissing': {
        const fence = this.fenceError(message.fencingToken)
        if (fence) return peer.replyError(message.id, fence.code, fence.message)
        const work =
          message.type === 'pull'
            ? this.servePull(message.cursor, message.limit, message.kinds)
            : message.type === 'push'
              ? this.servePush(message.ops)
              : this.options.replica.confirmMissing(message.nativeIds.map(asNativeId)).then((missing) => ({ missing }))
        work.then(
          (result) => peer.reply(message.id, result),
          (error: unknown) => {
            const code = error instanceof CursorExpiredError ? 'cursor_expired' : protocolCodeOf(error)
            peer.replyError(message.id, code, error instanceof Error ? error.message : String(error))
          },
        )
        return
      }
    }
  }

  private fenceError(token: number): OutlookProtocolError | undefined {
    if (!this.designated || this.fencingToken === null) return new OutlookProtocolError('not_designated', `client ${this.options.clientId} is not the designated sync client`)
    if (token !== this.fencingToken) return new OutlookProtocolError('fenced', `fencing token ${token} does not match this client's token ${this.fencingToken}`)
    return undefined
  }

  /** Serves a pull (only `kinds`, the scope the server asks for); halves the page until its answer fits in one frame. */
  private async servePull(cursor: string | null, limit: number, kinds: readonly ItemKind[] | undefined): Promise<unknown> {
    const max = this.welcome?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    for (let size = limit; ; size = Math.ceil(size / 2)) {
      const page = await this.options.replica.pull(cursor === null ? null : asCursor(cursor), { limit: size, kinds })
      const wire = { changes: page.changes, nextCursor: page.nextCursor, hasMore: page.hasMore, ...(page.fullListing === undefined ? {} : { fullListing: page.fullListing }) }
      try {
        encodeFrame({ type: 'result', id: 's0000000000', result: wire }, max)
        return wire
      } catch (error) {
        if (size === 1) throw error
      }
    }
  }

  private async servePush(ops: readonly unknown[]): Promise<unknown> {
    const typed = ops.map((op) => {
      const o = op as { opId: string; concordId: string; nativeId?: string; ifMatch?: string }
      return { ...o, opId: asOpId(o.opId), concordId: asConcordId(o.concordId), ...(o.nativeId === undefined ? {} : { nativeId: asNativeId(o.nativeId) }), ...(o.ifMatch === undefined ? {} : { ifMatch: asVersion(o.ifMatch) }) } as PushOp
    })
    const result = await this.options.replica.push(typed)
    return {
      applied: result.applied,
      rejected: result.rejected.map((r) => ({ opId: r.opId, code: r.error instanceof SyncError ? r.error.code : 'Internal', message: r.error.message.slice(0, 1900) })),
    }
  }

  // -------------------------------------------------------------------------------------------
  // Client → server
  // -------------------------------------------------------------------------------------------

  private async request<T extends ClientRequestType>(type: T, body: object): Promise<z.infer<(typeof ClientResultSchemas)[T]>> {
    const peer = this.peer
    if (this._state !== 'open' || !peer) throw new OutlookProtocolError('unavailable', `not connected; ${type} needs a connection to the sync server`)
    const raw = await peer.call(type, body, { timeoutMs: this.options.requestTimeoutMs ?? 60_000 })
    return parseResult(ClientResultSchemas[type] as unknown as z.ZodType<z.infer<(typeof ClientResultSchemas)[T]>>, raw, type)
  }

  /** Asks the server to sync now (the designated client only). Concurrent calls share one run. */
  syncNow(): Promise<SyncSummary> {
    if (this.inflightSync) return this.inflightSync
    const run = (async () => {
      const summary = await this.request('syncNow', { fencingToken: this.fencingToken ?? 0 })
      this.emit({ type: 'synced', summary })
      return summary
    })()
    this.inflightSync = run
    const clear = () => {
      if (this.inflightSync === run) this.inflightSync = undefined
    }
    run.then(clear, clear)
    return run
  }

  /** Makes this machine the user's sync client (explicit); the previous one is fenced off. */
  async designate(): Promise<number> {
    const { fencingToken } = await this.request('designate', {})
    this.designated = true
    this.fencingToken = fencingToken
    this.schedule()
    this.emit({ type: 'designation', designated: true, fencingToken })
    return fencingToken
  }

  /** Sets the personal sync interval (minutes); refused below the admin minimum. */
  async setInterval(minutes: number): Promise<number> {
    const min = this.welcome?.minIntervalMinutes
    if (min !== undefined && minutes < min) throw new OutlookProtocolError('bad_request', `minutes: ${minutes} is below the administrator's minimum of ${min}`)
    const { intervalMinutes } = await this.request('setInterval', { minutes })
    this.intervalMinutes = intervalMinutes
    this.schedule()
    return intervalMinutes
  }

  /** The should-track check for a received e-mail. Only sender, recipients and subject are sent. */
  shouldTrack(email: ShouldTrackInput): Promise<ShouldTrackResult> {
    const only: ShouldTrackInput = { from: email.from, to: email.to ?? [], cc: email.cc ?? [], subject: email.subject ?? '' }
    return this.request('shouldTrack', { email: only })
  }

  /**
   * Track (and optionally Set Regarding) a local item: the CRM record is created now, stamped with
   * the Concord id the engine will give this item, so the next sync links instead of duplicating.
   */
  async track(nativeId: NativeId | string, options: { regarding?: Regarding | undefined } = {}): Promise<TrackResult> {
    const item = await this.options.replica.getItem(nativeId)
    if (!item || item.deleted) throw new OutlookProtocolError('not_found', `no local item ${nativeId}`)
    const userId = this.welcome?.userId
    if (userId === undefined) throw new OutlookProtocolError('unavailable', 'not connected')
    const concordId = item.concordId ?? concordIdFor(outlookReplicaId(userId, this.options.clientId), item.nativeId)
    const result = await this.trackRecord({ kind: item.kind, fields: item.fields, concordId, ...(options.regarding ? { regarding: options.regarding } : {}) })
    if (this.designated) await this.options.replica.setTracked(item.nativeId, true)
    return result
  }

  /** Tracks an item that is not in the local store (e.g. an e-mail on a non-designated client). */
  trackRecord(input: TrackInput): Promise<TrackResult> {
    return this.request('track', { input })
  }

  setRegarding(crmId: string, regarding: Regarding): Promise<{ crmId: string }> {
    return this.request('setRegarding', { input: { crmId, regarding } })
  }

  /** Stops tracking; the CRM copy is deleted only when the user owns it. Untracks the local item when given. */
  async stopTracking(crmId: string, nativeId?: NativeId | string): Promise<StopTrackingResult> {
    const result = await this.request('stopTracking', { input: { crmId } })
    if (nativeId !== undefined && this.designated) await this.options.replica.setTracked(nativeId, false)
    return result
  }

  /** Adds the sender of an e-mail as a CRM contact. */
  addContact(sender: { address: string; name?: string | undefined }): Promise<AddContactResult> {
    return this.request('addContact', { input: { sender: sender.name === undefined ? { address: sender.address } : { address: sender.address, name: sender.name } } })
  }

  /** Lightweight mode: only the CRM ids of the user's records of a kind. */
  async lookupIds(kind: ItemKind, userId?: string): Promise<string[]> {
    const result = await this.request('lookup', { input: { mode: 'ids', kind, ...(userId === undefined ? {} : { userId }) } })
    if (!('ids' in result)) throw new OutlookProtocolError('bad_request', 'lookup ids: the server answered with records')
    return result.ids
  }

  /** Details on demand for chosen CRM ids. */
  async lookupDetails(crmIds: readonly string[], userId?: string): Promise<CrmRecord[]> {
    const result = await this.request('lookup', { input: { mode: 'details', crmIds, ...(userId === undefined ? {} : { userId }) } })
    if (!('records' in result)) throw new OutlookProtocolError('bad_request', 'lookup details: the server answered with ids')
    return result.records
  }
}
