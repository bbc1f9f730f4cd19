import { type ItemKind, type Logger, silentLogger } from '@concord/engine'
import type { Designation, DesignationStore, IntervalStore } from './designation.js'
import { InMemoryIntervalStore } from './designation.js'
import { OutlookProtocolError, protocolCodeOf } from './errors.js'
import {
  AddContactResultSchema,
  type AddContactInput,
  type AddContactResult,
  type ClientRequest,
  type ClientRequestType,
  ClientMessageSchema,
  CloseCodes,
  type CrmRecord,
  CrmRecordSchema,
  DEFAULT_MAX_FRAME_BYTES,
  HelloSchema,
  type ItemInfoInput,
  type ItemInfoResult,
  ItemInfoResultSchema,
  type MailboxStatusResult,
  MailboxStatusResultSchema,
  type SearchInput,
  type SearchResult,
  SearchResultSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  type SetRegardingInput,
  SetRegardingResultSchema,
  type ShouldTrackInput,
  type ShouldTrackResult,
  ShouldTrackResultSchema,
  type StopTrackingInput,
  type StopTrackingResult,
  StopTrackingResultSchema,
  type SyncSummary,
  SyncSummarySchema,
  type TrackInput,
  type TrackResult,
  TrackResultSchema,
  decodeFrame,
  encodeFrame,
  describeIssues,
} from './protocol.js'
import { RemoteClientReplica, outlookReplicaId } from './remote-replica.js'
import { ALL_KINDS, normalizeKinds, sameKinds } from './scope.js'
import { type CallOptions, RpcPeer } from './rpc.js'
import { type FrameTransport, type NodeWebSocketLike, wsTransport } from './transport.js'
import { z } from 'zod'

/** Who a `hello` token belongs to. */
export interface AuthenticatedUser {
  userId: string
}

/** The caller of a client request: always the authenticated user of the session, never a value from the request. */
export interface RequestContext {
  userId: string
  clientId: string
  designated: boolean
}

/**
 * What the sync server implements against the CRM (adapter-crm) for client requests. Every method
 * acts for `ctx.userId` only, under that user's privileges, sync filters and security masks. Throw
 * `OutlookProtocolError('forbidden' | 'not_found' | …)` or an engine `SyncError`; it is sent as an
 * `error` reply with the matching code.
 */
export interface ClientRequestHandlers {
  /** Decides whether a received e-mail is tracked. Gets only sender, recipients and subject. */
  shouldTrack(ctx: RequestContext, email: ShouldTrackInput): Promise<ShouldTrackResult>
  /** Creates (idempotently per `concordId`) and links the CRM activity for an Outlook item. */
  track(ctx: RequestContext, input: TrackInput): Promise<TrackResult>
  setRegarding(ctx: RequestContext, input: SetRegardingInput): Promise<{ crmId: string }>
  /** Untracks; deletes the CRM copy only when the user owns it (`deleted` says which happened). */
  stopTracking(ctx: RequestContext, input: StopTrackingInput): Promise<StopTrackingResult>
  /** Adds the sender of an e-mail as a CRM contact (or finds the existing one). */
  addContact(ctx: RequestContext, input: AddContactInput): Promise<AddContactResult>
  /** Lightweight mode: the CRM ids of the user's records of a kind. */
  lookupIds(ctx: RequestContext, kind: ItemKind): Promise<string[]>
  /** Details on demand; a record the user may not read is `forbidden`. */
  lookupDetails(ctx: RequestContext, crmIds: readonly string[]): Promise<CrmRecord[]>
  /** App for Outlook: whether the user's mailbox is enabled for server-side sync (absent: `bad_request`). */
  mailboxStatus?(ctx: RequestContext): Promise<MailboxStatusResult>
  /** App for Outlook: the parties of an open e-mail as CRM records, and its tracked CRM e-mail. */
  itemInfo?(ctx: RequestContext, input: ItemInfoInput): Promise<ItemInfoResult>
  /** App for Outlook: records to set as regarding whose name contains the text. */
  search?(ctx: RequestContext, input: SearchInput): Promise<SearchResult>
}

/**
 * What `ClientSessionHostOptions.authorize` is asked about: every client request type. `designate` is also
 * asked before a new client is designated automatically at `hello`, and `syncNow` before every sync
 * (client-asked or server-initiated).
 */
export type GuardedAction = ClientRequestType

/** A user's designated client, as the sync driver sees it. `replica` is the client's replica over the socket. */
export interface DesignatedClient {
  userId: string
  clientId: string
  fencingToken: number
  replica: RemoteClientReplica
  /** The sync scope of this sync: the kinds the client pair syncs (`ClientSessionHostOptions.syncScope`). */
  kinds: readonly ItemKind[]
}

/**
 * Runs a user's sync (the engine `SyncPair` whose mailbox side is `client.replica`). The host calls
 * it for one user at a time, only for the designated client; `signal` aborts when the session ends.
 */
export interface SyncDriver {
  sync(client: DesignatedClient, signal: AbortSignal): Promise<SyncSummary>
}

export interface ClientSessionHostOptions {
  /** Maps a `hello` token to its user; null refuses the connection (`unauthorized`, close 1008). */
  authenticate(token: string): Promise<AuthenticatedUser | null>
  designations: DesignationStore
  handlers: ClientRequestHandlers
  sync: SyncDriver
  /** Personal sync intervals. Default: in memory. */
  intervals?: IntervalStore | undefined
  /** Default personal interval (minutes). Default 15. */
  defaultIntervalMinutes?: number | undefined
  /** The admin-set minimum interval (minutes); personal intervals below it are refused. Default 5. */
  minIntervalMinutes?: number | undefined
  /** Maximum frame size both ways (bytes). Default 1 MiB. Give the same value to `ws`'s `maxPayload`. */
  maxFrameBytes?: number | undefined
  /** Timeout of a server→client pull/push. Default 30 s. */
  rpcTimeoutMs?: number | undefined
  /** How long a new connection may take to send `hello`. Default 10 s. */
  helloTimeoutMs?: number | undefined
  /** Client requests one session may have in flight; more are refused with `unavailable`. Default 32. */
  maxPendingRequests?: number | undefined
  /**
   * Server policy checked before every client request, before a server-initiated sync, and before the
   * automatic designation of a user's first client. Throw an `OutlookProtocolError` (e.g.
   * `mailbox_not_enabled`, `profile_unsupported`, `sync_method_conflict`) to refuse; it is sent as the
   * request's `error`. A refused automatic designation leaves the client undesignated. Default: allow all.
   */
  authorize?: ((ctx: RequestContext, action: GuardedAction) => Promise<void>) | undefined
  /**
   * The sync scope: the item kinds the user's Outlook sync client syncs (the server syncs the others
   * server-side, e.g. e-mail when the user's incoming e-mail is delivered by server-side sync). Asked at
   * every `hello` (protocol 2: `welcome.syncKinds`) and before every sync, so a change applies at the
   * next sync (protocol 2 sessions get a `syncScope` notification). Default: every kind.
   */
  syncScope?: ((userId: string) => Promise<readonly ItemKind[]>) | undefined
  logger?: Logger | undefined
}

const OptionsSchema = z.object({
  defaultIntervalMinutes: z.number().positive().optional(),
  minIntervalMinutes: z.number().positive().optional(),
  maxFrameBytes: z.number().int().min(1024).optional(),
  rpcTimeoutMs: z.number().int().positive().optional(),
  helloTimeoutMs: z.number().int().positive().optional(),
  maxPendingRequests: z.number().int().positive().optional(),
})

/** A connected, authenticated client. */
export interface SessionInfo {
  userId: string
  clientId: string
  clientName?: string | undefined
  designated: boolean
  fencingToken: number | null
  /** The connection's protocol version. */
  protocol: number
  /** The user's sync scope as this session last recorded it (welcome for protocol 2, then every sync); absent before the first. */
  syncKinds?: readonly ItemKind[] | undefined
}

class ClientSession implements SessionInfo {
  designated = false
  fencingToken: number | null = null
  /** The scope of this session's user as last recorded (at welcome for protocol 2, then at every sync); what a protocol 2 client was told. */
  scope: readonly ItemKind[] | undefined
  readonly peer: RpcPeer
  readonly replica: RemoteClientReplica
  readonly abort = new AbortController()
  closed = false
  inFlight = 0

  constructor(
    readonly transport: FrameTransport,
    readonly userId: string,
    readonly clientId: string,
    readonly clientName: string | undefined,
    designation: Designation | undefined,
    maxFrameBytes: number,
    rpcTimeoutMs: number,
    private readonly designations: DesignationStore,
    /** False: the App for Outlook (never designated). */
    readonly syncItems: boolean,
    /** The protocol version of this connection (its `hello`). */
    readonly protocol: number,
  ) {
    this.setDesignation(designation)
    this.peer = new RpcPeer(transport, maxFrameBytes, 's')
    this.replica = new RemoteClientReplica({
      replicaId: outlookReplicaId(userId, clientId),
      timeoutMs: rpcTimeoutMs,
      sendKinds: protocol >= 2,
      channel: {
        call: (type: 'pull' | 'push' | 'confirmMissing', body: object, options: CallOptions) => this.peer.call(type, body, options),
        fencingToken: () => this.checkFence(),
      },
    })
  }

  setDesignation(designation: Designation | undefined): void {
    this.designated = designation?.clientId === this.clientId
    this.fencingToken = this.designated ? designation!.fencingToken : null
  }

  /** The current fencing token of this client, read from the store (not from memory): the fence. */
  async checkFence(): Promise<number> {
    if (this.closed) throw new OutlookProtocolError('unavailable', 'the client connection is closed')
    const current = await this.designations.current(this.userId)
    if (current?.clientId !== this.clientId) throw new OutlookProtocolError('not_designated', `client ${this.clientId} is not the designated sync client of this user`)
    if (this.fencingToken !== current.fencingToken) throw new OutlookProtocolError('fenced', `fencing token ${this.fencingToken} is stale; the current one is ${current.fencingToken}`)
    return current.fencingToken
  }

  get info(): SessionInfo {
    return { userId: this.userId, clientId: this.clientId, clientName: this.clientName, designated: this.designated, fencingToken: this.fencingToken, protocol: this.protocol, ...(this.scope === undefined ? {} : { syncKinds: [...this.scope] }) }
  }
}

/**
 * The server side of client sync: accepts Outlook client connections, runs the handshake
 * (authentication, protocol version, designation), serves client requests through injected
 * handlers, and lets the sync driver pull from / push to the designated client. Mount it on any
 * `ws` server (`handleWebSocket`) or another socket (`handleConnection`).
 */
export class ClientSessionHost {
  readonly maxFrameBytes: number
  readonly minIntervalMinutes: number
  readonly defaultIntervalMinutes: number
  private readonly rpcTimeoutMs: number
  private readonly helloTimeoutMs: number
  private readonly maxPendingRequests: number
  private readonly intervals: IntervalStore
  private readonly logger: Logger
  private readonly sessions = new Map<string, Set<ClientSession>>()
  private readonly userLocks = new Map<string, Promise<unknown>>()
  private readonly transports = new Set<FrameTransport>()

  constructor(private readonly options: ClientSessionHostOptions) {
    const parsed = OptionsSchema.safeParse({ defaultIntervalMinutes: options.defaultIntervalMinutes, minIntervalMinutes: options.minIntervalMinutes, maxFrameBytes: options.maxFrameBytes, rpcTimeoutMs: options.rpcTimeoutMs, helloTimeoutMs: options.helloTimeoutMs, maxPendingRequests: options.maxPendingRequests })
    if (!parsed.success) throw new OutlookProtocolError('bad_request', `invalid ClientSessionHost options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    this.minIntervalMinutes = options.minIntervalMinutes ?? 5
    this.defaultIntervalMinutes = Math.max(options.defaultIntervalMinutes ?? 15, this.minIntervalMinutes)
    this.rpcTimeoutMs = options.rpcTimeoutMs ?? 30_000
    this.helloTimeoutMs = options.helloTimeoutMs ?? 10_000
    this.maxPendingRequests = options.maxPendingRequests ?? 32
    this.intervals = options.intervals ?? new InMemoryIntervalStore()
    this.logger = options.logger ?? silentLogger
  }

  /** Serves a `ws` WebSocket (create the server with `maxPayload: host.maxFrameBytes`). */
  handleWebSocket(socket: NodeWebSocketLike): void {
    this.handleConnection(wsTransport(socket))
  }

  /** Serves one connection over any transport. */
  handleConnection(transport: FrameTransport): void {
    this.transports.add(transport)
    let session: ClientSession | undefined
    let handshaking = false
    let closed = false
    const helloTimer = setTimeout(() => {
      if (session || closed) return
      transport.send(JSON.stringify({ type: 'error', code: 'bad_request', message: `no hello within ${this.helloTimeoutMs} ms` }))
      transport.close(CloseCodes.policy, 'no hello')
    }, this.helloTimeoutMs)
    transport.onClose(() => {
      closed = true
      clearTimeout(helloTimer)
      this.transports.delete(transport)
      if (session) this.dropSession(session)
    })
    transport.onMessage((text, bytes) => {
      if (closed) return
      if (bytes > this.maxFrameBytes) {
        transport.send(JSON.stringify({ type: 'error', code: 'too_large', message: `frame of ${bytes} bytes exceeds the maximum of ${this.maxFrameBytes} bytes` }))
        transport.close(CloseCodes.tooLarge, 'frame too large')
        return
      }
      if (text === undefined) {
        transport.send(JSON.stringify({ type: 'error', code: 'bad_request', message: 'binary frames are not part of the protocol' }))
        return
      }
      if (session) return this.onFrame(session, text)
      if (handshaking) {
        transport.send(JSON.stringify({ type: 'error', code: 'bad_request', message: 'wait for welcome before sending requests' }))
        return
      }
      handshaking = true
      void this.handshake(transport, text, () => closed).then(
        (s) => {
          clearTimeout(helloTimer)
          session = s
          if (s && closed) this.dropSession(s)
        },
        (error: unknown) => {
          this.logger.error({ err: error }, 'outlook client handshake failed')
          transport.close(CloseCodes.internal, 'handshake failed')
        },
      )
    })
  }

  private refuse(transport: FrameTransport, code: 'bad_request' | 'unsupported_version' | 'unauthorized' | 'unavailable', message: string, closeCode: number): undefined {
    transport.send(JSON.stringify({ type: 'error', code, message }))
    transport.close(closeCode, code)
    return undefined
  }

  private async handshake(transport: FrameTransport, text: string, isClosed: () => boolean): Promise<ClientSession | undefined> {
    const decoded = decodeFrame(text, HelloSchema)
    if (!decoded.ok) return this.refuse(transport, 'bad_request', `expected hello: ${decoded.error.message}`, CloseCodes.policy)
    const hello = decoded.message
    if (!SUPPORTED_PROTOCOL_VERSIONS.includes(hello.protocol)) return this.refuse(transport, 'unsupported_version', `protocol ${hello.protocol} is not supported; this server speaks ${SUPPORTED_PROTOCOL_VERSIONS.join(' and ')}`, CloseCodes.policy)
    let user: AuthenticatedUser | null
    try {
      user = await this.options.authenticate(hello.token)
    } catch (error) {
      this.logger.warn({ err: error }, 'outlook client authentication failed')
      return this.refuse(transport, 'unavailable', 'authentication is unavailable; retry later', CloseCodes.internal)
    }
    if (!user || typeof user.userId !== 'string' || user.userId.length === 0) return this.refuse(transport, 'unauthorized', 'the token was refused', CloseCodes.policy)
    const syncItems = hello.syncItems ?? true
    const designation = syncItems ? await this.initialDesignation(user.userId, hello.clientId) : await this.options.designations.current(user.userId)
    const stored = await this.intervals.get(user.userId)
    const intervalMinutes = Math.max(stored ?? this.defaultIntervalMinutes, this.minIntervalMinutes)
    const syncKinds = hello.protocol >= 2 ? await this.scopeOf(user.userId) : undefined
    if (isClosed()) return undefined
    const session = new ClientSession(transport, user.userId, hello.clientId, hello.clientName, designation, this.maxFrameBytes, this.rpcTimeoutMs, this.options.designations, syncItems, hello.protocol)
    session.scope = syncKinds
    // A reconnect of the same client replaces its older connection.
    for (const other of this.sessions.get(user.userId) ?? []) if (other.clientId === hello.clientId) other.transport.close(CloseCodes.normal, 'replaced by a newer connection')
    let set = this.sessions.get(user.userId)
    if (!set) this.sessions.set(user.userId, (set = new Set()))
    set.add(session)
    transport.send(
      encodeFrame(
        {
          type: 'welcome',
          protocol: hello.protocol,
          userId: user.userId,
          clientId: hello.clientId,
          designated: session.designated,
          fencingToken: session.fencingToken,
          intervalMinutes,
          minIntervalMinutes: this.minIntervalMinutes,
          maxFrameBytes: this.maxFrameBytes,
          ...(syncKinds === undefined ? {} : { syncKinds }),
        },
        this.maxFrameBytes,
      ),
    )
    this.logger.info({ userId: user.userId, clientId: hello.clientId, designated: session.designated }, 'outlook client connected')
    return session
  }

  /**
   * The designation a new connection starts with: the user's first client claims it when the policy
   * allows; a refusal (policy, or a store that is unavailable now) connects the client undesignated.
   */
  private async initialDesignation(userId: string, clientId: string): Promise<Designation | undefined> {
    if (await this.mayClaim(userId, clientId)) {
      try {
        return await this.options.designations.claimIfUnassigned(userId, clientId)
      } catch (error) {
        if (!(error instanceof OutlookProtocolError)) throw error
        this.logger.warn({ userId, clientId, code: error.code, reason: error.message }, 'outlook client not designated automatically')
      }
    }
    return this.options.designations.current(userId)
  }

  /** Whether the policy lets a new client become the user's sync client automatically (only when nobody is). */
  private async mayClaim(userId: string, clientId: string): Promise<boolean> {
    if (!this.options.authorize) return true
    try {
      await this.options.authorize({ userId, clientId, designated: false }, 'designate')
      return true
    } catch (error) {
      if (!(error instanceof OutlookProtocolError)) throw error
      this.logger.info({ userId, clientId, code: error.code, reason: error.message }, 'outlook client not designated automatically')
      return false
    }
  }

  private dropSession(session: ClientSession): void {
    if (session.closed) return
    session.closed = true
    session.abort.abort()
    session.peer.close(new OutlookProtocolError('unavailable', 'the client connection closed'))
    const set = this.sessions.get(session.userId)
    set?.delete(session)
    if (set?.size === 0) this.sessions.delete(session.userId)
  }

  private onFrame(session: ClientSession, text: string): void {
    const decoded = decodeFrame(text, ClientMessageSchema)
    if (!decoded.ok) return session.peer.replyError(decoded.id, 'bad_request', decoded.error.message)
    const message = decoded.message
    if (message.type === 'result') {
      if (!session.peer.settle(message.id, message.result)) this.logger.debug({ id: message.id }, 'result for no pending request')
      return
    }
    if (message.type === 'error') {
      if (message.id === undefined || !session.peer.settle(message.id, undefined, new OutlookProtocolError(message.code, message.message))) this.logger.warn({ code: message.code, message: message.message }, 'outlook client reported an error')
      return
    }
    if (session.inFlight >= this.maxPendingRequests) return session.peer.replyError(message.id, 'unavailable', `too many requests in flight (at most ${this.maxPendingRequests}); retry after an answer`)
    session.inFlight++
    void this.dispatch(session, message).then(
      (result) => {
        session.inFlight--
        session.peer.reply(message.id, result)
      },
      (error: unknown) => {
        session.inFlight--
        const code = protocolCodeOf(error)
        if (code === 'internal') this.logger.error({ err: error, type: message.type }, 'outlook client request failed')
        session.peer.replyError(message.id, code, error instanceof Error ? error.message : String(error))
      },
    )
  }

  private context(session: ClientSession): RequestContext {
    return { userId: session.userId, clientId: session.clientId, designated: session.designated }
  }

  private async dispatch(session: ClientSession, message: ClientRequest): Promise<unknown> {
    const handlers = this.options.handlers
    if (message.type !== 'syncNow') await this.options.authorize?.(this.context(session), message.type)
    switch (message.type) {
      case 'syncNow':
        return this.syncNow(session, message.fencingToken)
      case 'designate':
        return this.designate(session)
      case 'setInterval': {
        if (message.minutes < this.minIntervalMinutes) throw new OutlookProtocolError('bad_request', `minutes: ${message.minutes} is below the administrator's minimum of ${this.minIntervalMinutes}`)
        await this.intervals.set(session.userId, message.minutes)
        return { intervalMinutes: message.minutes }
      }
      case 'shouldTrack':
        return handlerResult(ShouldTrackResultSchema, await handlers.shouldTrack(this.context(session), message.email), 'shouldTrack')
      case 'track':
        return handlerResult(TrackResultSchema, await handlers.track(this.context(session), message.input), 'track')
      case 'setRegarding':
        return handlerResult(SetRegardingResultSchema, await handlers.setRegarding(this.context(session), message.input), 'setRegarding')
      case 'stopTracking':
        return handlerResult(StopTrackingResultSchema, await handlers.stopTracking(this.context(session), message.input), 'stopTracking')
      case 'addContact':
        return handlerResult(AddContactResultSchema, await handlers.addContact(this.context(session), message.input), 'addContact')
      case 'lookup': {
        const input = message.input
        if (input.userId !== undefined && input.userId !== session.userId) throw new OutlookProtocolError('forbidden', `this connection is bound to its own user; it may not read the items of user ${input.userId}`)
        if (input.mode === 'ids') return { ids: handlerResult(z.array(z.string().min(1).max(128)), await handlers.lookupIds(this.context(session), input.kind), 'lookupIds') }
        return { records: handlerResult(z.array(CrmRecordSchema), await handlers.lookupDetails(this.context(session), input.crmIds), 'lookupDetails') }
      }
      case 'mailboxStatus':
        if (!handlers.mailboxStatus) throw unsupported(message.type)
        return handlerResult(MailboxStatusResultSchema, await handlers.mailboxStatus(this.context(session)), 'mailboxStatus')
      case 'itemInfo':
        if (!handlers.itemInfo) throw unsupported(message.type)
        return handlerResult(ItemInfoResultSchema, await handlers.itemInfo(this.context(session), message.input), 'itemInfo')
      case 'search':
        if (!handlers.search) throw unsupported(message.type)
        return handlerResult(SearchResultSchema, await handlers.search(this.context(session), message.input), 'search')
    }
  }

  private async designate(session: ClientSession): Promise<{ fencingToken: number }> {
    if (!session.syncItems) throw new OutlookProtocolError('bad_request', `client ${session.clientId} said hello with syncItems: false (App for Outlook); it cannot be the sync client`)
    const designation = await this.options.designations.designate(session.userId, session.clientId)
    for (const other of this.sessions.get(session.userId) ?? []) {
      const was = other.designated
      other.setDesignation(designation)
      if (other !== session && was) {
        other.transport.send(JSON.stringify({ type: 'designation', designated: false, fencingToken: null }))
      }
    }
    this.logger.info({ userId: session.userId, clientId: session.clientId, fencingToken: designation.fencingToken }, 'outlook sync client designated')
    return { fencingToken: designation.fencingToken }
  }

  private async syncNow(session: ClientSession, fencingToken: number): Promise<SyncSummary> {
    const current = await this.options.designations.current(session.userId)
    if (current?.clientId !== session.clientId) throw new OutlookProtocolError('not_designated', `client ${session.clientId} is not the designated sync client; it may track e-mail but not sync Outlook items`)
    if (fencingToken !== current.fencingToken || session.fencingToken !== current.fencingToken) throw new OutlookProtocolError('fenced', `fencing token ${fencingToken} is stale; the current one is ${current.fencingToken}`)
    await this.options.authorize?.(this.context(session), 'syncNow')
    return this.withUserLock(session.userId, async () => {
      const token = await session.checkFence()
      // The scope is decided again for every sync: a change (e.g. the mailbox now gets e-mail server-side) applies now.
      const kinds = await this.scopeOf(session.userId)
      this.announceScope(session.userId, kinds)
      const summary = await this.options.sync.sync({ userId: session.userId, clientId: session.clientId, fencingToken: token, replica: session.replica, kinds }, session.abort.signal)
      return handlerResult(SyncSummarySchema, summary, 'sync driver')
    })
  }

  /** The user's sync scope now (`syncScope`), in canonical order; every kind without the option. */
  private async scopeOf(userId: string): Promise<ItemKind[]> {
    if (!this.options.syncScope) return [...ALL_KINDS]
    const kinds = await this.options.syncScope(userId)
    const parsed = z.array(z.enum(ALL_KINDS as readonly [ItemKind, ...ItemKind[]])).safeParse(kinds)
    if (!parsed.success) throw new OutlookProtocolError('internal', describeIssues(parsed.error, 'the syncScope option returned an invalid scope'))
    return normalizeKinds(parsed.data)
  }

  /** Records the scope on the user's sessions; tells the protocol 2 ones whose last known scope differs (`syncScope`). */
  private announceScope(userId: string, kinds: readonly ItemKind[]): void {
    for (const s of this.sessions.get(userId) ?? []) {
      if (s.closed || (s.scope !== undefined && sameKinds(s.scope, kinds))) continue
      s.scope = kinds
      if (s.protocol < 2) continue // a protocol 1 client has no scope on the wire (it was told none at welcome)
      s.transport.send(encodeFrame({ type: 'syncScope', kinds }, this.maxFrameBytes))
      this.logger.info({ userId, clientId: s.clientId, kinds }, 'outlook client sync scope changed')
    }
  }

  /** One sync at a time per user, across all of the user's sessions. */
  private withUserLock<T>(userId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.userLocks.get(userId) ?? Promise.resolve()
    const run = previous.then(fn, fn)
    const settled = run.catch(() => undefined)
    this.userLocks.set(userId, settled)
    void settled.then(() => {
      if (this.userLocks.get(userId) === settled) this.userLocks.delete(userId)
    })
    return run
  }

  /** The user's designated client, when it is connected (for server-initiated syncs). */
  designatedClient(userId: string): DesignatedClient | undefined {
    for (const s of this.sessions.get(userId) ?? []) if (s.designated && s.fencingToken !== null && !s.closed) return { userId, clientId: s.clientId, fencingToken: s.fencingToken, replica: s.replica, kinds: s.scope ?? ALL_KINDS }
    return undefined
  }

  /** Runs the user's sync now from the server side (e.g. on the server's own schedule). */
  async syncUser(userId: string): Promise<SyncSummary> {
    for (const s of this.sessions.get(userId) ?? []) if (s.designated && s.fencingToken !== null && !s.closed) return this.syncNow(s, s.fencingToken)
    throw new OutlookProtocolError('unavailable', `the designated sync client of user ${userId} is not connected`)
  }

  /** The user's connected clients. */
  sessionsOf(userId: string): SessionInfo[] {
    return [...(this.sessions.get(userId) ?? [])].map((s) => s.info)
  }

  /**
   * Closes the user's connections (e.g. an administrator's "reconnect"); clients reconnect with backoff
   * unless `code` is 1008 (policy). Returns how many were closed.
   */
  disconnect(userId: string, code = 1012, reason = 'service restart'): number {
    const sessions = [...(this.sessions.get(userId) ?? [])]
    for (const s of sessions) s.transport.close(code, reason)
    return sessions.length
  }

  /** Closes every connection (1001 going away). */
  close(): void {
    for (const transport of [...this.transports]) transport.close(1001, 'server shutting down')
  }
}

/** Validates what an injected handler returned; a mismatch is a server bug (`internal`), not the client's fault. */
function handlerResult<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new OutlookProtocolError('internal', describeIssues(parsed.error, `the ${what} handler returned an invalid result`))
  return parsed.data
}

/** A request this server's handlers do not implement (an optional App for Outlook request). */
function unsupported(type: string): OutlookProtocolError {
  return new OutlookProtocolError('bad_request', `type: this server does not support ${type} requests`)
}
