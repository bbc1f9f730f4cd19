/**
 * The sync server: keeps every enabled mailbox in sync with the CRM. It reads the CRM's `mailboxes`,
 * runs Test & Enable where an administrator asked for it, gives each enabled mailbox a worker (engine
 * pair + adapters + lease), drives the workers from the scheduler loop, reacts to Graph change
 * notifications, disables failing mailboxes with an alert, and serves the admin API and metrics.
 */
import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { CrmAdapter, OutgoingEmailQueue } from '@concord/adapter-crm'
import { createTrustedFetch } from '@concord/adapter-exchange'
import { type ConcordId, type DirectionTable, type NativeId, type ItemKind, type MergePolicyConfig, type StoreDatabase, type SyncFilterSet, ReplicaStore, SyncError, asConcordId, asReplicaId, parseMergePolicyConfig, parseSyncFilters } from '@concord/engine'
import type { DueSync } from '@concord/scheduler'
import { ClassicLevel } from 'classic-level'
import type { FastifyInstance } from 'fastify'
import type { Logger as PinoLogger } from 'pino'
import { buildAdminApi } from './admin/api.js'
import { applicationUserId } from './crm-feed/app-user.js'
import { CrmOrgFeed } from './crm-feed/org-feed.js'
import { UserFeedView } from './crm-feed/user-view.js'
import { attachClientSync } from './client-sync/client-sync.js'
import { mountAddin } from './addin/addin-route.js'
import type { ServerConfig } from './config.js'
import { ServerError } from './errors.js'
import { InProcessLeases, type LeaseManager } from './lease.js'
import { createLogger, engineLogger } from './logging.js'
import { AlertCodes, type MailboxDirectoryPort, type MailboxRow, type TestStatus } from './mailbox/directory.js'
import { type CycleOutcome, type MailboxDescriptor, MailboxWorker, isPermanentFailure } from './mailbox/mailbox-worker.js'
import { countingFetch } from './mailbox/counting-fetch.js'
import { ServerMetrics } from './metrics.js'
import { OutgoingEmailSender } from './outgoing/outgoing-sender.js'
import { AutoTracker } from './mailbox/auto-tracker.js'
import type { MessageProblem } from '@concord/adapter-mailserver'
import { testMailServerMailbox } from './mailbox/mail-server-tester.js'
import { type MessageProblemRecord, MessageProblemLog, alertTextOf } from './mailbox/message-problems.js'
import { EMAIL_ONLY_REASON, type MailboxBinding, bindMailbox } from './mailbox/profiles.js'
import { AutoTrackingSource } from './mailbox/tracking-source.js'
import { LevelSendLedger } from './outgoing/smtp-sender.js'
import { type HistoryEntry, type MailboxState, ServerStateStore } from './state-store.js'
import { type SyncRunResult, SyncLoop } from './sync-loop.js'

/** Tests a mailbox's access for Test & Enable. */
export type MailboxTester = (row: MailboxRow) => Promise<{ incoming: TestStatus; outgoing: TestStatus; act: TestStatus; reason?: string | undefined }>

export interface SyncServerOptions {
  config: ServerConfig
  /** The CRM's mailbox records (default: the `mailboxes` table through adapter-crm). */
  directory: MailboxDirectoryPort
  /** Test & Enable (default: probes the mailbox over Graph). */
  tester: MailboxTester
  leases?: LeaseManager | undefined
  /** Lease holder identity (default `hostname:pid`). */
  holder?: string | undefined
  logger?: PinoLogger | undefined
  metrics?: ServerMetrics | undefined
  now?: (() => number) | undefined
  /** Fetch for the CRM (default global fetch). */
  crmFetch?: typeof fetch | undefined
  /** Fetch for Graph (default: global fetch, or one trusting `graph.caFile`). */
  graphFetch?: typeof fetch | undefined
  /** Lease lifetime; renewed at every cycle (default 60 s). */
  leaseTtlMs?: number | undefined
  /** An opened database to keep the state in instead of a LevelDB at `dataDir` (cluster shards); closed by `stop()`. */
  database?: ServerDatabase | undefined
  /** Serve the admin API, client sync and the add-in (default true; a cluster shard serves none of its own). */
  adminApi?: boolean | undefined
  /** Runs each due sync (default: directly); a cluster routes it through its job queue. */
  dispatch?: ((due: DueSync, signal: AbortSignal, run: (due: DueSync, signal: AbortSignal) => Promise<SyncRunResult>) => Promise<SyncRunResult>) | undefined
}

/** What the server keeps its state in: classic-level on disk, or any abstract-level store (the part the server uses). */
export interface ServerDatabase {
  open(): Promise<void>
  close(): Promise<void>
  sublevel(name: string, options: { valueEncoding: 'utf8' }): unknown
}

/** One mailbox as the admin API shows it. */
export interface MailboxSummary extends MailboxState {
  email: string | undefined
  ownerId: string | undefined
  kinds: ItemKind[]
  running: boolean
  scheduler: { dueAt: number | null; reason: string; lastDispatchAt: number | null; estimatedRatePerHour: number | null } | null
  /** The email server profile the mailbox syncs with (`exchange` when the CRM row names none). */
  profile: { name: string | null; type: MailboxBinding['type'] } | null
  /** What this mailbox does not sync, and why (e.g. ACT on an imap/pop3 profile). */
  restrictions: string[]
  /**
   * The workloads the CRM mailbox row gives to server-side sync (enabled and delivery method server-side
   * sync), tested or not; null when the row is not known. Outlook client sync leaves these to the server.
   */
  configured: MailboxRow['configured'] | null
}

const HOUR = 3_600_000
/** The feed reads as the application user, whose rights rarely change: re-read them every few minutes, not every round. */
const FEED_MASKS_MAX_AGE_MS = 5 * 60_000

export class SyncServer {
  readonly config: ServerConfig
  readonly metrics: ServerMetrics
  readonly log: PinoLogger
  readonly state: ServerStateStore
  readonly loop: SyncLoop
  private readonly db: ServerDatabase
  private readonly workers = new Map<string, MailboxWorker>()
  private readonly rows = new Map<string, MailboxRow>()
  private readonly options: SyncServerOptions
  private readonly now: () => number
  private readonly leases: LeaseManager
  private readonly holder: string
  private readonly graphFetch: typeof fetch
  private admin: FastifyInstance | undefined
  private refreshTimer: NodeJS.Timeout | undefined
  private feed: CrmOrgFeed | undefined
  private feedTimer: NodeJS.Timeout | undefined
  private readonly subscriptionWatchers = new Set<string>()
  private refreshing: Promise<void> | undefined
  private mergeConfig: MergePolicyConfig
  private readonly outgoing: OutgoingEmailSender
  private readonly autoTracker: AutoTracker
  private readonly problems: MessageProblemLog
  private problemWrites: Promise<void> = Promise.resolve()
  private stopped = false
  adminUrl = ''

  private constructor(options: SyncServerOptions, db: ServerDatabase, graphFetch: typeof fetch, mergeConfig: MergePolicyConfig) {
    this.options = options
    this.config = options.config
    this.db = db
    this.now = options.now ?? Date.now
    this.log = options.logger ?? createLogger(options.config.logLevel)
    this.metrics = options.metrics ?? new ServerMetrics()
    this.leases = options.leases ?? new InProcessLeases(this.now)
    this.holder = options.holder ?? `${hostname()}:${process.pid}`
    this.graphFetch = graphFetch
    this.mergeConfig = mergeConfig
    this.state = new ServerStateStore(db.sublevel('server', { valueEncoding: 'utf8' }) as unknown as StoreDatabase)
    const c = options.config
    const crmFetch = options.crmFetch ?? globalThis.fetch.bind(globalThis)
    this.autoTracker = new AutoTracker(this.state, engineLogger(this.log))
    this.problems = new MessageProblemLog(db.sublevel('msg-problems', { valueEncoding: 'utf8' }) as unknown as StoreDatabase, this.now)
    this.outgoing = new OutgoingEmailSender({
      queue: new OutgoingEmailQueue({ orgUrl: c.crm.url, tokenUrl: c.crm.tokenUrl, clientId: c.crm.clientId, clientSecret: c.crm.clientSecret }, { fetch: crmFetch, logger: engineLogger(this.log) }),
      state: this.state,
      directory: options.directory,
      metrics: this.metrics,
      logger: engineLogger(this.log),
      now: this.now,
    })
    this.loop = new SyncLoop({
      scheduler: { policy: c.scheduler.policy, debounceMs: c.scheduler.debounceMs, ...(c.scheduler.budget ? { budget: c.scheduler.budget } : {}), errorBackoffMs: c.mailboxes.retryDelayMs, maxBackoffMs: Math.max(c.mailboxes.retryDelayMs, 5 * 60_000) },
      maxConcurrent: c.scheduler.maxConcurrentSyncs,
      now: this.now,
      logger: engineLogger(this.log),
      run: options.dispatch ? (due, signal) => options.dispatch!(due, signal, (d, s) => this.runSync(d, s)) : (due, signal) => this.runSync(due, signal),
    })
  }

  /** Opens the data directory, reads the mailboxes, starts the loop and the admin API. */
  static async start(options: SyncServerOptions): Promise<SyncServer> {
    const c = options.config
    const graphFetch = options.graphFetch ?? (c.graph.caFile ? createTrustedFetch({ ca: await readFile(c.graph.caFile, 'utf8') }).fetch : globalThis.fetch.bind(globalThis))
    const db = options.database ?? new ClassicLevel<string, string>(c.dataDir, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    try {
      await db.open()
    } catch (error) {
      throw new ServerError('Config', `cannot open the data directory ${c.dataDir}: ${(error as Error).message}`, { cause: error })
    }
    const server = new SyncServer(options, db, graphFetch, await SyncServer.mergeConfigOf(c, new ServerStateStore(db.sublevel('server', { valueEncoding: 'utf8' }) as unknown as StoreDatabase)))
    try {
      if (options.adminApi ?? true) {
        server.admin = await buildAdminApi(server)
        attachClientSync(server, server.admin, { mergeConfig: () => server.mergeConfig, crmFetch: options.crmFetch, leases: server.leases, holder: server.holder, leaseTtlMs: options.leaseTtlMs }) // closed with the admin API (preClose)
        mountAddin(server.admin) // the App for Outlook's task pane at /addin/* (built on first request)
        await server.admin.listen({ host: c.admin.host, port: c.admin.port })
        const address = server.admin.server.address()
        const port = typeof address === 'object' && address ? address.port : c.admin.port
        server.adminUrl = `http://${c.admin.host.includes(':') ? `[${c.admin.host}]` : c.admin.host}:${port}`
      }
      if (c.crm.changeFeed === 'organization') await server.openFeed()
      await server.refreshMailboxes()
      server.loop.start()
      server.scheduleRefresh()
      server.log.info({ adminUrl: server.adminUrl, policy: c.scheduler.policy, mailboxes: server.workers.size }, 'sync server started')
      return server
    } catch (error) {
      await server.stop()
      throw error
    }
  }

  /** The organization feed: one CRM change stream, as the application user, for every mailbox. */
  private async openFeed(): Promise<void> {
    const c = this.config
    const crmFetch = this.options.crmFetch ?? globalThis.fetch.bind(globalThis)
    const appUser = await applicationUserId(c.crm, crmFetch)
    const adapter = new CrmAdapter(
      { orgUrl: c.crm.url, tokenUrl: c.crm.tokenUrl, clientId: c.crm.clientId, clientSecret: c.crm.clientSecret, impersonate: { systemUserId: appUser }, kinds: (['contact', 'appointment', 'task', 'email'] as const).filter((k) => c.mailboxes.kinds.includes(k)), masksMaxAgeMs: FEED_MASKS_MAX_AGE_MS },
      {
        replicaId: asReplicaId('crm-feed'),
        logger: engineLogger(this.log.child({ component: 'crm-feed' })),
        fetch: countingFetch(crmFetch, { requests: 0, throttled: 0 }, (u) => u.startsWith(c.crm.tokenUrl), (throttled) => this.recordRequest('crm', throttled)),
      },
    )
    const store = await ReplicaStore.open(this.sublevel('crm-feed'), { now: this.now })
    this.feed = new CrmOrgFeed({
      adapter,
      store,
      logger: engineLogger(this.log.child({ component: 'crm-feed' })),
      onChanges: (users) => {
        for (const w of this.workers.values()) if (users.has(w.descriptor.ownerId)) this.loop.notify(w.descriptor.mailboxId)
      },
    })
    const tick = () => {
      this.feedTimer = setTimeout(() => {
        this.feed!.refresh()
          .catch((error: unknown) => this.log.warn({ err: error }, 'the CRM feed could not be refreshed; mailboxes retry at their next sync'))
          .finally(() => {
            if (!this.stopped) tick()
          })
      }, c.crm.feedIntervalMs)
    }
    tick()
  }

  private static async mergeConfigOf(c: ServerConfig, state: ServerStateStore): Promise<MergePolicyConfig> {
    const overrides = await state.getDirections()
    const directions: Record<string, DirectionTable> = { ...(c.merge.directions as Record<string, DirectionTable>) }
    for (const [kind, fields] of Object.entries(overrides)) directions[kind] = { ...(directions[kind] ?? {}), ...fields }
    return parseMergePolicyConfig({ ...c.merge, directions })
  }

  /** Graceful shutdown: no new syncs, running ones end at their next atomic step, leases released. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.refreshTimer) clearTimeout(this.refreshTimer)
    if (this.feedTimer) clearTimeout(this.feedTimer)
    await this.refreshing?.catch(() => {})
    await this.loop.stop()
    await this.feed?.idle()
    await this.admin?.close()
    await this.problemWrites
    for (const worker of this.workers.values()) {
      // The store first, while the lease is held: it writes cursors it kept in memory (pages that changed nothing).
      await worker.engineStore.close().catch((error: unknown) => this.log.warn({ mailboxId: worker.descriptor.mailboxId, err: error }, 'closing the mailbox store failed'))
      await worker.releaseLease().catch(() => {})
      await worker.close().catch(() => {})
    }
    await this.feed?.store.close().catch(() => {})
    await this.db.close()
    this.log.info({}, 'sync server stopped')
  }

  private scheduleRefresh(): void {
    if (this.stopped) return
    this.refreshTimer = setTimeout(() => {
      this.refreshMailboxes()
        .catch((error: unknown) => this.log.error({ err: error }, 'reading the CRM mailboxes failed'))
        .finally(() => this.scheduleRefresh())
    }, this.config.mailboxes.refreshIntervalMs)
  }

  /** Re-reads the CRM mailboxes: runs scheduled Test & Enable, enables, disables and re-enables workers. */
  refreshMailboxes(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined
    })
    return this.refreshing
  }

  private async doRefresh(): Promise<void> {
    let rows = await this.options.directory.list()
    const tested = rows.filter((r) => r.testScheduled && r.ownerId !== null)
    for (const row of tested) await this.testAndEnable(row)
    if (tested.length > 0) rows = await this.options.directory.list()
    const seen = new Set<string>()
    for (const row of rows) {
      if (row.ownerId === null) continue // queues: not synced by this server
      seen.add(row.mailboxId)
      this.rows.set(row.mailboxId, row)
      await this.applyRow(row)
    }
    for (const id of [...this.workers.keys()]) if (!seen.has(id)) this.loop.remove(id)
    await this.publishMailboxGauge()
  }

  private async testAndEnable(row: MailboxRow): Promise<void> {
    let result: Awaited<ReturnType<MailboxTester>>
    const bound = bindMailbox(this.config, row)
    try {
      if ('reason' in bound) result = { incoming: 'failure', outgoing: 'failure', act: 'failure', reason: bound.reason }
      else if (bound.binding.type !== 'exchange') result = await testMailServerMailbox(bound.binding, row)
      else result = await this.options.tester(row)
    } catch (error) {
      result = { incoming: 'failure', outgoing: 'failure', act: 'failure', reason: (error as Error).message }
    }
    const status = (configured: boolean, s: TestStatus): TestStatus => (configured ? s : 'not-run')
    await this.options.directory.recordTestResult(row.mailboxId, {
      incoming: status(row.configured.incoming, result.incoming),
      outgoing: status(row.configured.outgoing, result.outgoing),
      act: status(row.configured.act, result.act),
    })
    const failed = [result.incoming, result.outgoing, result.act].includes('failure')
    if (failed) {
      await this.options.directory.raiseAlert(row.mailboxId, { level: 'error', code: AlertCodes.TestAndEnableFailed, text: `Test & Enable failed for ${row.email}: ${result.reason ?? 'the mailbox could not be reached'}` })
    } else {
      await this.options.directory.raiseAlert(row.mailboxId, { level: 'information', code: AlertCodes.TestAndEnableSucceeded, text: `Test & Enable succeeded for ${row.email}` })
    }
    this.log.info({ mailboxId: row.mailboxId, result: { incoming: result.incoming, outgoing: result.outgoing, act: result.act } }, 'test and enable')
  }

  private descriptorOf(row: MailboxRow): MailboxDescriptor & { unboundReason?: string } {
    const bound = bindMailbox(this.config, row)
    if ('reason' in bound) return { mailboxId: row.mailboxId, ownerId: row.ownerId!, email: row.email, kinds: [], outgoing: false, unboundReason: bound.reason }
    const binding = bound.binding
    const mailServer = binding.type !== 'exchange'
    const kinds: ItemKind[] = []
    if (row.eligibility.incoming) kinds.push('email')
    // imap/pop3 profiles sync email only (protocols.md §5.1): appointments, contacts and tasks never.
    if (row.eligibility.act && !mailServer) kinds.push(...this.config.mailboxes.kinds.filter((k) => k !== 'email'))
    const outgoing = row.eligibility.outgoing && (!mailServer || binding.server.outgoing !== undefined)
    return { mailboxId: row.mailboxId, ownerId: row.ownerId!, email: row.email, kinds, outgoing, ...(binding.type === 'exchange' && binding.profile === undefined ? {} : { binding }) }
  }

  private async applyRow(row: MailboxRow): Promise<void> {
    const id = row.mailboxId
    const prior = await this.state.getMailbox(id)
    const { unboundReason, ...descriptor } = this.descriptorOf(row)
    const eligible = descriptor.kinds.length > 0
    if (!eligible) {
      this.loop.remove(id)
      if (prior?.state === 'disabled') return
      const reasons = [...(unboundReason ? [unboundReason] : []), ...row.eligibility.reasons]
      await this.state.putMailbox({ ...(prior ?? { mailboxId: id, failures: 0 }), state: 'pending', reason: reasons.join('; ') || 'not enabled for server-side synchronization' })
      return
    }
    if (prior?.state !== 'enabled') {
      // First enable, or re-enable after a new Test & Enable passed: resume from the change log.
      const { reason: _r, disabledAt: _d, ...rest } = prior ?? { mailboxId: id, failures: 0 }
      await this.state.putMailbox({ ...rest, state: 'enabled', failures: 0 })
      if (prior?.state === 'disabled') this.log.info({ mailboxId: id }, 'mailbox re-enabled')
    }
    let worker = this.workers.get(id)
    if (worker && !sameDescriptor(worker.descriptor, descriptor)) {
      await worker.releaseLease()
      await worker.close().catch((error: unknown) => this.log.warn({ mailboxId: id, err: error }, 'closing the mailbox connections failed'))
      this.workers.delete(id)
      worker = undefined
    }
    if (!worker) {
      worker = await this.openWorker(descriptor)
      this.workers.set(id, worker)
    }
    this.loop.add(id, { requestsPerSync: Math.max(1, descriptor.kinds.length) })
  }

  private async openWorker(descriptor: MailboxDescriptor): Promise<MailboxWorker> {
    const c = this.config
    const db = this.db.sublevel(`m-${descriptor.mailboxId}`, { valueEncoding: 'utf8' }) as unknown as StoreDatabase
    const worker = await MailboxWorker.open(
      descriptor,
      db,
      {
        crm: { url: c.crm.url, tokenUrl: c.crm.tokenUrl, clientId: c.crm.clientId, clientSecret: c.crm.clientSecret },
        graph: { url: c.graph.url, tokenUrl: c.graph.tokenUrl, tenantId: c.graph.tenantId, clientId: c.graph.clientId, clientSecret: c.graph.clientSecret },
        graphFetch: this.graphFetch,
        crmFetch: this.options.crmFetch ?? globalThis.fetch.bind(globalThis),
        leases: this.leases,
        holder: this.holder,
        leaseTtlMs: this.options.leaseTtlMs ?? 60_000,
        cacheEntries: c.store.cacheEntries,
        deletionGuard: c.deletionGuard,
        logger: engineLogger(this.log.child({ mailboxId: descriptor.mailboxId })),
        now: this.now,
        onRequest: (side, throttled) => this.recordRequest(side, throttled),
        onConflict: () => this.metrics.conflicts.inc(),
        ...(this.feed ? { crmSide: (w: MailboxWorker) => this.userView(w) } : {}),
        // imap/pop3: the owner's tracking option is applied as mail is pulled (IMAP also gets the keyword).
        mailboxSide: (w: MailboxWorker) => {
          const ms = w.mailServer
          if (!ms) return w.mailbox
          const mark = (nativeIds: NativeId[]) =>
            ms.trackPulled(nativeIds).catch((error: unknown) => {
              this.log.warn({ mailboxId: w.descriptor.mailboxId, messages: nativeIds.length, err: error }, 'could not add the tracking keyword')
              return new Map()
            })
          return new AutoTrackingSource(ms, (page, signal) => this.autoTracker.decidePage(w, page, signal), ms.protocol === 'imap' ? mark : undefined)
        },
        sendLedger: (mailboxId: string) => new LevelSendLedger(this.sublevel(`send-ledger-${mailboxId}`)),
        onMessageProblem: (mailboxId, problem) => {
          this.problemWrites = this.problemWrites.then(() => this.recordMessageProblem(mailboxId, problem))
        },
      },
      this.mergeConfig,
    )
    const filters = await this.state.getFilters(descriptor.ownerId)
    if (filters) worker.reconfigure({ filters })
    return worker
  }

  /** One HTTP request to a side (token requests excluded), for the API-call and throttle metrics. */
  private recordRequest(side: 'crm' | 'mailbox', throttled: boolean): void {
    this.metrics.apiCalls.inc({ side })
    if (throttled) this.metrics.throttles.inc({ side })
  }

  private userView(w: MailboxWorker): UserFeedView {
    const d = w.descriptor
    return new UserFeedView({ feed: this.feed!, user: w.crm, store: w.engineStore, kinds: d.kinds, owner: { id: d.ownerId, addresses: [d.email] }, masks: () => w.ownerMasks(), filters: () => w.syncFilters })
  }

  /** One scheduled sync of a mailbox: the engine cycle, then the lifecycle bookkeeping. */
  private async runSync(due: DueSync, signal: AbortSignal): Promise<SyncRunResult> {
    const id = due.mailboxId
    const worker = this.workers.get(id)
    if (!worker) return { poll: {}, remove: true }
    const end = this.metrics.cycleSeconds.startTimer()
    const outcome = await worker.runCycle(signal)
    await this.problemWrites
    end()
    this.metrics.cycles.inc({ outcome: outcome.outcome })
    const r = outcome.report
    if (r) {
      this.metrics.items.inc({ side: 'crm', op: 'pulled' }, r.logged.crm)
      this.metrics.items.inc({ side: 'mailbox', op: 'pulled' }, r.logged.mailbox)
      this.metrics.items.inc({ side: 'crm', op: 'pushed' }, r.pushed.crm)
      this.metrics.items.inc({ side: 'mailbox', op: 'pushed' }, r.pushed.mailbox)
    }
    await this.state.appendHistory(id, historyEntryOf(outcome, this.now()))
    if (outcome.outcome === 'ok' && !signal.aborted) {
      await this.maintainSubscriptions(worker)
      await this.trackIncoming(worker, signal)
      await this.sendOutgoing(worker, signal)
    }
    const remove = await this.afterCycle(worker, outcome, signal.aborted)
    return {
      remove,
      poll: {
        changes: outcome.changes,
        requests: outcome.requests.mailbox,
        crmRequests: outcome.requests.crm,
        throttled: outcome.outcome === 'throttled',
        ...(outcome.throttledMs !== undefined ? { retryAfterMs: outcome.throttledMs } : {}),
        error: outcome.outcome === 'error',
      },
    }
  }

  /** Automatic tracking of the cycle's new incoming email; what it tracks is brought to the CRM by the next cycle (scheduled now). */
  private async trackIncoming(worker: MailboxWorker, signal: AbortSignal): Promise<void> {
    try {
      const r = await this.autoTracker.run(worker, signal)
      if (r.tracked > 0) {
        this.log.info({ mailboxId: worker.descriptor.mailboxId, ...r }, 'incoming email tracked automatically')
        this.loop.notify(worker.descriptor.mailboxId)
      }
    } catch (error) {
      if (!signal.aborted) this.log.warn({ mailboxId: worker.descriptor.mailboxId, err: error }, 'automatic tracking failed; it is retried after the next cycle')
    }
  }

  /** The mailbox's Pending Send scan, every `outgoing.intervalMs`; a failure is logged and retried at the next scan. */
  private async sendOutgoing(worker: MailboxWorker, signal: AbortSignal): Promise<void> {
    const id = worker.descriptor.mailboxId
    if (!worker.descriptor.outgoing || !this.outgoing.due(id, this.config.outgoing.intervalMs)) return
    try {
      const r = await this.outgoing.process(worker, signal)
      if (r.sent + r.failed > 0 || r.deferred) this.log.info({ mailboxId: id, ...r }, 'outgoing email')
    } catch (error) {
      if (!signal.aborted) this.log.warn({ mailboxId: id, err: error }, 'the outgoing email scan failed; it runs again at the next scan')
    }
  }

  /** Creates the mailbox's change-notification subscriptions once, then renews them before they expire. */
  private async maintainSubscriptions(worker: MailboxWorker): Promise<void> {
    const { notificationUrl, clientState } = this.config.push
    if (!notificationUrl || !clientState) return
    const exchange = worker.exchange
    if (!exchange) return // imap/pop3: polling only
    const subs = exchange.subscriptions
    const id = worker.descriptor.mailboxId
    const url = `${notificationUrl.replace(/\/$/, '')}/${encodeURIComponent(id)}`
    try {
      if (subs.active().length === 0) {
        // Every change of the subscriptions is stored, so a restart adopts them instead of orphaning them.
        if (!this.subscriptionWatchers.has(id)) {
          this.subscriptionWatchers.add(id)
          subs.onStateChange((snapshot) => void this.state.putSubscriptions(id, snapshot).catch((error: unknown) => this.log.warn({ mailboxId: id, err: error }, 'could not store the subscription state')))
        }
        const saved = await this.state.getSubscriptions(id)
        const report = saved === undefined ? undefined : await exchange.restoreSubscriptions(saved, { notificationUrl: url, clientState }).catch((error: unknown) => {
          if (error instanceof SyncError && error.code === 'Validation') {
            this.log.warn({ mailboxId: id, err: error }, 'the stored subscription state is unusable; subscribing afresh')
            return undefined
          }
          throw error
        })
        if (report === undefined) await subs.create(url, clientState)
        else if (report.pullRequested) this.loop.notify(id)
      } else await subs.renew(this.now())
    } catch (error) {
      this.log.warn({ mailboxId: worker.descriptor.mailboxId, err: error }, 'change-notification subscriptions could not be created or renewed; polling continues')
    }
  }

  /** Failure policy of server-side sync: a permanent error disables at once, transient ones after N in a row. */
  private async afterCycle(worker: MailboxWorker, outcome: CycleOutcome, aborted: boolean): Promise<boolean> {
    const id = worker.descriptor.mailboxId
    const prior = (await this.state.getMailbox(id)) ?? { mailboxId: id, state: 'enabled' as const, failures: 0 }
    const at = this.now()
    if (outcome.outcome !== 'error') {
      await this.state.putMailbox({ ...prior, failures: 0, lastSyncAt: at, ...(outcome.outcome === 'ok' ? { lastSuccessAt: at } : {}) })
      if (outcome.outcome === 'ok' && outcome.report) {
        const r = outcome.report
        await this.options.directory
          .recordSyncOutcome(id, { completedOn: new Date(at), itemsProcessed: r.pushed.crm + r.pushed.mailbox, itemsFailed: r.rejected.crm + r.rejected.mailbox, errorCount: 0 })
          .catch((error: unknown) => this.log.warn({ mailboxId: id, err: error }, 'could not record the sync outcome in the CRM'))
      }
      return false
    }
    if (aborted) return false // shutting down: not the mailbox's fault
    const message = outcome.reason ?? 'unknown error'
    const failures = prior.failures + 1
    const permanent = isPermanentFailure(outcome.error)
    this.log.warn({ mailboxId: id, failures, permanent, err: outcome.error }, 'mailbox sync failed')
    if (permanent || failures >= this.config.mailboxes.maxTransientFailures) {
      const reason = permanent ? `permanent error: ${message}` : `${failures} failures in a row; last: ${message}`
      // The CRM and the scheduler learn first; the local state flips last, so whoever sees "disabled" sees all of it.
      await this.options.directory.disable(id, reason).catch((error: unknown) => this.log.error({ mailboxId: id, err: error }, 'could not disable the mailbox in the CRM'))
      await worker.releaseLease()
      this.loop.remove(id)
      await this.state.putMailbox({ ...prior, state: 'disabled', failures, lastSyncAt: at, lastError: message, reason, disabledAt: at })
      await this.publishMailboxGauge()
      this.log.error({ mailboxId: id, reason }, 'mailbox disabled')
      return true
    }
    await this.state.putMailbox({ ...prior, failures, lastSyncAt: at, lastError: message })
    return false
  }

  private async publishMailboxGauge(): Promise<void> {
    const counts: Record<string, number> = { pending: 0, enabled: 0, disabled: 0 }
    for (const s of await this.state.listMailboxes()) counts[s.state] = (counts[s.state] ?? 0) + 1
    for (const [state, n] of Object.entries(counts)) this.metrics.mailboxes.set({ state }, n)
  }

  // ── what the admin API calls ──────────────────────────────────────────────────────────────

  async listMailboxes(): Promise<MailboxSummary[]> {
    const states = await this.state.listMailboxes()
    const at = this.now()
    let maxAge = 0
    for (const s of states) if (s.state === 'enabled' && s.lastSuccessAt !== undefined) maxAge = Math.max(maxAge, at - s.lastSuccessAt)
    this.metrics.staleness.set({ stat: 'max' }, maxAge / 1000)
    return states.map((s) => this.summaryOf(s))
  }

  async getMailbox(id: string): Promise<MailboxSummary> {
    const s = await this.state.getMailbox(id)
    if (!s) throw new ServerError('NotFound', `no mailbox ${id}`)
    return this.summaryOf(s)
  }

  private summaryOf(s: MailboxState): MailboxSummary {
    const w = this.workers.get(s.mailboxId)
    const row = this.rows.get(s.mailboxId)
    const view = this.loop.has(s.mailboxId) ? this.loop.scheduler.mailbox(s.mailboxId) : null
    return {
      ...s,
      email: row?.email,
      ownerId: row?.ownerId ?? undefined,
      kinds: w?.descriptor.kinds ?? [],
      running: this.loop.isRunning(s.mailboxId),
      scheduler: view && { dueAt: view.dueAt, reason: view.reason, lastDispatchAt: view.lastDispatchAt, estimatedRatePerHour: view.estimatedRate === null ? null : view.estimatedRate * HOUR },
      ...profileSummaryOf(row, this.config),
      configured: row ? { ...row.configured } : null,
    }
  }

  /** A problem of one message (synced anyway): kept for the admin API, alerted once per message and reason on the CRM mailbox. */
  private async recordMessageProblem(mailboxId: string, problem: MessageProblem): Promise<void> {
    try {
      const first = await this.problems.record(mailboxId, problem)
      this.log.warn({ mailboxId, nativeId: problem.nativeId, folder: problem.folder, uid: problem.uid, reason: problem.error.reason, outcome: problem.outcome }, 'a message problem was reported')
      if (!first) return
      await this.options.directory.raiseAlert(mailboxId, { level: 'warning', code: AlertCodes.MessageUnreadable, text: alertTextOf(problem) })
    } catch (error) {
      this.log.warn({ mailboxId, err: error }, 'could not record a message problem')
    }
  }

  /** Messages of an imap/pop3 mailbox that could not be read in full. */
  async listMessageProblems(id: string): Promise<MessageProblemRecord[]> {
    if (!(await this.state.getMailbox(id))) throw new ServerError('NotFound', `no mailbox ${id}`)
    return this.problems.list(id)
  }

  history(id: string, limit?: number): Promise<HistoryEntry[]> {
    return this.state.history(id, limit)
  }

  scheduleExplanation(id: string): ReturnType<SyncLoop['scheduler']['explain']> {
    if (!this.loop.has(id)) throw new ServerError('NotFound', `mailbox ${id} is not scheduled`)
    return this.loop.scheduler.explain(id)
  }

  private worker(id: string): MailboxWorker {
    const w = this.workers.get(id)
    if (!w) throw new ServerError('NotFound', `no enabled mailbox ${id}`)
    return w
  }

  /** Runs `fn` under the mailbox's lease when no cycle is running for it (admin writes are fenced too). */
  private async withMailbox<T>(id: string, fn: (w: MailboxWorker) => Promise<T>): Promise<T> {
    const w = this.worker(id)
    if (!(await w.holdLease())) throw new ServerError('LeaseLost', `another server holds mailbox ${id}`)
    return fn(w)
  }

  listConflicts(id: string): ReturnType<MailboxWorker['syncPair']['listConflicts']> {
    return this.worker(id).syncPair.listConflicts()
  }

  async resolveConflict(id: string, concordId: string, field: string, winner: 'crm' | 'mailbox'): Promise<void> {
    await this.withMailbox(id, (w) => w.syncPair.resolveConflict(asConcordId(concordId) as ConcordId, field, winner))
    this.loop.notify(id)
  }

  listQuarantine(id: string): ReturnType<MailboxWorker['syncPair']['listQuarantine']> {
    return this.worker(id).syncPair.listQuarantine()
  }

  async settleQuarantine(id: string, quarantineId: string, action: 'confirm' | 'reject'): Promise<number> {
    const n = await this.withMailbox(id, (w) => (action === 'confirm' ? w.syncPair.confirmQuarantine(quarantineId) : w.syncPair.rejectQuarantine(quarantineId)))
    this.loop.notify(id)
    return n
  }

  explain(id: string, concordId: string, field: string): ReturnType<MailboxWorker['syncPair']['explain']> {
    return this.worker(id).syncPair.explain(asConcordId(concordId) as ConcordId, field)
  }

  /** Forgets both cursors so the next cycle re-lists both sides (no duplicates: links and bases stay). */
  async resync(id: string): Promise<void> {
    await this.withMailbox(id, async (w) => {
      await w.engineStore.resetCursor(w.crm.replicaId)
      await w.engineStore.resetCursor(w.mailbox.replicaId)
    })
    this.loop.notify(id)
  }

  syncNow(id: string): void {
    this.worker(id)
    this.loop.notify(id)
  }

  async setDirection(kind: ItemKind, field: string, direction: string): Promise<MergePolicyConfig> {
    const overrides = await this.state.getDirections()
    const next = { ...overrides, [kind]: { ...(overrides[kind] ?? {}), [field]: direction } }
    // Validate the whole merge configuration before storing anything.
    const candidate = parseMergePolicyConfig({ ...this.mergeConfig, directions: { ...this.mergeConfig.directions, [kind]: { ...(this.mergeConfig.directions[kind] ?? {}), [field]: direction } } })
    await this.state.putDirections(next as never)
    this.mergeConfig = candidate
    for (const w of this.workers.values()) w.reconfigure({ mergeConfig: candidate })
    return candidate
  }

  async setFilters(userId: string, input: unknown): Promise<SyncFilterSet> {
    const filters = parseSyncFilters(input)
    await this.state.putFilters(userId, filters)
    for (const w of this.workers.values()) if (w.descriptor.ownerId === userId) w.reconfigure({ filters })
    return filters
  }

  /**
   * A Graph change-notification body for a mailbox: checked against its subscriptions (clientState,
   * subscription ids); a relevant one schedules a sync. Throws a `Validation` SyncError on a malformed body.
   */
  async handleNotification(id: string, body: unknown): Promise<void> {
    const subscriptions = this.workers.get(id)?.exchange?.subscriptions
    if (!subscriptions) return
    let result
    try {
      result = await subscriptions.handle(body)
    } catch (error) {
      this.metrics.notifications.inc({ result: 'rejected' })
      throw error
    }
    if (result.rejected > 0) this.metrics.notifications.inc({ result: 'rejected' }, result.rejected)
    if (result.changedKinds.length > 0 || result.pullRequested) this.notifyChange(id)
  }

  /** Graph change notification for a mailbox (already validated and matched by the webhook route). */
  notifyChange(id: string): void {
    this.metrics.notifications.inc({ result: 'accepted' })
    this.loop.notify(id)
  }

  /** A named part of the server's LevelDB for a server module's own state (e.g. client sync). */
  sublevel(name: string): StoreDatabase {
    return this.db.sublevel(name, { valueEncoding: 'utf8' }) as unknown as StoreDatabase
  }

  /** The mailbox of a CRM user as the admin API shows it (its own lifecycle state, profile, kinds); an enabled one first. */
  async mailboxOfUser(userId: string): Promise<MailboxSummary | undefined> {
    const id = userId.toLowerCase()
    let found: MailboxSummary | undefined
    for (const row of this.rows.values()) {
      if (row.ownerId?.toLowerCase() !== id) continue
      const state = await this.state.getMailbox(row.mailboxId)
      if (!state) continue
      const summary = this.summaryOf(state)
      if (summary.state === 'enabled') return summary
      found ??= summary
    }
    return found
  }

  /** The enabled mailbox of a CRM user, if any. */
  workerOfUser(userId: string): MailboxWorker | undefined {
    for (const w of this.workers.values()) if (w.descriptor.ownerId === userId) return w
    return undefined
  }

  workerOf(id: string): MailboxWorker | undefined {
    return this.workers.get(id)
  }
}

function sameDescriptor(a: MailboxDescriptor, b: MailboxDescriptor): boolean {
  const profile = (d: MailboxDescriptor) => (d.binding ? `${d.binding.type}:${d.binding.profile ?? ''}` : 'exchange:')
  return a.ownerId === b.ownerId && a.email === b.email && a.outgoing === b.outgoing && a.kinds.join(',') === b.kinds.join(',') && profile(a) === profile(b)
}

function profileSummaryOf(row: MailboxRow | undefined, config: ServerConfig): Pick<MailboxSummary, 'profile' | 'restrictions'> {
  if (!row) return { profile: null, restrictions: [] }
  const bound = bindMailbox(config, row)
  if ('reason' in bound) return { profile: null, restrictions: [bound.reason] }
  const b = bound.binding
  return { profile: { name: b.profile ?? null, type: b.type }, restrictions: b.type === 'exchange' ? [] : [EMAIL_ONLY_REASON] }
}

function historyEntryOf(o: CycleOutcome, at: number): HistoryEntry {
  const r = o.report
  return {
    at,
    durationMs: o.durationMs,
    outcome: o.outcome,
    ...(o.reason ? { reason: o.reason } : {}),
    pulled: r ? { crm: r.logged.crm, mailbox: r.logged.mailbox } : { crm: 0, mailbox: 0 },
    pushed: r ? { crm: r.pushed.crm, mailbox: r.pushed.mailbox } : { crm: 0, mailbox: 0 },
    rejected: r ? { crm: r.rejected.crm, mailbox: r.rejected.mailbox } : { crm: 0, mailbox: 0 },
    merged: r?.merged ?? 0,
    conflicts: r?.conflicts ?? 0,
    requests: o.requests,
    ...(o.error !== undefined ? { error: o.error instanceof SyncError ? `${o.error.code}: ${o.error.message}` : String((o.error as Error).message ?? o.error) } : {}),
  }
}
