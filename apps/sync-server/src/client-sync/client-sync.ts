/**
 * Outlook client sync mounted in the sync server: the `/client` WebSocket endpoint on the admin API's
 * HTTP server (protocol v1 of `@concord/adapter-outlook`), per-user client tokens issued through the
 * admin API, LevelDB-backed designation / interval stores, and the engine pair between the user's CRM
 * scope (adapter-crm, impersonated) and the designated Outlook client.
 */
import type { IncomingMessage } from 'node:http'
import { hostname } from 'node:os'
import type { Duplex } from 'node:stream'
import { CrmAdapter, type OwnerMasks } from '@concord/adapter-crm'
import { ClientSessionHost, DEFAULT_MAX_FRAME_BYTES, OutlookProtocolError, protocolCodeOf, type DesignatedClient, type SyncDriver, SyncPairDriver, type SyncSummary } from '@concord/adapter-outlook'
import { type ItemKind, type MergePolicyConfig, PolicyMerge, ReplicaStore, type StoreDatabase, asReplicaId } from '@concord/engine'
import type { FastifyInstance } from 'fastify'
import { type WebSocket, WebSocketServer } from 'ws'
import { z } from 'zod'
import { LeaseLostError, ServerError } from '../errors.js'
import { InProcessLeases, type LeaseManager } from '../lease.js'
import { engineLogger } from '../logging.js'
import { pairContextOf } from '../mailbox/pair-context.js'
import type { SyncServer } from '../server.js'
import { crmRequestHandlers } from './handlers.js'
import { ClientSyncPolicy } from './policy.js'
import { UserLeases } from './user-leases.js'
import { ClientTokenStore, LevelDesignationStore, LevelIntervalStore, hashToken } from './stores.js'

export const ClientSyncOptionsSchema = z.strictObject({
  /** URL path of the WebSocket endpoint. Default `/client`. */
  path: z.string().regex(/^\/[A-Za-z0-9/_-]*$/).default('/client'),
  /** Largest frame either way (bytes); larger frames close the socket with 1009. Default 1 MiB. */
  maxFrameBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(DEFAULT_MAX_FRAME_BYTES),
  /** The administrator's minimum personal sync interval (minutes). Default 5. */
  minIntervalMinutes: z.number().positive().default(5),
  /** The interval a user gets until they choose one (minutes). Default 15. */
  defaultIntervalMinutes: z.number().positive().default(15),
  /** Timeout of one server → client pull / push (ms). Default 30 s. */
  rpcTimeoutMs: z.number().int().positive().default(30_000),
  /** How long a new connection may take to send `hello` (ms). Default 10 s. */
  helloTimeoutMs: z.number().int().positive().default(10_000),
  /** Engine cycles per `syncNow` at most. Default 3. */
  maxCycles: z.number().int().positive().max(20).default(3),
})
export type ClientSyncSettings = z.infer<typeof ClientSyncOptionsSchema>

export interface ClientSyncOptions extends Partial<ClientSyncSettings> {
  /** The server's current merge configuration (read at every sync, so direction changes apply). */
  mergeConfig: () => MergePolicyConfig
  /** Fetch for the CRM (default global fetch). */
  crmFetch?: typeof fetch | undefined
  /**
   * Where the user's client-sync lease (`client-sync:<userId>`) is taken: the server's `LeaseManager`
   * (Redis in a cluster). Designation writes and the client pair's store writes are fenced by it.
   * Default: an in-process manager.
   */
  leases?: LeaseManager | undefined
  /** Lease holder identity (default `hostname:pid`). */
  holder?: string | undefined
  /** Lease lifetime (default 60 s), renewed every third of it while held. */
  leaseTtlMs?: number | undefined
}

/** systemuserid: a GUID. */
const UserIdSchema = z.string().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'expected a CRM systemuserid (GUID)')
const UserParams = z.strictObject({ userId: UserIdSchema })
const TokenParams = z.strictObject({ userId: UserIdSchema, tokenId: z.string().uuid('expected a token id (UUID)') })
const IssueBody = z.strictObject({
  label: z.string().min(1).max(200).optional(),
  /** Lifetime of the token in days (default: until revoked). */
  expiresInDays: z.number().int().min(1).max(3650).optional(),
})
const SystemUserSchema = z.object({ internalemailaddress: z.string().nullable().optional(), isdisabled: z.boolean().nullable().optional() }).loose()

function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value ?? {})
  if (r.success) return r.data
  const issue = r.error.issues[0]!
  const field = [where, ...issue.path.map(String)].join('.')
  throw new ServerError('BadRequest', `${field}: ${issue.message}`)
}

const MASKS_TTL_MS = 5 * 60_000

/** Per-user CRM scope: the impersonated adapter, the owner's masks (cached a few minutes) and e-mail. */
interface UserScope {
  /** Every configured kind: what client requests (Track, lookups…) act on. */
  crm: CrmAdapter
  /** The client pair's CRM side: only the kinds of the current sync scope (its cursor is made for them). */
  pairCrm?: { kinds: string; crm: CrmAdapter }
  masks?: { value: OwnerMasks; at: number }
  email?: string
}

/** The user's sublevel name: hex keeps any user id safe as a LevelDB sublevel name. */
const userPart = (userId: string) => `u-${Buffer.from(userId, 'utf8').toString('hex')}`

/** The crm kinds (table order) of the configured kinds. */
function crmKinds(kinds: readonly ItemKind[]): Array<'contact' | 'appointment' | 'task' | 'email'> {
  return (['contact', 'appointment', 'task', 'email'] as const).filter((k) => kinds.includes(k))
}

/** Whether an error is (or was caused by) a fence refusing a write. */
function leaseLost(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) if (e instanceof LeaseLostError) return true
  return false
}

/** Handle of the mounted client sync; closed with the admin API (fastify `preClose`). */
export class ClientSync {
  readonly host: ClientSessionHost
  readonly tokens: ClientTokenStore
  readonly designations: LevelDesignationStore
  readonly intervals: LevelIntervalStore
  readonly settings: ClientSyncSettings
  readonly policy: ClientSyncPolicy
  readonly leases: UserLeases
  private readonly wss: WebSocketServer
  private readonly scopes = new Map<string, UserScope>()
  private readonly stores = new Map<string, Promise<ReplicaStore>>()
  private readonly running = new Set<Promise<unknown>>()
  /** Open sockets by the SHA-256 of the token in their `hello` (so revoking a token disconnects them). */
  private readonly socketsByToken = new Map<string, Set<WebSocket>>()
  private readonly db: StoreDatabase
  private closed = false

  constructor(
    private readonly server: SyncServer,
    private readonly options: ClientSyncOptions,
  ) {
    const { mergeConfig: _m, crmFetch: _f, leases, holder, leaseTtlMs, ...rest } = options
    this.settings = parse(ClientSyncOptionsSchema, rest, 'clientSync')
    this.db = server.sublevel('client-sync')
    const log = server.log.child({ component: 'client-sync' })
    this.leases = new UserLeases({ leases: leases ?? new InProcessLeases(), holder: holder ?? `${hostname()}:${process.pid}`, ttlMs: leaseTtlMs ?? 60_000, logger: engineLogger(log) })
    this.policy = new ClientSyncPolicy((userId) => server.mailboxOfUser(userId))
    this.tokens = new ClientTokenStore(this.db)
    this.designations = new LevelDesignationStore(this.db, this.leases)
    this.intervals = new LevelIntervalStore(this.db)
    this.host = new ClientSessionHost({
      authenticate: async (token) => {
        const info = await this.tokens.authenticate(token)
        return info ? { userId: info.userId } : null
      },
      designations: this.designations,
      intervals: this.intervals,
      handlers: crmRequestHandlers((userId) => Promise.resolve(this.scope(userId).crm), (userId) => this.policy.status(userId)),
      authorize: (ctx, action) => this.policy.authorize(ctx, action),
      syncScope: (userId) => this.policy.syncKinds(userId, server.config.mailboxes.kinds),
      sync: this.driver(),
      maxFrameBytes: this.settings.maxFrameBytes,
      minIntervalMinutes: this.settings.minIntervalMinutes,
      defaultIntervalMinutes: this.settings.defaultIntervalMinutes,
      rpcTimeoutMs: this.settings.rpcTimeoutMs,
      helloTimeoutMs: this.settings.helloTimeoutMs,
      logger: engineLogger(log),
    })
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.host.maxFrameBytes })
  }

  /** The user's impersonated CRM adapter (replica `crm:<userId>`, like the user's mailbox worker). */
  scope(userId: string): UserScope {
    let scope = this.scopes.get(userId)
    if (!scope) this.scopes.set(userId, (scope = { crm: this.newCrm(userId, this.server.config.mailboxes.kinds) }))
    return scope
  }

  private newCrm(userId: string, kinds: readonly ItemKind[]): CrmAdapter {
    const c = this.server.config.crm
    return new CrmAdapter(
      { orgUrl: c.url, tokenUrl: c.tokenUrl, clientId: c.clientId, clientSecret: c.clientSecret, impersonate: { systemUserId: userId }, kinds: crmKinds(kinds) },
      { replicaId: asReplicaId(`crm:${userId}`), logger: engineLogger(this.server.log.child({ component: 'client-sync', userId })), fetch: this.options.crmFetch ?? globalThis.fetch.bind(globalThis) },
    )
  }

  /**
   * The client pair's CRM side for a sync scope: an adapter that reads only the scope's tables (e-mail is
   * not even fetched while it is synced server-side). A scope change changes its tables, so its cursor
   * expires and the CRM side is listed once in full; records of a kind that left are not deleted
   * (`ScopedReplica` never confirms them missing).
   */
  private pairCrm(userId: string, kinds: readonly ItemKind[]): CrmAdapter {
    const scope = this.scope(userId)
    const tables = crmKinds(kinds)
    if (tables.length === 0 || tables.length === crmKinds(this.server.config.mailboxes.kinds).length) return scope.crm // nothing or everything: ScopedReplica drops the rest
    const key = tables.join(',')
    if (scope.pairCrm?.kinds !== key) scope.pairCrm = { kinds: key, crm: this.newCrm(userId, tables) }
    return scope.pairCrm.crm
  }

  private async masksOf(scope: UserScope): Promise<OwnerMasks> {
    const at = Date.now()
    if (scope.masks && at - scope.masks.at < MASKS_TTL_MS) return scope.masks.value
    const value = await scope.crm.getOwnerMasks()
    scope.masks = { value, at }
    return value
  }

  /** The user's primary e-mail address (`systemuser.internalemailaddress`); undefined when the user does not exist. */
  async userEmail(userId: string): Promise<string | undefined> {
    const scope = this.scope(userId)
    if (scope.email !== undefined) return scope.email
    const res = await scope.crm.http.raw('GET', `systemusers(${userId.toLowerCase()})?$select=internalemailaddress,isdisabled`)
    if (res.status === 404) {
      this.scopes.delete(userId) // not a CRM user: keep no adapter for it
      return undefined
    }
    if (res.status !== 200) throw scope.crm.http.failure(res)
    const row = SystemUserSchema.parse(JSON.parse(res.text))
    scope.email = row.internalemailaddress ?? ''
    return scope.email
  }

  /**
   * The user's engine store, on a part of the client-sync sublevel of its own (apart from mailbox pairs).
   * Every write after opening checks the user's client-sync lease (`Fence.assertHeld`): a sync runs under it.
   */
  private store(userId: string): Promise<ReplicaStore> {
    let store = this.stores.get(userId)
    if (!store) {
      const fence = this.leases.fence(userId)
      let opening = true // opening writes only the store's format marker (idempotent)
      store = ReplicaStore.open(this.db.sublevel<string, string>(userPart(userId), { valueEncoding: 'utf8' }) as unknown as StoreDatabase, { cacheEntries: this.server.config.store.cacheEntries, beforeWrite: () => opening || fence.assertHeld() })
      void store.then(() => (opening = false), () => undefined)
      store.catch(() => this.stores.delete(userId))
      this.stores.set(userId, store)
    }
    return store
  }

  /** A `SyncPairDriver` per sync, so the merge configuration and filters in force at that moment apply. */
  private driver(): SyncDriver {
    return {
      sync: (client: DesignatedClient, signal: AbortSignal): Promise<SyncSummary> => {
        if (this.closed) return Promise.reject(new OutlookProtocolError('unavailable', 'the sync server is shutting down'))
        const driver = new SyncPairDriver({
          store: (userId) => this.store(userId),
          crm: (userId, kinds) => this.pairCrm(userId, kinds),
          context: async (userId) => {
            const scope = this.scope(userId)
            const masks = await this.masksOf(scope)
            return pairContextOf(masks, (await this.userEmail(userId)) ?? '', await this.server.state.getFilters(userId))
          },
          maxCycles: this.settings.maxCycles,
          pairOptions: {
            merge: new PolicyMerge(this.options.mergeConfig()),
            logger: engineLogger(this.server.log.child({ component: 'client-sync', userId: client.userId, clientId: client.clientId })),
            ...(this.server.config.deletionGuard ? { deletionGuard: this.server.config.deletionGuard } : {}),
          },
        })
        // The client pair's store is written only under the user's client-sync lease.
        const run = this.leases.run(client.userId, () => driver.sync(client, signal)).catch((error: unknown) => {
          // The lease lapsed mid-sync (the fence refused a write): retryable for the client, like another holder.
          if (leaseLost(error)) throw new OutlookProtocolError('unavailable', `the client-sync lease of user ${client.userId} was lost during the sync; retry`, { cause: error })
          throw error
        })
        this.running.add(run)
        void run.catch(() => undefined).finally(() => this.running.delete(run))
        return run
      },
    }
  }

  /** Serves an HTTP upgrade on the admin server; answers false when the path is not ours. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (req.url ?? '').split('?')[0]
    if (path !== this.settings.path) return false
    if (this.closed) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n')
      return true
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws))
    return true
  }

  private accept(ws: WebSocket): void {
    // Remember which token the connection presented, so revoking the token disconnects it.
    ws.once('message', (data, isBinary) => {
      if (isBinary) return
      let token: unknown
      try {
        token = (JSON.parse(String(data)) as { token?: unknown }).token
      } catch {
        return
      }
      if (typeof token !== 'string') return
      const hash = hashToken(token)
      let set = this.socketsByToken.get(hash)
      if (!set) this.socketsByToken.set(hash, (set = new Set()))
      set.add(ws)
      ws.once('close', () => {
        set.delete(ws)
        if (set.size === 0 && this.socketsByToken.get(hash) === set) this.socketsByToken.delete(hash)
      })
    })
    this.host.handleWebSocket(ws)
  }

  /** Revokes a user's token (or all of them) and closes the connections that authenticated with it. */
  async revoke(userId: string, tokenId?: string): Promise<number> {
    const hashes = await this.tokens.revoke(userId, tokenId)
    for (const hash of hashes) for (const ws of this.socketsByToken.get(hash) ?? []) ws.close(1008, 'token revoked')
    return hashes.length
  }

  /** The admin routes (behind the admin bearer token like every `/api` route). */
  registerRoutes(app: FastifyInstance): void {
    app.post('/api/users/:userId/client-tokens', async (req, reply) => {
      const userId = parse(UserParams, req.params, 'params').userId.toLowerCase()
      const { label, expiresInDays } = parse(IssueBody, req.body, 'body')
      if ((await this.userEmail(userId)) === undefined) throw new ServerError('NotFound', `no CRM user ${userId}`)
      const { token, info } = await this.tokens.issue(userId, { label, ttlMs: expiresInDays === undefined ? undefined : expiresInDays * 86_400_000 })
      return reply.code(201).send({ ...info, token })
    })
    app.get('/api/users/:userId/client-tokens', async (req) => {
      const userId = parse(UserParams, req.params, 'params').userId.toLowerCase()
      return { tokens: await this.tokens.list(userId) }
    })
    app.delete('/api/users/:userId/client-tokens/:tokenId', async (req, reply) => {
      const { userId, tokenId } = parse(TokenParams, req.params, 'params')
      if ((await this.revoke(userId.toLowerCase(), tokenId)) === 0) throw new ServerError('NotFound', `no client token ${tokenId} of user ${userId}`)
      return reply.code(204).send()
    })
    app.delete('/api/users/:userId/client-tokens', async (req) => {
      const userId = parse(UserParams, req.params, 'params').userId.toLowerCase()
      return { revoked: await this.revoke(userId) }
    })
    app.post('/api/users/:userId/clients/sync', async (req, reply) => {
      const userId = parse(UserParams, req.params, 'params').userId.toLowerCase()
      let summary: SyncSummary | undefined
      try {
        summary = await this.syncUser(userId)
      } catch (error) {
        const code = error instanceof OutlookProtocolError ? error.code : undefined
        return reply.code(code === 'unavailable' || code === 'not_designated' || code === 'fenced' || code === 'sync_method_conflict' ? 409 : 502).send({ error: 'SyncFailed', code: protocolCodeOf(error), message: (error as Error).message })
      }
      if (!summary) return reply.code(409).send({ error: 'NotConnected', message: `the designated Outlook client of user ${userId} is not connected` })
      return { summary }
    })
    // Drops the user's client connections (1012 service restart): every client and pane reconnects with backoff.
    app.post('/api/users/:userId/clients/disconnect', async (req) => {
      const userId = parse(UserParams, req.params, 'params').userId.toLowerCase()
      return { disconnected: this.host.disconnect(userId) }
    })
    app.get('/api/users/:userId/clients', async (req) => {
      const userId = parse(UserParams, req.params, 'params').userId.toLowerCase()
      return { designated: (await this.designations.current(userId)) ?? null, sessions: this.host.sessionsOf(userId) }
    })
  }

  /** Runs a sync of the user's designated client now (server-initiated); undefined when it is not connected. */
  async syncUser(userId: string): Promise<SyncSummary | undefined> {
    if (!this.host.designatedClient(userId)) return undefined
    return this.host.syncUser(userId)
  }

  /** Closes every client connection (1001) and waits for running syncs to end. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.host.close()
    for (const ws of this.wss.clients) ws.terminate()
    await Promise.allSettled([...this.running])
    await new Promise<void>((resolve) => this.wss.close(() => resolve()))
  }
}

/**
 * Mounts Outlook client sync on the admin API (call after `buildAdminApi`, before `listen`): the
 * WebSocket endpoint, the token routes, and its shutdown with the admin API.
 */
export function attachClientSync(server: SyncServer, app: FastifyInstance, options: ClientSyncOptions): ClientSync {
  const sync = new ClientSync(server, options)
  sync.registerRoutes(app)
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (sync.handleUpgrade(req, socket, head)) return
    // Nobody else serves upgrades on this server: refuse instead of leaving the socket hanging.
    if (app.server.listenerCount('upgrade') === 1) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n')
  })
  app.addHook('preClose', async () => {
    await sync.close()
  })
  return sync
}
