/**
 * Change-notification subscriptions (webhooks). The caller owns the HTTP endpoint: it answers Graph's
 * validation handshake with `validationTokenOf(url)` and hands every notification body to
 * `handleNotification(body)`. Listeners registered with `onNotification` learn which kinds changed
 * and when a delta pull is needed (`missed`, `subscriptionRemoved`); notifications only schedule
 * pulls — the delta pull is what reads the changes, so a lost notification costs latency, never data.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { SyncError, ValidationError } from '@concord/engine'
import type { ItemKind, Logger } from '@concord/engine'
import { z } from 'zod'
import { classifyGraphFailure, invalidRemoteData } from './errors.js'
import type { GraphHttp } from './graph-http.js'

const IMMUTABLE = 'IdType="ImmutableId"'

export interface SubscriptionOptions {
  /** Where lifecycle notifications go (`missed`, `subscriptionRemoved`, `reauthorizationRequired`); default: `notificationUrl`. */
  lifecycleNotificationUrl?: string | undefined
  /** Requested lifetime; Graph caps it (4,230 min for To Do, 10,080 for Outlook items). Default 4,200. */
  expirationMinutes?: number | undefined
}

const SubscriptionOptionsSchema = z.strictObject({
  lifecycleNotificationUrl: z.url().optional(),
  expirationMinutes: z.number().int().min(1).max(10_080).optional(),
})

export interface ActiveSubscription {
  id: string
  resource: string
  kind: ItemKind
  expirationDateTime: string
}

const ITEM_KINDS = ['email', 'appointment', 'contact', 'task'] as const

/**
 * The persistable state of a `SubscriptionManager` (`snapshot()` → store → `restore()`). It never holds
 * the clientState secret, only `clientStateHash` (`sha256:` + hex of the secret), so the caller passes
 * the secret again on restore and a changed secret is detected.
 */
export const SubscriptionStateSchema = z.strictObject({
  version: z.literal(1),
  /** Mailbox path the subscriptions belong to (`users/{upn}`); restoring into another mailbox is refused. */
  user: z.string().min(1),
  notificationUrl: z.url(),
  clientStateHash: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex digits>'),
  options: SubscriptionOptionsSchema,
  subscriptions: z
    .array(
      z.strictObject({
        id: z.string().min(1),
        resource: z.string().min(1),
        kind: z.enum(ITEM_KINDS),
        expirationDateTime: z.iso.datetime({ offset: true }),
      }),
    )
    .max(1000),
  savedAt: z.iso.datetime({ offset: true }),
})
export type SubscriptionState = z.infer<typeof SubscriptionStateSchema>

export interface RestoreOptions {
  notificationUrl: string
  clientState: string
  /** Subscription options for re-created subscriptions; default: those in the snapshot. */
  options?: SubscriptionOptions | undefined
  /** Subscriptions expiring within this many ms are renewed during restore (default 24 h, like `renew`). */
  renewWithinMs?: number | undefined
}

export interface RestoreReport {
  /** Ids adopted as they were (Graph still knows them, clientState and URL unchanged). */
  adopted: string[]
  /** Ids renewed because they were about to expire. */
  renewed: string[]
  /** Ids of subscriptions created because the old one was gone (expired, deleted, 404) or missing. */
  created: string[]
  /** Ids deleted because they no longer match the configuration (other resource, URL or secret, duplicate). */
  deleted: string[]
  /** True when any notification may have been lost: the caller should run a delta pull. */
  pullRequested: boolean
}

function hashSecret(secret: string): string {
  return `sha256:${createHash('sha256').update(secret, 'utf8').digest('hex')}`
}

export type LifecycleEventName = 'reauthorizationRequired' | 'subscriptionRemoved' | 'missed'

export interface NotificationResult {
  /** Kinds with created/updated/deleted notifications in this body. */
  changedKinds: ItemKind[]
  changes: Array<{ kind: ItemKind; changeType: string; id: string | undefined }>
  lifecycle: Array<{ subscriptionId: string; event: LifecycleEventName }>
  /** A delta pull is needed to recover (a `missed` or `subscriptionRemoved` lifecycle event). */
  pullRequested: boolean
  /** Notifications ignored because their clientState did not match (or their subscription is unknown). */
  rejected: number
}

export type NotificationListener = (result: NotificationResult) => void

const ChangeNotification = z.looseObject({
  subscriptionId: z.string().min(1),
  clientState: z.string().nullable().optional(),
  changeType: z.string().min(1),
  resource: z.string().optional(),
  resourceData: z.looseObject({ id: z.string().optional() }).nullable().optional(),
})
const LifecycleNotification = z.looseObject({
  subscriptionId: z.string().min(1),
  clientState: z.string().nullable().optional(),
  lifecycleEvent: z.enum(['reauthorizationRequired', 'subscriptionRemoved', 'missed']),
})
export const NotificationBodySchema = z.strictObject({ value: z.array(z.union([LifecycleNotification, ChangeNotification])).max(1000) }).loose()

const SubscriptionResponse = z.looseObject({ id: z.string().min(1), expirationDateTime: z.string(), resource: z.string() })

/** The decoded `validationToken` of Graph's handshake request (answer it as text/plain, 200), if any. */
export function validationTokenOf(url: string): string | undefined {
  const q = url.indexOf('?')
  if (q < 0) return undefined
  return new URLSearchParams(url.slice(q + 1)).get('validationToken') ?? undefined
}

function sameSecret(a: string | null | undefined, b: string): boolean {
  if (typeof a !== 'string') return false
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export class SubscriptionManager {
  private readonly subs = new Map<string, ActiveSubscription>()
  private readonly listeners = new Set<NotificationListener>()
  private readonly stateListeners = new Set<(state: SubscriptionState) => void>()
  private endpoint: { notificationUrl: string; clientState: string; options: SubscriptionOptions } | undefined
  /** Set by `missed` / `subscriptionRemoved`; `takePullRequest()` reads and clears it. */
  pullRequested = false

  constructor(
    private readonly http: GraphHttp,
    private readonly user: string,
    private readonly listId: () => Promise<string>,
    private readonly kinds: readonly ItemKind[],
    private readonly mailFolders: readonly string[],
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {}

  active(): ActiveSubscription[] {
    return [...this.subs.values()]
  }

  onNotification(listener: NotificationListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /**
   * Called with a fresh `snapshot()` whenever the set of subscriptions or their expiries changed
   * (create, renew, restore, a lifecycle event that re-created one, deleteAll): persist it there.
   * Returns an unsubscribe function.
   */
  onStateChange(listener: (state: SubscriptionState) => void): () => void {
    this.stateListeners.add(listener)
    return () => this.stateListeners.delete(listener)
  }

  private stateChanged(): void {
    if (!this.endpoint || this.stateListeners.size === 0) return
    const state = this.snapshot()
    for (const l of this.stateListeners) l(state)
  }

  takePullRequest(): boolean {
    const v = this.pullRequested
    this.pullRequested = false
    return v
  }

  private async resources(): Promise<Array<{ resource: string; kind: ItemKind }>> {
    const out: Array<{ resource: string; kind: ItemKind }> = []
    for (const kind of this.kinds) {
      if (kind === 'email') for (const f of this.mailFolders) out.push({ kind, resource: `${this.user}/mailFolders/${encodeURIComponent(f)}/messages` })
      if (kind === 'appointment') out.push({ kind, resource: `${this.user}/events` })
      if (kind === 'contact') out.push({ kind, resource: `${this.user}/contacts` })
      if (kind === 'task') out.push({ kind, resource: `${this.user}/todo/lists/${encodeURIComponent(await this.listId())}/tasks` })
    }
    return out
  }

  private expiry(options: SubscriptionOptions): string {
    return new Date(this.now() + (options.expirationMinutes ?? 4200) * 60_000).toISOString()
  }

  private static endpointOf(notificationUrl: string, clientState: string, options: SubscriptionOptions): { notificationUrl: string; clientState: string; options: SubscriptionOptions } {
    const url = z.url().safeParse(notificationUrl)
    if (!url.success) throw ValidationError.fromZod('notificationUrl', url.error)
    const state = z.string().min(16, 'use at least 16 random characters').max(128).safeParse(clientState)
    if (!state.success) throw ValidationError.fromZod('clientState', state.error)
    const opts = SubscriptionOptionsSchema.safeParse(options)
    if (!opts.success) throw ValidationError.fromZod('subscription options', opts.error)
    return { notificationUrl, clientState, options: opts.data }
  }

  /** Creates one subscription per tracked resource. Graph validates `notificationUrl` before answering. */
  async create(notificationUrl: string, clientState: string, options: SubscriptionOptions = {}): Promise<void> {
    this.endpoint = SubscriptionManager.endpointOf(notificationUrl, clientState, options)
    try {
      for (const r of await this.resources()) await this.createOne(r.resource, r.kind)
    } finally {
      this.stateChanged()
    }
  }

  /**
   * The state to persist so that a restarted process adopts its subscriptions instead of orphaning
   * them. Holds no secret (only a hash of clientState). Throws a ValidationError before `create`/`restore`.
   */
  snapshot(): SubscriptionState {
    const ep = this.endpoint
    if (!ep) throw new ValidationError('subscription state', [{ path: '', message: 'nothing to snapshot: call create() or restore() first' }])
    return {
      version: 1,
      user: this.user,
      notificationUrl: ep.notificationUrl,
      clientStateHash: hashSecret(ep.clientState),
      options: { ...ep.options },
      subscriptions: [...this.subs.values()].map((s) => ({ id: s.id, resource: s.resource, kind: s.kind, expirationDateTime: s.expirationDateTime })),
      savedAt: new Date(this.now()).toISOString(),
    }
  }

  /**
   * Restores a `snapshot()` (zod-validated; it may come from disk). For each tracked resource the
   * snapshot's subscription is checked with `GET /subscriptions/{id}`: one Graph still knows is adopted
   * (and renewed when it expires within `renewWithinMs`); one that expired or that Graph no longer knows
   * (404) is created again and a pull is requested. When the notificationUrl or the clientState changed,
   * the old subscriptions cannot be verified or reached: they are deleted, new ones created and a pull
   * requested. Subscriptions for resources no longer tracked, and duplicates, are deleted.
   */
  async restore(state: unknown, opts: RestoreOptions): Promise<RestoreReport> {
    const parsed = SubscriptionStateSchema.safeParse(state)
    if (!parsed.success) throw ValidationError.fromZod('subscription state', parsed.error)
    const snap = parsed.data
    if (snap.user !== this.user) throw new ValidationError('subscription state', [{ path: 'user', message: `it belongs to '${snap.user}', not '${this.user}'` }])
    const within = z.number().int().min(0).safeParse(opts.renewWithinMs ?? 24 * 3600_000)
    if (!within.success) throw ValidationError.fromZod('renewWithinMs', within.error)
    this.endpoint = SubscriptionManager.endpointOf(opts.notificationUrl, opts.clientState, opts.options ?? snap.options)
    const report: RestoreReport = { adopted: [], renewed: [], created: [], deleted: [], pullRequested: false }
    const sameEndpoint = snap.notificationUrl === opts.notificationUrl && sameSecret(snap.clientStateHash, hashSecret(opts.clientState))
    const wanted = await this.resources()
    const claimed = new Set<string>()
    const now = this.now()
    for (const old of snap.subscriptions) {
      const match = wanted.find((w) => w.resource === old.resource && w.kind === old.kind)
      const keep = sameEndpoint && match !== undefined && !claimed.has(old.resource)
      if (!keep) {
        if (await this.deleteRemote(old.id)) report.deleted.push(old.id)
        if (match !== undefined && !claimed.has(old.resource)) report.pullRequested = true
        continue
      }
      claimed.add(old.resource)
      if (Date.parse(old.expirationDateTime) <= now) {
        // Graph deletes a subscription that was not renewed in time; notifications since then are lost.
        const sub = await this.createOne(old.resource, old.kind)
        report.created.push(sub.id)
        report.pullRequested = true
        continue
      }
      const res = await this.http.send('GET', `/subscriptions/${encodeURIComponent(old.id)}`)
      if (res.status === 404) {
        const sub = await this.createOne(old.resource, old.kind)
        report.created.push(sub.id)
        report.pullRequested = true
        continue
      }
      if (res.status !== 200) throw classifyGraphFailure(res, { now: this.now() })
      const remote = SubscriptionResponse.safeParse(res.body)
      if (!remote.success) throw invalidRemoteData('subscription', remote.error, `/subscriptions/${old.id}`)
      const sub: ActiveSubscription = { id: old.id, resource: old.resource, kind: old.kind, expirationDateTime: remote.data.expirationDateTime }
      this.subs.set(sub.id, sub)
      if (Date.parse(sub.expirationDateTime) - now <= within.data) {
        const wasPull = this.pullRequested
        await this.renewOne(sub)
        if (this.subs.has(sub.id)) report.renewed.push(sub.id)
        else {
          report.created.push(...[...this.subs.values()].filter((s) => s.resource === sub.resource).map((s) => s.id))
          report.pullRequested = true
          this.pullRequested = wasPull
        }
      } else report.adopted.push(sub.id)
    }
    for (const w of wanted) {
      if (claimed.has(w.resource)) continue
      const sub = await this.createOne(w.resource, w.kind)
      report.created.push(sub.id)
      // A resource the snapshot had no subscription for: changes since the snapshot were not notified.
      report.pullRequested = true
    }
    if (report.pullRequested) this.pullRequested = true
    this.stateChanged()
    return report
  }

  /** DELETE on the service; true when it existed (204/200), false when already gone (404). */
  private async deleteRemote(id: string): Promise<boolean> {
    const res = await this.http.send('DELETE', `/subscriptions/${encodeURIComponent(id)}`)
    if (res.status === 404) return false
    if (res.status !== 204 && res.status !== 200) throw classifyGraphFailure(res, { now: this.now() })
    return true
  }

  private async createOne(resource: string, kind: ItemKind): Promise<ActiveSubscription> {
    const ep = this.endpoint!
    const res = await this.http.ok('POST', '/subscriptions', { Prefer: IMMUTABLE }, {
      changeType: 'created,updated,deleted',
      notificationUrl: ep.notificationUrl,
      lifecycleNotificationUrl: ep.options.lifecycleNotificationUrl ?? ep.notificationUrl,
      resource,
      expirationDateTime: this.expiry(ep.options),
      clientState: ep.clientState,
    })
    const parsed = SubscriptionResponse.safeParse(res.body)
    if (!parsed.success) throw invalidRemoteData('subscription', parsed.error, '/subscriptions')
    const sub = { id: parsed.data.id, resource, kind, expirationDateTime: parsed.data.expirationDateTime }
    this.subs.set(sub.id, sub)
    return sub
  }

  /**
   * Renews subscriptions that expire within `withinMs` (default 24 h) of `now`; one that Graph no
   * longer knows (404) is created again. Returns how many were renewed or re-created.
   */
  async renew(now: number, withinMs = 24 * 3600_000): Promise<number> {
    if (!this.endpoint) return 0
    let n = 0
    for (const sub of [...this.subs.values()]) {
      if (Date.parse(sub.expirationDateTime) - now > withinMs) continue
      await this.renewOne(sub)
      n++
    }
    if (n > 0) this.stateChanged()
    return n
  }

  /** Extends one subscription; one Graph no longer knows (404) is created again and a pull is requested. */
  private async renewOne(sub: ActiveSubscription): Promise<void> {
    const res = await this.http.send('PATCH', `/subscriptions/${encodeURIComponent(sub.id)}`, {}, { expirationDateTime: this.expiry(this.endpoint!.options) })
    if (res.status === 404) {
      this.subs.delete(sub.id)
      await this.createOne(sub.resource, sub.kind)
      this.pullRequested = true
    } else if (res.status === 200) {
      const parsed = SubscriptionResponse.safeParse(res.body)
      if (!parsed.success) throw invalidRemoteData('subscription', parsed.error, '/subscriptions')
      sub.expirationDateTime = parsed.data.expirationDateTime
    } else throw classifyGraphFailure(res, { now: this.now() })
  }

  /** Deletes every subscription this manager created. */
  async deleteAll(): Promise<void> {
    for (const sub of [...this.subs.values()]) {
      const res = await this.http.send('DELETE', `/subscriptions/${encodeURIComponent(sub.id)}`)
      if (res.status !== 204 && res.status !== 404 && res.status !== 200) throw classifyGraphFailure(res, { now: this.now() })
      this.subs.delete(sub.id)
    }
    this.stateChanged()
  }

  /**
   * Validates a notification POST body (zod; `clientState` compared in constant time) and returns what
   * changed. Lifecycle events are acted on: `subscriptionRemoved` re-creates the subscription,
   * `reauthorizationRequired` reauthorizes it, `missed` and `subscriptionRemoved` request a delta pull.
   */
  async handle(body: unknown): Promise<NotificationResult> {
    const parsed = NotificationBodySchema.safeParse(body)
    if (!parsed.success) throw ValidationError.fromZod('notification body', parsed.error)
    const result: NotificationResult = { changedKinds: [], changes: [], lifecycle: [], pullRequested: false, rejected: 0 }
    const clientState = this.endpoint?.clientState
    for (const n of parsed.data.value) {
      const sub = this.subs.get(n.subscriptionId)
      if (clientState === undefined || !sameSecret(n.clientState, clientState) || !sub) {
        result.rejected++
        continue
      }
      const life = LifecycleNotification.safeParse(n)
      if (life.success) {
        const event = life.data.lifecycleEvent
        result.lifecycle.push({ subscriptionId: n.subscriptionId, event })
        if (event === 'missed') result.pullRequested = true
        else if (event === 'subscriptionRemoved') {
          result.pullRequested = true
          this.subs.delete(sub.id)
          try {
            await this.createOne(sub.resource, sub.kind)
          } catch (error) {
            if (!(error instanceof SyncError)) throw error
            this.logger.warn({ subscriptionId: sub.id, code: error.code }, 're-creating a removed subscription failed; renewSubscriptions retries')
            this.subs.set(sub.id, { ...sub, expirationDateTime: new Date(0).toISOString() })
          }
        } else {
          // reauthorizationRequired: reauthorize; when that fails, renew (which re-creates a subscription
          // Graph no longer knows and then requests a pull).
          const res = await this.http.send('POST', `/subscriptions/${encodeURIComponent(sub.id)}/reauthorize`)
          if (res.status >= 300) {
            this.logger.warn({ subscriptionId: sub.id, status: res.status }, 'reauthorize failed; renewing instead')
            try {
              await this.renewOne(sub)
            } catch (error) {
              if (!(error instanceof SyncError)) throw error
              this.logger.warn({ subscriptionId: sub.id, code: error.code }, 'renewing after a failed reauthorize failed; renewSubscriptions retries')
              sub.expirationDateTime = new Date(0).toISOString()
            }
            if (this.pullRequested) result.pullRequested = true
          }
        }
        continue
      }
      const change = ChangeNotification.parse(n)
      result.changes.push({ kind: sub.kind, changeType: change.changeType, id: change.resourceData?.id ?? undefined })
      if (!result.changedKinds.includes(sub.kind)) result.changedKinds.push(sub.kind)
    }
    if (result.pullRequested) this.pullRequested = true
    if (result.lifecycle.length > 0) this.stateChanged()
    if (result.changes.length > 0 || result.lifecycle.length > 0) for (const l of this.listeners) l(result)
    return result
  }

  async close(): Promise<void> {
    this.listeners.clear()
  }
}
