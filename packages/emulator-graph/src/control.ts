/**
 * The emulator's control surface: seeding, inspection, fault injection and observation. Exposed both
 * programmatically (`emulator.control`) and over HTTP under `/_emulator`.
 */
import { z } from 'zod'
import type { Core } from './core.js'
import { EmulatorError, GraphHttpError } from './errors.js'
import { renderItem } from './store/render.js'
import { itemSchemas, type ItemKind } from './store/schemas.js'
import { CONTAINER_OF } from './store/store.js'
import type { ContainerKind, Item, Mailbox } from './store/types.js'
import type { RequestLogEntry } from './faults.js'
import type { LifecycleEvent } from './subscriptions.js'

export interface SeededItem {
  id: string
  immutableId: string
  changeKey: string
  containerId: string
}

export const faultSchema = z.strictObject({
  status: z.union([z.literal(429), z.literal(503), z.literal(504)]).default(429),
  count: z.number().int().min(1).default(1),
  retryAfterSeconds: z.number().min(0).optional(),
  mailbox: z.string().optional(),
})

export const notificationFaultSchema = z.strictObject({
  mode: z.enum(['deliver', 'drop', 'delay']),
  delayMs: z.number().int().min(0).optional(),
  dropCount: z.number().int().min(1).optional(),
  missedOnDrop: z.boolean().optional(),
})

export const throttleSchema = z.strictObject({
  requestsPerWindow: z.number().int().min(1).optional(),
  windowMs: z.number().int().min(1).optional(),
  concurrentRequests: z.number().int().min(1).optional(),
  uploadBytesPerWindow: z.number().int().min(1).optional(),
  uploadWindowMs: z.number().int().min(1).optional(),
})

function seededOf(it: Item): SeededItem {
  return { id: it.restId, immutableId: it.immutableId, changeKey: it.changeKey, containerId: it.containerId }
}

export class EmulatorControl {
  constructor(
    private readonly core: Core,
    private readonly initialMailboxes: string[],
  ) {}

  private mb(upn: string): Mailbox {
    const mb = this.core.store.findMailbox(upn)
    if (!mb) throw new EmulatorError('unknown-mailbox', `unknown mailbox '${upn}'`)
    return mb
  }

  addMailbox(upn: string, displayName?: string): { id: string; upn: string } {
    const parsed = z.string().regex(/^[^@\s]+@[^@\s]+$/).safeParse(upn)
    if (!parsed.success) throw new EmulatorError('invalid-seed', `invalid mailbox upn '${upn}'`)
    const mb = this.core.store.createMailbox(upn, displayName)
    return { id: mb.id, upn: mb.upn }
  }

  mailboxes(): Array<{ id: string; upn: string; displayName: string }> {
    return [...this.core.store.mailboxes.values()].map((m) => ({ id: m.id, upn: m.upn, displayName: m.displayName }))
  }

  /** Id of a container by id or well-known name (`inbox`, `sentitems`, `calendar`, `contacts`, `defaultList`). */
  containerId(upn: string, kind: ContainerKind, idOrName: string): string {
    const c = this.core.store.findContainer(this.mb(upn), kind, idOrName)
    if (!c) throw new EmulatorError('not-found', `no ${kind} '${idOrName}' in ${upn}`)
    return c.id
  }

  createContainer(upn: string, kind: ContainerKind, displayName: string, parentId?: string): string {
    const mb = this.mb(upn)
    const data = kind === 'calendar' ? { name: displayName, color: 'auto' } : { displayName }
    return this.core.store.createContainer(mb, kind, data, undefined, parentId).id
  }

  /**
   * Seeds items without throttling. Each item is validated with the resource schema; messages default to
   * `isDraft: false`. `container` is an id or well-known name (default: inbox / calendar / contacts / defaultList).
   */
  seed(upn: string, kind: ItemKind, items: Array<Record<string, unknown>>, container?: string): SeededItem[] {
    const mb = this.mb(upn)
    const defaults = { mailFolder: 'inbox', calendar: 'calendar', contactFolder: 'contacts', todoList: 'defaultlist' }
    const ck = CONTAINER_OF[kind]
    const c = this.core.store.findContainer(mb, ck, container ?? defaults[ck])
    if (!c) throw new EmulatorError('not-found', `no ${ck} '${container ?? ''}' in ${upn}`)
    const schema = itemSchemas[kind]
    const parsedAll = items.map((raw, i) => {
      const r = schema.safeParse(raw)
      if (!r.success) {
        const issue = r.error.issues[0]
        throw new EmulatorError('invalid-seed', `seed ${kind}[${i}]: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`)
      }
      return r.data as Record<string, unknown>
    })
    return parsedAll.map((body) => {
      const { singleValueExtendedProperties, linkedResources, multiValueExtendedProperties: _m, ...fields } = body as Record<string, unknown> & {
        singleValueExtendedProperties?: Array<{ id: string; value: string | null }>
        linkedResources?: Array<Record<string, string | null | undefined>>
      }
      if (kind === 'message' && fields['isDraft'] === undefined) fields['isDraft'] = false
      const it = this.core.store.createItem(mb, kind, c, {
        fields,
        ext: singleValueExtendedProperties,
        linkedResources: linkedResources?.map((l) => ({
          applicationName: l['applicationName'] ?? null,
          displayName: l['displayName'] ?? null,
          externalId: l['externalId'] ?? null,
          webUrl: l['webUrl'] ?? null,
        })),
      })
      return seededOf(it)
    })
  }

  private item(upn: string, id: string): { mb: Mailbox; it: Item } {
    const mb = this.mb(upn)
    const it = this.core.store.findItem(mb, id)
    if (!it) throw new EmulatorError('not-found', `no item '${id}' in ${upn}`)
    return { mb, it }
  }

  getItem(upn: string, id: string, opts?: { immutable?: boolean }): Record<string, unknown> {
    const { it } = this.item(upn, id)
    return renderItem(it, { immutable: opts?.immutable ?? false, expandExt: true, expandLinked: true })
  }

  updateItem(upn: string, id: string, fields: Record<string, unknown>): SeededItem {
    const { mb, it } = this.item(upn, id)
    const r = itemSchemas[it.kind].partial().safeParse(fields)
    if (!r.success) throw new EmulatorError('invalid-seed', `update ${id}: ${r.error.issues[0]?.message ?? 'invalid'}`)
    const { singleValueExtendedProperties, ...rest } = r.data as Record<string, unknown> & { singleValueExtendedProperties?: Array<{ id: string; value: string | null }> }
    this.core.store.updateItem(mb, it, { fields: rest, ext: singleValueExtendedProperties })
    return seededOf(it)
  }

  deleteItem(upn: string, id: string): void {
    const { mb, it } = this.item(upn, id)
    this.core.store.deleteItem(mb, it)
  }

  moveItem(upn: string, id: string, destination: string): SeededItem {
    const { mb, it } = this.item(upn, id)
    const dest = this.core.store.findContainer(mb, CONTAINER_OF[it.kind], destination)
    if (!dest) throw new EmulatorError('not-found', `no destination '${destination}' in ${upn}`)
    this.core.store.moveItem(mb, it, dest)
    return seededOf(it)
  }

  count(upn: string, kind: ItemKind, container?: string): number {
    const mb = this.mb(upn)
    if (container !== undefined) return this.core.store.findContainer(mb, CONTAINER_OF[kind], container)?.members.size ?? 0
    let n = 0
    for (const it of mb.items.values()) if (it.kind === kind) n++
    return n
  }

  // ---------- faults ----------

  setLatency(ms: number): void {
    this.core.faults.extraLatencyMs = Math.max(0, ms)
  }

  /** The next `count` Graph requests (optionally only for one mailbox) fail with `status`. */
  failNext(input: z.input<typeof faultSchema>): void {
    const f = faultSchema.parse(input)
    const mailboxId = f.mailbox === undefined ? undefined : this.mb(f.mailbox).id
    this.core.faults.forced.push({ status: f.status, remaining: f.count, retryAfterSeconds: f.retryAfterSeconds ?? (f.status === 504 ? undefined : 1), mailboxId })
  }

  /** Holds every admitted mailbox request in flight until `releaseRequests` (for concurrency tests). */
  holdRequests(): void {
    this.core.faults.closeGate()
  }

  releaseRequests(): void {
    this.core.faults.openGate()
  }

  expireDeltaTokens(): void {
    this.core.syncStates.clear()
  }

  expireAccessTokens(): void {
    this.core.auth.generation++
  }

  emptyPages(count: number): void {
    this.core.faults.emptyPages = Math.max(0, count)
  }

  setDuplicates(enabled: boolean): void {
    this.core.faults.duplicates = enabled
  }

  /** Processing delay: a change becomes visible to delta only after `calls` further delta rounds start. */
  setProcessingDelay(calls: number): void {
    this.core.lag.lag = Math.max(0, Math.floor(calls))
    this.core.lag.reset()
  }

  /** Random-order mode: the items of each delta page are shuffled. */
  setShuffle(enabled: boolean): void {
    this.core.faults.shuffle = enabled
  }

  setNotifications(input: z.input<typeof notificationFaultSchema>): void {
    const n = notificationFaultSchema.parse(input)
    this.core.faults.notificationMode = n.mode
    this.core.faults.notificationDelayMs = n.delayMs ?? 0
    this.core.faults.dropRemaining = n.dropCount
    this.core.faults.missedOnDrop = n.missedOnDrop ?? false
  }

  lifecycle(subscriptionId: string, event: LifecycleEvent): boolean {
    const s = this.core.subs.subs.get(subscriptionId)
    if (!s) throw new EmulatorError('not-found', `no subscription '${subscriptionId}'`)
    return this.core.subs.sendLifecycle(s, event)
  }

  setThrottle(input: z.input<typeof throttleSchema>): void {
    const t = throttleSchema.parse(input)
    const l = this.core.throttle.limits
    this.core.throttle.limits = {
      requestsPerWindow: t.requestsPerWindow ?? l.requestsPerWindow,
      windowMs: t.windowMs ?? l.windowMs,
      concurrentRequests: t.concurrentRequests ?? l.concurrentRequests,
      uploadBytesPerWindow: t.uploadBytesPerWindow ?? l.uploadBytesPerWindow,
      uploadWindowMs: t.uploadWindowMs ?? l.uploadWindowMs,
    }
    this.core.throttle.reset()
  }

  advanceClock(ms: number): void {
    this.core.clock.advance(ms)
  }

  // ---------- observation ----------

  stats(): {
    total: number
    mailboxes: Record<string, { requests: number; throttled: number; byStatus: Record<string, number>; maxInFlight: number; inFlight: number }>
  } {
    const mailboxes: Record<string, { requests: number; throttled: number; byStatus: Record<string, number>; maxInFlight: number; inFlight: number }> = {}
    for (const mb of this.core.store.mailboxes.values()) {
      const s = this.core.stats.byMailbox.get(mb.upn)
      const inFlight = this.core.throttle.inFlightForMailbox(mb.id)
      mailboxes[mb.upn] = { requests: 0, throttled: 0, byStatus: {}, maxInFlight: 0, ...s, inFlight }
    }
    return { total: this.core.stats.total, mailboxes }
  }

  requestLog(): RequestLogEntry[] {
    return this.core.stats.entries()
  }

  deliveries(): typeof this.core.subs.deliveries {
    return [...this.core.subs.deliveries]
  }

  subscriptions(): Array<Record<string, unknown>> {
    return [...this.core.subs.subs.values()].map((s) => this.core.subs.toJson(s))
  }

  /** Clears all data, faults, counters, tokens' sync states and subscriptions; re-creates the initial mailboxes. */
  reset(): void {
    this.core.store.clear()
    this.core.faults.reset()
    this.core.stats.reset()
    this.core.syncStates.clear()
    this.core.subs.clear()
    this.core.throttle.reset()
    this.core.sendLimits.reset()
    this.core.lag.lag = 0
    this.core.lag.reset()
    for (const upn of this.initialMailboxes) this.core.store.createMailbox(upn)
  }
}

export function controlErrorStatus(err: unknown): GraphHttpError {
  if (err instanceof GraphHttpError) return err
  if (err instanceof EmulatorError) {
    const status = err.code === 'unknown-mailbox' || err.code === 'not-found' ? 404 : 400
    return new GraphHttpError(status, err.code, err.message)
  }
  if (err instanceof z.ZodError) {
    const i = err.issues[0]
    return new GraphHttpError(400, 'invalid-request', `${i?.path.join('.') ?? ''}: ${i?.message ?? 'invalid'}`)
  }
  return new GraphHttpError(500, 'internal', err instanceof Error ? err.message : String(err))
}
