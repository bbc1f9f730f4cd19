/**
 * Change-notification subscriptions (webhooks). The caller owns the HTTP endpoint: it answers Graph's
 * validation handshake with `validationTokenOf(url)` and hands every notification body to
 * `handleNotification(body)`. Listeners registered with `onNotification` learn which kinds changed
 * and when a delta pull is needed (`missed`, `subscriptionRemoved`); notifications only schedule
 * pulls — the delta pull is what reads the changes, so a lost notification costs latency, never data.
 */
import { timingSafeEqual } from 'node:crypto'
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

  /** Creates one subscription per tracked resource. Graph validates `notificationUrl` before answering. */
  async create(notificationUrl: string, clientState: string, options: SubscriptionOptions = {}): Promise<void> {
    const url = z.url().safeParse(notificationUrl)
    if (!url.success) throw ValidationError.fromZod('notificationUrl', url.error)
    const state = z.string().min(16, 'use at least 16 random characters').max(128).safeParse(clientState)
    if (!state.success) throw ValidationError.fromZod('clientState', state.error)
    const opts = SubscriptionOptionsSchema.safeParse(options)
    if (!opts.success) throw ValidationError.fromZod('subscription options', opts.error)
    this.endpoint = { notificationUrl, clientState, options: opts.data }
    for (const r of await this.resources()) await this.createOne(r.resource, r.kind)
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
    if (result.changes.length > 0 || result.lifecycle.length > 0) for (const l of this.listeners) l(result)
    return result
  }

  async close(): Promise<void> {
    this.listeners.clear()
  }
}
