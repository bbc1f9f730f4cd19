/**
 * One instance of a Concord cluster (`concord serve --cluster redis://…`). Mailboxes are partitioned into
 * shards; the instance heartbeats its membership, computes which shards it should own (rendezvous
 * hashing over the live members), takes their leases, and runs each owned shard as a `SyncServer` whose
 * state lives in Redis behind the shard's fencing token (`FencedShardStore`), whose syncs run as BullMQ
 * jobs (`ShardJobs`), and whose requests are fenced and budgeted cluster-wide (`clusterFetch`).
 *
 * Failover: a dead instance stops renewing; its leases expire within one lease period; the preferred
 * owners among the survivors take the shards and load their state — nothing is resynced. A paused
 * instance that wakes up finds its fence expired and every write refused by Redis. Rebalancing: when an
 * instance joins, owners hand the shards it now prefers over gracefully (stop, flush, release).
 */
import { hostname } from 'node:os'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import type { ConnectionOptions } from 'bullmq'
import type { Logger as PinoLogger } from 'pino'
import type { ServerConfig } from '../config.js'
import { ServerError } from '../errors.js'
import { Fence, type Lease, type LeaseManager } from '../lease.js'
import { createLogger } from '../logging.js'
import type { MailboxDirectoryPort, MailboxRow } from '../mailbox/directory.js'
import { ServerMetrics } from '../metrics.js'
import { type MailboxSummary, type MailboxTester, SyncServer } from '../server.js'
import { buildClusterApi } from './cluster-api.js'
import { ClusterRateLimits, clusterFetch } from './cluster-fetch.js'
import { Membership } from './membership.js'
import { ClusterKeys, RedisLeases, type ScriptedRedis, withLeaseScripts } from './redis-leases.js'
import { NotificationRouter, ShardJobs } from './shard-jobs.js'
import { FencedShardStore } from './shard-store.js'
import { shardKey, shardOf, shardsFor } from './shards.js'
import { settlesWithin } from '../util/deadline.js'

export interface ClusterInstanceOptions {
  config: ServerConfig
  redisUrl: string
  /** The CRM mailbox directory, given the fenced CRM fetch of a shard. */
  directory: (crmFetch: typeof fetch) => MailboxDirectoryPort
  tester: MailboxTester
  graphFetch?: typeof fetch | undefined
  crmFetch?: typeof fetch | undefined
  logger?: PinoLogger | undefined
  now?: (() => number) | undefined
}

interface HeldShard {
  lease: Lease
  fence: Fence
}

interface RunningShard {
  shard: number
  held: HeldShard
  server: SyncServer
  jobs: ShardJobs
}

export interface ShardView {
  shard: number
  owner: string | null
  token: number | null
  expiresInMs: number | null
  local: boolean
  mailboxes: number | null
}

export interface ClusterView {
  cluster: string
  instanceId: string
  members: string[]
  shards: ShardView[]
}

/** Parses a redis:// URL into the connection options BullMQ wants (its own connections, no retry limit). */
export function bullConnection(url: string): ConnectionOptions {
  const u = new URL(url)
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(Number.isInteger(db) ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  }
}

/** The shard's view of the mailbox directory: only its own mailboxes. */
class ShardDirectory implements MailboxDirectoryPort {
  constructor(
    private readonly inner: MailboxDirectoryPort,
    private readonly shard: number,
    private readonly shards: number,
  ) {}
  async list(): Promise<MailboxRow[]> {
    return (await this.inner.list()).filter((r) => shardOf(r.mailboxId, this.shards) === this.shard)
  }
  recordTestResult(...a: Parameters<MailboxDirectoryPort['recordTestResult']>) {
    return this.inner.recordTestResult(...a)
  }
  recordSyncOutcome(...a: Parameters<MailboxDirectoryPort['recordSyncOutcome']>) {
    return this.inner.recordSyncOutcome(...a)
  }
  disable(...a: Parameters<MailboxDirectoryPort['disable']>) {
    return this.inner.disable(...a)
  }
  raiseAlert(...a: Parameters<MailboxDirectoryPort['raiseAlert']>) {
    return this.inner.raiseAlert(...a)
  }
}

/**
 * Mailbox leases inside a shard: held exactly while the shard is. The shard's fence and its Redis
 * token check guard every write, so a per-mailbox lease adds nothing but must say "lost" with the shard.
 */
class ShardScopedLeases implements LeaseManager {
  constructor(private readonly fence: Fence) {}
  async acquire(key: string, holder: string): Promise<Lease | null> {
    return this.fence.held() ? { key, holder, token: this.fence.token!, expiresAt: Number.MAX_SAFE_INTEGER } : null
  }
  async renew(lease: Lease): Promise<Lease | null> {
    return this.fence.held() && lease.token === this.fence.token ? lease : null
  }
  async release(): Promise<void> {}
  async current(): Promise<Lease | null> {
    return null
  }
}

export class ClusterInstance {
  readonly id: string
  readonly keys: ClusterKeys
  readonly metrics: ServerMetrics
  readonly log: PinoLogger
  readonly shardCount: number
  adminUrl = ''
  private readonly redis: ScriptedRedis
  private readonly leases: RedisLeases
  private readonly membership: Membership
  private readonly limits: ClusterRateLimits
  private readonly notifications: NotificationRouter
  private readonly connection: ConnectionOptions
  private readonly shards = new Map<number, RunningShard>()
  private readonly busy = new Set<number>()
  private readonly ttl: number
  private readonly now: () => number
  private members: string[] = []
  private timer: NodeJS.Timeout | undefined
  private renewTimer: NodeJS.Timeout | undefined
  /** Shard leases held (running or still starting), renewed on their own timer. */
  private readonly held = new Map<number, HeldShard>()
  private ticking: Promise<void> | undefined
  private api: FastifyInstance | undefined
  private stopped = false
  /** How long a shard may take to start (load its state, list its mailboxes) before it is given up. */
  private readonly startDeadlineMs: number
  fencedWrites = 0

  private constructor(private readonly o: ClusterInstanceOptions) {
    const c = o.config.cluster
    this.id = c.instanceId ?? `${hostname()}:${process.pid}`
    this.keys = new ClusterKeys(c.name)
    this.shardCount = c.shards
    this.ttl = c.leaseTtlMs
    this.startDeadlineMs = Math.max(30_000, 10 * c.leaseTtlMs)
    this.now = o.now ?? Date.now
    this.log = (o.logger ?? createLogger(o.config.logLevel)).child({ instance: this.id })
    this.metrics = new ServerMetrics()
    // Lease and state commands fail fast rather than queue for long: a fence must not wait on a dead link.
    this.redis = withLeaseScripts(new Redis(o.redisUrl, { maxRetriesPerRequest: 1, commandTimeout: Math.max(1_000, Math.floor(this.ttl / 3)), lazyConnect: true }))
    this.redis.on('error', (error: Error) => this.log.debug({ err: error }, 'redis connection error'))
    this.leases = new RedisLeases(this.redis, this.keys, this.now)
    this.membership = new Membership(this.redis, this.keys, this.id, this.ttl)
    this.limits = new ClusterRateLimits(this.redis, this.keys.ratePrefix(), c.budgets)
    this.connection = bullConnection(o.redisUrl)
    this.notifications = new NotificationRouter(this.connection, this.keys.queuePrefix(), (error) => this.log.debug({ err: error }, 'notification queue connection error'))
  }

  static async start(options: ClusterInstanceOptions): Promise<ClusterInstance> {
    const instance = new ClusterInstance(options)
    try {
      await instance.redis.connect()
    } catch (error) {
      instance.redis.disconnect()
      throw new ServerError('Config', `cannot reach the cluster's Redis at ${redact(options.redisUrl)}: ${(error as Error).message}`, { cause: error })
    }
    try {
      instance.api = await buildClusterApi(instance)
      const a = options.config.admin
      await instance.api.listen({ host: a.host, port: a.port })
      const address = instance.api.server.address()
      const port = typeof address === 'object' && address ? address.port : a.port
      instance.adminUrl = `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${port}`
      await instance.tick()
      instance.schedule()
      instance.scheduleRenewals()
      instance.log.info({ adminUrl: instance.adminUrl, shards: [...instance.shards.keys()], members: instance.members }, 'cluster instance started')
      return instance
    } catch (error) {
      await instance.stop()
      throw error
    }
  }

  get config(): ServerConfig {
    return this.o.config
  }

  private schedule(): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.ticking = this.tick()
        .catch((error: unknown) => this.log.warn({ err: error }, 'cluster reconciliation failed; retrying'))
        .finally(() => {
          this.ticking = undefined
          this.schedule()
        })
    }, Math.max(200, Math.floor(this.ttl / 3)))
  }

  /** Membership and assignment: hand over shards no longer ours, take the ones that are (not awaited: a slow shard start never delays the lease renewals). */
  private async tick(): Promise<void> {
    try {
      this.members = await this.membership.heartbeat()
    } catch (error) {
      this.log.warn({ err: error }, 'cluster heartbeat failed')
      return
    }
    const desired = new Set(this.members.includes(this.id) ? shardsFor(this.id, this.members, this.shardCount) : [])
    for (const shard of [...this.shards.keys()]) if (!desired.has(shard) && !this.busy.has(shard)) void this.dropShard(shard, 'handoff')
    for (const shard of desired) if (!this.held.has(shard) && !this.busy.has(shard)) void this.takeShard(shard)
  }

  private scheduleRenewals(): void {
    if (this.stopped) return
    this.renewTimer = setTimeout(() => {
      void this.renewAll().finally(() => this.scheduleRenewals())
    }, Math.max(100, Math.floor(this.ttl / 4)))
  }

  /** Renews every held shard lease (including shards still starting); a lost one is dropped at once. */
  private async renewAll(): Promise<void> {
    await Promise.all(
      [...this.held].map(async ([shard, h]) => {
        const renewed = await this.leases.renew(h.lease, this.ttl).catch((error: unknown) => {
          this.log.warn({ shard, err: error }, 'shard lease renewal failed')
          return undefined
        })
        if (renewed && this.held.get(shard) === h) {
          h.lease = renewed
          h.fence.set(renewed)
        }
        if (renewed === null || !h.fence.held()) {
          h.fence.set(null)
          if (this.held.get(shard) === h) this.held.delete(shard)
          void this.dropShard(shard, 'lost')
        }
      }),
    )
  }

  private async takeShard(shard: number): Promise<void> {
    if (this.stopped) return
    this.busy.add(shard)
    try {
      const lease = await this.leases.acquire(shardKey(shard), this.id, this.ttl)
      if (!lease) return // still held by its previous owner: it hands over, or its lease expires
      const fence = new Fence(this.now, Math.min(1_000, Math.floor(this.ttl / 5)))
      fence.set(lease)
      const held = { lease, fence }
      this.held.set(shard, held)
      try {
        const opening = this.openShard(shard, held)
        if (!(await settlesWithin(opening, this.startDeadlineMs))) {
          // Hung on a dead link: give the shard up so it can be taken again; a late start stops itself below.
          this.log.error({ shard, deadlineMs: this.startDeadlineMs }, 'a shard did not start in time; releasing it')
          if (this.held.get(shard) === held) this.held.delete(shard)
          void opening.then((late) => this.stopRunning(late), () => {})
          await this.leases.release(held.lease).catch(() => {})
          return
        }
        const running = await opening
        if (this.held.get(shard) !== held || this.stopped) {
          await this.stopRunning(running)
          return
        }
        this.shards.set(shard, running)
        this.log.info({ shard, fencingToken: lease.token }, 'shard taken')
      } catch (error) {
        this.log.error({ shard, err: error }, 'could not start a shard; releasing it')
        if (this.held.get(shard) === held) this.held.delete(shard)
        await this.leases.release(held.lease).catch(() => {})
      }
    } catch (error) {
      this.log.warn({ shard, err: error }, 'could not acquire a shard lease')
    } finally {
      this.busy.delete(shard)
    }
  }

  private async openShard(shard: number, held: HeldShard): Promise<RunningShard> {
    const fence = held.fence
    const c = this.o.config
    const key = shardKey(shard)
    const store = await FencedShardStore.load({ redis: this.redis, keys: this.keys, leaseKey: key, fence, onFenced: () => this.fencedWrites++ })
    const log = this.log.child({ shard })
    let server: SyncServer | undefined
    const jobs = new ShardJobs({
      connection: this.connection,
      prefix: this.keys.queuePrefix(),
      shard,
      fence,
      concurrency: c.scheduler.maxConcurrentSyncs,
      lockDurationMs: this.ttl,
      logger: log,
      notify: async (mailboxId, body) => {
        if (!server) throw new ServerError('LeaseLost', `shard ${shard} is not running`)
        await server.handleNotification(mailboxId, body)
      },
      resync: (mailboxId) => server?.loop.notify(mailboxId),
    })
    const graphToken = c.graph.tokenUrl
    const crmFetch = clusterFetch({ base: this.o.crmFetch ?? globalThis.fetch.bind(globalThis), fence, shardKey: key, side: 'crm', limits: this.limits, isTokenRequest: (u) => u.startsWith(c.crm.tokenUrl) })
    const graphFetch = clusterFetch({
      base: this.o.graphFetch ?? globalThis.fetch.bind(globalThis),
      fence,
      shardKey: key,
      side: 'graph',
      limits: this.limits,
      isTokenRequest: (u) => (graphToken ? u.startsWith(graphToken) : u.includes('/oauth2/')),
    })
    try {
      server = await SyncServer.start({
        config: c,
        directory: new ShardDirectory(this.o.directory(crmFetch), shard, this.shardCount),
        tester: this.o.tester,
        leases: new ShardScopedLeases(fence),
        holder: this.id,
        database: store,
        adminApi: false,
        dispatch: jobs.dispatch,
        metrics: this.metrics,
        logger: log,
        crmFetch,
        graphFetch,
        now: this.now,
      })
    } catch (error) {
      await jobs.close().catch(() => {})
      await store.close().catch(() => {})
      throw error
    }
    return { shard, held, server, jobs }
  }

  /** Stops a shard's server and queue. Bounded: a stop stuck on a dead link must not keep the shard from being taken again (its fence is what keeps it harmless). */
  private async stopRunning(running: RunningShard): Promise<void> {
    const shard = running.shard
    await settlesWithin(running.server.stop().catch((error: unknown) => this.log.warn({ shard, err: error }, 'stopping a shard failed')), 2 * this.ttl)
    await running.jobs.close().catch((error: unknown) => this.log.warn({ shard, err: error }, 'closing a shard queue failed'))
  }

  /** Stops a shard: `handoff` and `shutdown` flush and release; `lost` just stops (its writes would be refused). */
  private async dropShard(shard: number, why: 'handoff' | 'lost' | 'shutdown'): Promise<void> {
    const running = this.shards.get(shard)
    if (!running) return
    this.shards.delete(shard)
    this.busy.add(shard)
    try {
      await this.stopRunning(running)
      if (why !== 'lost' && this.held.get(shard) === running.held) {
        this.held.delete(shard)
        await this.leases.release(running.held.lease).catch(() => {})
      }
      this.log[why === 'lost' ? 'warn' : 'info']({ shard, fencingToken: running.held.lease.token, why }, 'shard dropped')
    } finally {
      this.busy.delete(shard)
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    if (this.renewTimer) clearTimeout(this.renewTimer)
    // Every step is bounded: a shutdown never hangs on a dead Redis link (leases not released expire).
    if (this.ticking) await settlesWithin(this.ticking, this.ttl)
    const startsDone = Date.now() + this.startDeadlineMs
    while (this.busy.size > 0 && Date.now() < startsDone) await new Promise((r) => setTimeout(r, 20))
    if (this.api) await settlesWithin(this.api.close(), this.ttl)
    await Promise.all([...this.shards.keys()].map((s) => this.dropShard(s, 'shutdown')))
    await this.membership.leave().catch(() => {})
    if (!(await settlesWithin(this.notifications.close(), this.ttl))) this.log.warn({}, 'the notification queues did not close in time')
    this.redis.disconnect()
    this.log.info({}, 'cluster instance stopped')
  }

  // ── what the cluster API calls ───────────────────────────────────────────────

  ownedShards(): number[] {
    return [...this.shards.keys()].sort((a, b) => a - b)
  }

  serverOf(mailboxId: string): SyncServer | undefined {
    return this.shards.get(shardOf(mailboxId, this.shardCount))?.server
  }

  async view(): Promise<ClusterView> {
    const members = await this.membership.list()
    const shards: ShardView[] = []
    for (let s = 0; s < this.shardCount; s++) {
      const lease = await this.leases.current(shardKey(s))
      const running = this.shards.get(s)
      shards.push({
        shard: s,
        owner: lease?.holder ?? null,
        token: lease?.token ?? null,
        expiresInMs: lease ? Math.max(0, lease.expiresAt - this.now()) : null,
        local: running !== undefined,
        mailboxes: running ? (await running.server.listMailboxes()).length : null,
      })
    }
    return { cluster: this.keys.cluster, instanceId: this.id, members, shards }
  }

  async listMailboxes(): Promise<Array<MailboxSummary & { shard: number }>> {
    const out: Array<MailboxSummary & { shard: number }> = []
    for (const running of this.shards.values()) for (const m of await running.server.listMailboxes()) out.push({ ...m, shard: running.shard })
    return out
  }

  /** Which shard a mailbox is in and which instance owns that shard now. */
  async ownerOf(mailboxId: string): Promise<{ shard: number; instanceId: string | null; fencingToken: number | null }> {
    const shard = shardOf(mailboxId, this.shardCount)
    const lease = await this.leases.current(shardKey(shard))
    return { shard, instanceId: lease?.holder ?? null, fencingToken: lease?.token ?? null }
  }

  /** A Graph notification received here, for whichever instance owns the mailbox's shard. */
  async routeNotification(mailboxId: string, body: unknown): Promise<void> {
    await this.notifications.enqueue(shardOf(mailboxId, this.shardCount), { mailboxId, body })
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}
