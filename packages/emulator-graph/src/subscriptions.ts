/**
 * Change notifications: subscriptions with the validation handshake, notification delivery with
 * retries, lifecycle events, and the drop/delay faults.
 */
import { randomUUID } from 'node:crypto'
import { z } from 'zod'
import { GraphHttpError, badRequest } from './errors.js'
import type { Clock } from './clock.js'
import type { Faults } from './faults.js'
import { splitPath } from './router.js'
import { etag } from './store/render.js'
import type { Store } from './store/store.js'
import type { ChangeEvent, ItemKind } from './store/types.js'

export const MAX_EXPIRATION_MINUTES = 10080
export const MAX_EXPIRATION_MINUTES_TODO = 4230

export const subscriptionCreateSchema = z.looseObject({
  changeType: z.string().regex(/^\s*(created|updated|deleted)(\s*,\s*(created|updated|deleted))*\s*$/, 'expected a comma-separated list of created, updated, deleted'),
  notificationUrl: z.url(),
  lifecycleNotificationUrl: z.url().nullable().optional(),
  resource: z.string().min(1),
  expirationDateTime: z.iso.datetime({ offset: true }),
  clientState: z.string().max(128).nullable().optional(),
  includeResourceData: z.boolean().optional(),
  latestSupportedTlsVersion: z.string().optional(),
})

export const subscriptionPatchSchema = z.strictObject({
  expirationDateTime: z.iso.datetime({ offset: true }),
})

export interface Subscription {
  id: string
  appId: string
  resource: string
  changeType: string
  notificationUrl: string
  lifecycleNotificationUrl: string | null
  clientState: string | null
  expirationDateTime: string
  immutable: boolean
  mailboxId: string
  kind: ItemKind
  /** Container id, or undefined for "any container of that kind in the mailbox". */
  containerId: string | undefined
}

export type LifecycleEvent = 'reauthorizationRequired' | 'subscriptionRemoved' | 'missed'

export interface DeliveryRecord {
  at: string
  type: 'validation' | 'notification' | 'lifecycle'
  url: string
  status: number | null
  count: number
  dropped: boolean
  error?: string | undefined
}

export interface SubscriptionOptions {
  validationTimeoutMs: number
  /** A delivery not acknowledged (2xx) within this time is retried (Graph: 3 s). */
  ackTimeoutMs: number
  retryWindowMs: number
  maxDeliveryLog: number
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h)
}

export function checkNotificationUrl(url: string, field: string): void {
  const u = new URL(url)
  if (u.protocol === 'https:') return
  if (u.protocol === 'http:' && isLoopback(u.hostname)) return
  throw new GraphHttpError(
    400,
    'ValidationError',
    `Subscription validation request failed. The ${field} '${url}' must use https (the emulator also allows plain http on loopback addresses).`,
  )
}

interface Pending {
  body: Array<Record<string, unknown>>
  scheduled: boolean
}

export class Subscriptions {
  readonly subs = new Map<string, Subscription>()
  readonly deliveries: DeliveryRecord[] = []
  private readonly queues = new Map<string, Pending>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly inflight = new Set<Promise<unknown>>()
  private closed = false
  version = 0

  constructor(
    private readonly store: Store,
    private readonly faults: Faults,
    private readonly clock: Clock,
    private readonly tenant: string,
    private readonly opts: SubscriptionOptions,
  ) {
    store.onChange((e) => this.onChange(e))
  }

  private record(r: DeliveryRecord): void {
    this.deliveries.push(r)
    if (this.deliveries.length > this.opts.maxDeliveryLog) this.deliveries.shift()
  }

  /** Parses `resource` into mailbox, kind and container. */
  parseResource(resource: string): { mailboxId: string; kind: ItemKind; containerId: string | undefined } {
    const segs = splitPath(resource.split('?')[0] ?? '')
    const lower = segs.map((s) => s.toLowerCase())
    const bad = (): GraphHttpError => badRequest(`Resource '${resource}' is not supported for subscriptions.`, 'InvalidRequest')
    if (lower[0] === 'me') throw badRequest('/me request is only valid with delegated authentication flow.')
    if (lower[0] !== 'users' || segs.length < 3) throw bad()
    const mb = this.store.findMailbox(segs[1] as string)
    if (!mb) throw new GraphHttpError(404, 'ErrorInvalidUser', `The requested user '${segs[1]}' is invalid.`)
    const rest = lower.slice(2)
    const raw = segs.slice(2)
    const container = (kind: Parameters<Store['findContainer']>[1], id: string): string => {
      const c = this.store.findContainer(mb, kind, id)
      if (!c) throw new GraphHttpError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.')
      return c.id
    }
    const j = rest.join('/')
    if (j === 'messages' || j === 'mailfolders/messages') return { mailboxId: mb.id, kind: 'message', containerId: undefined }
    if (rest.length === 3 && rest[0] === 'mailfolders' && rest[2] === 'messages')
      return { mailboxId: mb.id, kind: 'message', containerId: container('mailFolder', raw[1] as string) }
    if (j === 'events') return { mailboxId: mb.id, kind: 'event', containerId: undefined }
    if (j === 'calendar/events') return { mailboxId: mb.id, kind: 'event', containerId: container('calendar', 'calendar') }
    if (rest.length === 3 && rest[0] === 'calendars' && rest[2] === 'events')
      return { mailboxId: mb.id, kind: 'event', containerId: container('calendar', raw[1] as string) }
    if (j === 'contacts') return { mailboxId: mb.id, kind: 'contact', containerId: undefined }
    if (rest.length === 3 && rest[0] === 'contactfolders' && rest[2] === 'contacts')
      return { mailboxId: mb.id, kind: 'contact', containerId: container('contactFolder', raw[1] as string) }
    if (rest.length === 4 && rest[0] === 'todo' && rest[1] === 'lists' && rest[3] === 'tasks')
      return { mailboxId: mb.id, kind: 'task', containerId: container('todoList', raw[2] as string) }
    throw bad()
  }

  private capExpiration(kind: ItemKind, requested: string): string {
    const ms = Date.parse(requested)
    const now = this.clock.now()
    if (ms <= now) throw badRequest(`Subscription expiration '${requested}' must be in the future.`, 'InvalidRequest')
    const max = now + (kind === 'task' ? MAX_EXPIRATION_MINUTES_TODO : MAX_EXPIRATION_MINUTES) * 60_000
    return new Date(Math.min(ms, max)).toISOString()
  }

  private async validate(url: string): Promise<void> {
    const token = `Validation: Testing client application reachability for subscription Request-Id: ${randomUUID()}`
    const target = `${url}${url.includes('?') ? '&' : '?'}validationToken=${encodeURIComponent(token)}`
    let status: number
    let text: string
    let contentType: string
    try {
      const res = await fetch(target, {
        method: 'POST',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        body: '',
        signal: AbortSignal.timeout(this.opts.validationTimeoutMs),
      })
      status = res.status
      contentType = res.headers.get('content-type') ?? ''
      text = await res.text()
    } catch (err) {
      this.record({ at: this.clock.iso(), type: 'validation', url, status: null, count: 0, dropped: false, error: String(err) })
      throw new GraphHttpError(400, 'ValidationError', `Subscription validation request failed. Notification endpoint '${url}' could not be reached within ${this.opts.validationTimeoutMs / 1000} seconds.`, { cause: err })
    }
    this.record({ at: this.clock.iso(), type: 'validation', url, status, count: 0, dropped: false })
    if (status !== 200) {
      throw new GraphHttpError(400, 'ValidationError', `Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request (got ${status}).`)
    }
    if (!contentType.toLowerCase().startsWith('text/plain')) {
      throw new GraphHttpError(400, 'ValidationError', `Subscription validation request failed. Response must have Content-Type text/plain (got '${contentType}').`)
    }
    if (text !== token) {
      throw new GraphHttpError(400, 'ValidationError', 'Subscription validation request failed. Response must exactly match validationToken query parameter.')
    }
  }

  async create(appId: string, body: z.infer<typeof subscriptionCreateSchema>, immutable: boolean): Promise<Subscription> {
    if (body.includeResourceData === true) {
      throw badRequest('Rich notifications (includeResourceData) are not supported by the emulator.', 'InvalidRequest')
    }
    const target = this.parseResource(body.resource)
    checkNotificationUrl(body.notificationUrl, 'notificationUrl')
    if (body.lifecycleNotificationUrl) checkNotificationUrl(body.lifecycleNotificationUrl, 'lifecycleNotificationUrl')
    const expirationDateTime = this.capExpiration(target.kind, body.expirationDateTime)
    await this.validate(body.notificationUrl)
    if (body.lifecycleNotificationUrl && body.lifecycleNotificationUrl !== body.notificationUrl) {
      await this.validate(body.lifecycleNotificationUrl)
    }
    const sub: Subscription = {
      id: randomUUID(),
      appId,
      resource: body.resource,
      changeType: body.changeType.replace(/\s/g, ''),
      notificationUrl: body.notificationUrl,
      lifecycleNotificationUrl: body.lifecycleNotificationUrl ?? null,
      clientState: body.clientState ?? null,
      expirationDateTime,
      immutable,
      ...target,
    }
    this.subs.set(sub.id, sub)
    this.version++
    return sub
  }

  get(id: string): Subscription {
    this.sweep()
    const s = this.subs.get(id)
    if (!s) throw new GraphHttpError(404, 'ResourceNotFound', `The object was not found. Subscription '${id}' does not exist.`)
    return s
  }

  renew(id: string, expirationDateTime: string): Subscription {
    const s = this.get(id)
    s.expirationDateTime = this.capExpiration(s.kind, expirationDateTime)
    this.version++
    return s
  }

  delete(id: string): void {
    this.get(id)
    this.subs.delete(id)
    this.version++
  }

  reauthorize(id: string): Subscription {
    return this.get(id)
  }

  list(appId: string): Subscription[] {
    this.sweep()
    return [...this.subs.values()].filter((s) => s.appId === appId)
  }

  private sweep(): void {
    const now = this.clock.now()
    for (const s of this.subs.values()) {
      if (Date.parse(s.expirationDateTime) <= now) {
        this.subs.delete(s.id)
        this.version++
      }
    }
  }

  toJson(s: Subscription): Record<string, unknown> {
    return {
      id: s.id,
      resource: s.resource,
      applicationId: s.appId,
      changeType: s.changeType,
      clientState: s.clientState,
      notificationUrl: s.notificationUrl,
      notificationQueryOptions: null,
      lifecycleNotificationUrl: s.lifecycleNotificationUrl,
      expirationDateTime: s.expirationDateTime,
      creatorId: s.appId,
      includeResourceData: false,
      latestSupportedTlsVersion: 'v1_2',
      encryptionCertificate: null,
      encryptionCertificateId: null,
      notificationUrlAppId: null,
    }
  }

  // ---------- delivery ----------

  private onChange(e: ChangeEvent): void {
    if (this.subs.size === 0 || this.closed) return
    const now = this.clock.now()
    for (const s of this.subs.values()) {
      if (s.mailboxId !== e.mailbox.id || s.kind !== e.item.kind) continue
      if (s.containerId !== undefined && s.containerId !== e.containerId) continue
      if (!s.changeType.split(',').includes(e.changeType)) continue
      if (Date.parse(s.expirationDateTime) <= now) continue
      if (this.faults.notificationMode === 'drop' && (this.faults.dropRemaining === undefined || this.faults.dropRemaining > 0)) {
        if (this.faults.dropRemaining !== undefined) this.faults.dropRemaining--
        this.record({ at: this.clock.iso(), type: 'notification', url: s.notificationUrl, status: null, count: 1, dropped: true })
        if (this.faults.missedOnDrop) this.sendLifecycle(s, 'missed')
        continue
      }
      const id = s.immutable ? e.item.immutableId : e.restId
      const seg = { message: 'Messages', event: 'Events', contact: 'Contacts', task: 'Tasks' }[e.item.kind]
      const resource = `Users/${e.mailbox.id}/${seg}/${id}`
      const type = { message: 'Message', event: 'Event', contact: 'Contact', task: 'TodoTask' }[e.item.kind]
      this.enqueue(s.notificationUrl, {
        subscriptionId: s.id,
        subscriptionExpirationDateTime: s.expirationDateTime,
        changeType: e.changeType,
        resource,
        resourceData: { '@odata.type': `#Microsoft.Graph.${type}`, '@odata.id': resource, '@odata.etag': etag(e.item.changeKey), id },
        clientState: s.clientState,
        tenantId: this.tenant,
      })
    }
  }

  private enqueue(url: string, n: Record<string, unknown>): void {
    let q = this.queues.get(url)
    if (!q) {
      q = { body: [], scheduled: false }
      this.queues.set(url, q)
    }
    q.body.push(n)
    if (q.scheduled) return
    q.scheduled = true
    const flush = (): void => {
      const pending = this.queues.get(url)
      this.queues.delete(url)
      if (pending && pending.body.length > 0) this.post(url, 'notification', pending.body, this.clock.now(), 0)
    }
    if (this.faults.notificationMode === 'delay' && this.faults.notificationDelayMs > 0) this.later(flush, this.faults.notificationDelayMs)
    else setImmediate(flush)
  }

  private later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t)
      fn()
    }, ms)
    t.unref()
    this.timers.add(t)
  }

  private post(url: string, type: 'notification' | 'lifecycle', value: Array<Record<string, unknown>>, firstAt: number, attempt: number): void {
    if (this.closed) return
    const p = (async () => {
      let status: number | null = null
      let error: string | undefined
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ value }),
          signal: AbortSignal.timeout(this.opts.ackTimeoutMs),
        })
        status = res.status
        await res.arrayBuffer()
      } catch (err) {
        error = String(err)
      }
      this.record({ at: this.clock.iso(), type, url, status, count: value.length, dropped: false, error })
      const ok = status !== null && status >= 200 && status < 300
      if (!ok && this.clock.now() - firstAt < this.opts.retryWindowMs) {
        this.later(() => this.post(url, type, value, firstAt, attempt + 1), Math.min(60_000, 500 * 2 ** attempt))
      }
    })()
    this.inflight.add(p)
    void p.finally(() => this.inflight.delete(p))
  }

  /** Sends a lifecycle notification; `subscriptionRemoved` also deletes the subscription. */
  sendLifecycle(s: Subscription, event: LifecycleEvent): boolean {
    if (event === 'subscriptionRemoved') {
      this.subs.delete(s.id)
      this.version++
    }
    if (!s.lifecycleNotificationUrl) return false
    this.post(
      s.lifecycleNotificationUrl,
      'lifecycle',
      [
        {
          subscriptionId: s.id,
          subscriptionExpirationDateTime: s.expirationDateTime,
          tenantId: this.tenant,
          clientState: s.clientState,
          lifecycleEvent: event,
        },
      ],
      this.clock.now(),
      0,
    )
    return true
  }

  restore(list: Subscription[]): void {
    this.subs.clear()
    for (const s of list) this.subs.set(s.id, s)
  }

  clear(): void {
    this.subs.clear()
    this.deliveries.length = 0
    this.version++
  }

  async close(): Promise<void> {
    this.closed = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    await Promise.allSettled([...this.inflight])
  }
}
