/**
 * One mailbox's sync machinery: its CRM replica (the owner's CRM scope, impersonated), its Exchange
 * replica (the mailbox over Graph), the engine pair between them on a per-mailbox part of the server's
 * LevelDB, and the lease that makes this process the mailbox's only writer.
 */
import { CrmAdapter, type OwnerMasks } from '@concord/adapter-crm'
import { ExchangeAdapter } from '@concord/adapter-exchange'
import { MailServerAdapter, type MessageProblem, type SendLedger } from '@concord/adapter-mailserver'
import {
  type CycleReport, type DeletionGuardThreshold, type ItemKind, type Logger, type MergePolicyConfig, type ReplicaAdapter, type StoreDatabase, type SyncFilterSet,
  PolicyMerge, ReplicaStore, SyncError, SyncPair, asPairId, asReplicaId,
} from '@concord/engine'
import { type Fence as FenceType, Fence } from '../lease.js'
import type { Lease, LeaseManager } from '../lease.js'
import { countingFetch, type RequestCounter } from './counting-fetch.js'
import { pairContextOf } from './pair-context.js'
import { type MailboxBinding, mailServerOptionsOf } from './profiles.js'

/** A mailbox the server may sync, as derived from the CRM `mailboxes` row. */
export interface MailboxDescriptor {
  mailboxId: string
  /** systemuserid of the owner. */
  ownerId: string
  /** SMTP address / UPN of the Exchange mailbox. */
  email: string
  /** Kinds to sync: email when incoming email is enabled, appointment/contact/task when ACT is. */
  kinds: ItemKind[]
  /** Outgoing email through this mailbox is enabled and tested. */
  outgoing: boolean
  /** The email server profile (absent: Exchange over Graph). imap/pop3 sync email only. */
  binding?: MailboxBinding | undefined
}

export interface WorkerEnvironment {
  crm: { url: string; tokenUrl: string; clientId: string; clientSecret: string }
  graph: { url: string; tokenUrl?: string | undefined; tenantId: string; clientId: string; clientSecret: string }
  /** Fetch used for Graph (may trust an extra CA). */
  graphFetch: typeof fetch
  crmFetch: typeof fetch
  leases: LeaseManager
  /** This process's identity as a lease holder. */
  holder: string
  leaseTtlMs: number
  /** Read-cache entries of the mailbox's engine store (`ReplicaStoreOptions.cacheEntries`; config `store.cacheEntries`). */
  cacheEntries: number
  deletionGuard?: DeletionGuardThreshold | undefined
  logger: Logger
  now: () => number
  onRequest?: ((side: 'crm' | 'mailbox', throttled: boolean) => void) | undefined
  onConflict?: (() => void) | undefined
  /** The CRM side as the pair sees it, given the owner's impersonated adapter (default: that adapter itself). */
  crmSide?: ((worker: MailboxWorker) => ReplicaAdapter) | undefined
  /** The mailbox side as the pair sees it (default: the mailbox adapter itself). */
  mailboxSide?: ((worker: MailboxWorker) => ReplicaAdapter) | undefined
  /** imap/pop3: where the mailbox's outgoing sends are recorded (default: in memory). */
  sendLedger?: ((mailboxId: string) => SendLedger) | undefined
  /** imap/pop3: a message that could not be read in full (reported from its envelope; the others flow). */
  onMessageProblem?: ((mailboxId: string, problem: MessageProblem) => void) | undefined
}

export interface CycleOutcome {
  outcome: 'ok' | 'throttled' | 'error' | 'skipped'
  report?: CycleReport | undefined
  reason?: string | undefined
  error?: unknown
  requests: { crm: number; mailbox: number }
  throttledMs?: number | undefined
  changes: number
  durationMs: number
}

/** Errors after which server-side sync disables a mailbox at once (bad credentials, no access, no such mailbox). */
export function isPermanentFailure(error: unknown): boolean {
  return error instanceof SyncError && (error.code === 'Unauthorized' || error.code === 'Forbidden' || error.code === 'Config')
}

const MASKS_TTL_MS = 5 * 60_000

export class MailboxWorker {
  readonly descriptor: MailboxDescriptor
  readonly crm: CrmAdapter
  /** The mailbox replica: Exchange over Graph, or a plain mail server (imap/pop3 profile). */
  readonly mailbox: ExchangeAdapter | MailServerAdapter
  readonly fence: FenceType
  private readonly counters: Record<'crm' | 'mailbox', RequestCounter> = { crm: { requests: 0, throttled: 0 }, mailbox: { requests: 0, throttled: 0 } }
  private pair: SyncPair
  private lease: Lease | null = null
  private masks: { value: OwnerMasks; at: number } | undefined
  private filters: SyncFilterSet | undefined
  private mergeConfig: MergePolicyConfig
  private rebuild = false
  private readonly crmSide: ReplicaAdapter
  private readonly mailboxSide: ReplicaAdapter

  private constructor(
    descriptor: MailboxDescriptor,
    private readonly store: ReplicaStore,
    fence: Fence,
    private readonly env: WorkerEnvironment,
    mergeConfig: MergePolicyConfig,
  ) {
    this.descriptor = descriptor
    this.fence = fence
    this.mergeConfig = mergeConfig
    const d = descriptor
    const track = (side: 'crm' | 'mailbox') => (throttled: boolean) => env.onRequest?.(side, throttled)
    this.crm = new CrmAdapter(
      { orgUrl: env.crm.url, tokenUrl: env.crm.tokenUrl, clientId: env.crm.clientId, clientSecret: env.crm.clientSecret, impersonate: { systemUserId: d.ownerId }, kinds: crmKinds(d.kinds) },
      { replicaId: asReplicaId(`crm:${d.ownerId}`), logger: env.logger, fetch: countingFetch(env.crmFetch, this.counters.crm, (u) => u.startsWith(env.crm.tokenUrl), track('crm')) },
    )
    const graphToken = env.graph.tokenUrl
    const binding = d.binding
    if (binding && binding.type !== 'exchange') {
      this.mailbox = new MailServerAdapter(mailServerOptionsOf(binding, `mbx:${d.mailboxId}`, d.email), {
        logger: env.logger,
        ...(env.sendLedger ? { ledger: env.sendLedger(d.mailboxId) } : {}),
        onMessageProblem: (p) => env.onMessageProblem?.(d.mailboxId, p),
      })
    } else {
      this.mailbox = new ExchangeAdapter(
        { replicaId: `mbx:${d.mailboxId}`, mailbox: d.email, tenantId: env.graph.tenantId, clientId: env.graph.clientId, clientSecret: env.graph.clientSecret, graphBaseUrl: env.graph.url, kinds: d.kinds, ...(graphToken ? { tokenUrl: graphToken } : {}) },
        { fetch: countingFetch(env.graphFetch, this.counters.mailbox, (u) => (graphToken ? u.startsWith(graphToken) : u.includes('/oauth2/')), track('mailbox')), logger: env.logger, now: env.now },
      )
    }
    this.crmSide = env.crmSide ? env.crmSide(this) : this.crm
    this.mailboxSide = env.mailboxSide ? env.mailboxSide(this) : this.mailbox
    this.pair = this.newPair()
  }

  /** Opens the mailbox's engine store on `db` (a per-mailbox sublevel); every write is fenced by the lease. */
  static async open(descriptor: MailboxDescriptor, db: StoreDatabase, env: WorkerEnvironment, mergeConfig: MergePolicyConfig): Promise<MailboxWorker> {
    const fence = new Fence(env.now)
    // Opening writes only the store's format marker (idempotent); every later write needs the lease.
    let opening = true
    const store = await ReplicaStore.open(db, { now: env.now, cacheEntries: env.cacheEntries, beforeWrite: () => opening || fence.assertHeld() })
    opening = false
    return new MailboxWorker(descriptor, store, fence, env, mergeConfig)
  }

  private newPair(): SyncPair {
    return new SyncPair({
      pairId: asPairId(`pair:${this.descriptor.mailboxId}`),
      store: this.store,
      crm: this.crmSide,
      mailbox: this.mailboxSide,
      merge: new PolicyMerge(this.mergeConfig),
      now: this.env.now,
      logger: this.env.logger,
      ...(this.env.deletionGuard ? { deletionGuard: this.env.deletionGuard } : {}),
      onDecision: (_id, decision) => {
        for (const f of decision.fields) if (f.outcome.startsWith('conflict') || f.outcome === 'merged') this.env.onConflict?.()
      },
    })
  }

  /** The Exchange adapter (Graph subscriptions, Exchange sending); undefined for imap/pop3 mailboxes. */
  get exchange(): ExchangeAdapter | undefined {
    return this.mailbox instanceof ExchangeAdapter ? this.mailbox : undefined
  }

  /** The mail-server adapter of an imap/pop3 mailbox; undefined for Exchange. */
  get mailServer(): MailServerAdapter | undefined {
    return this.mailbox instanceof MailServerAdapter ? this.mailbox : undefined
  }

  /** Closes the mailbox's connections (IMAP session, SMTP pool); Graph has none. */
  async close(): Promise<void> {
    await this.mailServer?.close()
  }

  /** The engine pair (conflicts, quarantine, explain for the admin API). */
  get syncPair(): SyncPair {
    return this.pair
  }

  get engineStore(): ReplicaStore {
    return this.store
  }

  /** The owner's sync filters (theirs, else the organization's default). */
  get syncFilters(): SyncFilterSet {
    return this.filters ?? this.mergeConfig.filters
  }

  /** New merge configuration (directions changed) or filters: applied from the next cycle. */
  reconfigure(change: { mergeConfig?: MergePolicyConfig; filters?: SyncFilterSet | undefined }): void {
    if (change.mergeConfig) {
      this.mergeConfig = change.mergeConfig
      this.rebuild = true
    }
    if ('filters' in change) {
      this.filters = change.filters
      this.masks = undefined
    }
  }

  /** The owner's CRM masks (cached for a few minutes). */
  async ownerMasks(refresh = false): Promise<OwnerMasks> {
    const at = this.env.now()
    if (!refresh && this.masks && at - this.masks.at < MASKS_TTL_MS) return this.masks.value
    const value = await this.crm.getOwnerMasks()
    this.masks = { value, at }
    return value
  }

  /** Takes or renews the mailbox's lease; false when another holder has it. */
  async holdLease(): Promise<boolean> {
    const key = `mailbox:${this.descriptor.mailboxId}`
    const renewed = this.lease ? await this.env.leases.renew(this.lease, this.env.leaseTtlMs) : null
    this.lease = renewed ?? (await this.env.leases.acquire(key, this.env.holder, this.env.leaseTtlMs))
    this.fence.set(this.lease)
    return this.lease !== null
  }

  async releaseLease(): Promise<void> {
    if (this.lease) await this.env.leases.release(this.lease)
    this.lease = null
    this.fence.set(null)
  }

  /** One sync cycle. Never throws: failures come back as an outcome for the lifecycle and the scheduler. */
  async runCycle(signal?: AbortSignal): Promise<CycleOutcome> {
    const started = this.env.now()
    const before = { crm: this.counters.crm.requests, mailbox: this.counters.mailbox.requests }
    const finish = (o: Omit<CycleOutcome, 'requests' | 'durationMs' | 'changes'> & { changes?: number }): CycleOutcome => ({
      changes: 0,
      ...o,
      requests: { crm: this.counters.crm.requests - before.crm, mailbox: this.counters.mailbox.requests - before.mailbox },
      durationMs: this.env.now() - started,
    })
    try {
      if (!(await this.holdLease())) return finish({ outcome: 'skipped', reason: 'another server holds this mailbox' })
      const masks = await this.ownerMasks()
      if (!masks.maySync) return finish({ outcome: 'skipped', reason: 'the mailbox owner has no sync privilege' })
      if (this.rebuild) {
        this.pair = this.newPair()
        this.rebuild = false
      }
      this.pair.setContext(pairContextOf(masks, this.descriptor.email, this.filters))
      const report = await this.pair.runCycle(signal)
      const changes = report.logged.crm + report.logged.mailbox
      if (report.throttledMs !== undefined) return finish({ outcome: 'throttled', report, throttledMs: report.throttledMs, changes })
      if (report.skipped) return finish({ outcome: 'skipped', report, reason: report.skipped, changes })
      return finish({ outcome: 'ok', report, changes })
    } catch (error) {
      return finish({ outcome: 'error', error, reason: error instanceof Error ? error.message : String(error) })
    }
  }
}

/** The CRM adapter syncs these tables in this order. */
function crmKinds(kinds: readonly ItemKind[]): Array<'contact' | 'appointment' | 'task' | 'email'> {
  return (['contact', 'appointment', 'task', 'email'] as const).filter((k) => kinds.includes(k))
}
