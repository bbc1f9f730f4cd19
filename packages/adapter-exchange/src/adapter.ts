/**
 * `ReplicaAdapter` for one Exchange Online mailbox over Microsoft Graph: messages of the tracked
 * folders, events (windowed calendarView delta), contacts and To Do tasks, each through its own delta
 * stream. The cursor is the set of delta/next links, serialized opaquely.
 */
import { CursorExpiredError, SyncError, ThrottledError, asCursor, silentLogger } from '@concord/engine'
import type {
  ConcordId,
  Cursor,
  Fields,
  ItemKind,
  Logger,
  NativeId,
  PullOptions,
  PullPage,
  PushApplied,
  PushOp,
  PushRejected,
  PushResult,
  RemoteChange,
  RemoteUpsert,
  ReplicaAdapter,
  ReplicaId,
} from '@concord/engine'
import { z } from 'zod'
import { ClientCredentialsAuthProvider } from './auth.js'
import { classifyGraphFailure, invalidRemoteData } from './errors.js'
import { GraphHttp, type BatchRequest, type GraphResponse } from './graph-http.js'
import { GraphRemoved, fromGraph, regardingLinkedResource, stampLinkedResource, stampProperty, toGraph, type MappedRecord } from './mapping.js'
import { decodeNativeId, encodeNativeId } from './native-id.js'
import { CONCORD_APPLICATION, CONCORD_PROPERTY_ID, IN_REPLY_TO_PROPERTY_ID, REGARDING_APPLICATION, TRANSACTION_PREFIX, parseExchangeOptions } from './options.js'
import type { ExchangeAdapterDeps, ExchangeAdapterOptions, ResolvedExchangeOptions } from './options.js'
import {
  SubscriptionManager,
  type NotificationListener,
  type NotificationResult,
  type RestoreOptions,
  type RestoreReport,
  type SubscriptionOptions,
  type SubscriptionState,
} from './subscriptions.js'

const IMMUTABLE = 'IdType="ImmutableId"'
/** Graph requests one pull may make before it returns what it has (empty pages are legal). */
const MAX_PAGES_PER_PULL = 10
/** PR_MESSAGE_FLAGS = MSGFLAG_READ: a created message is not a draft. */
const MESSAGE_FLAGS = { id: 'Integer 0x0E07', value: '1' }

const StreamStateSchema = z.strictObject({ delta: z.string().optional(), next: z.string().optional() })
const CursorSchema = z.strictObject({
  v: z.literal(1),
  full: z.boolean(),
  pending: z.array(z.string()),
  streams: z.record(z.string(), StreamStateSchema),
  /** Graph ids of the series masters seen in the calendar window (their deletion shows only as removed occurrences). */
  series: z.array(z.string()).optional(),
})
type CursorState = z.infer<typeof CursorSchema>

const PageSchema = z.looseObject({
  value: z.array(z.unknown()),
  '@odata.nextLink': z.string().optional(),
  '@odata.deltaLink': z.string().optional(),
})
const ListSchema = z.looseObject({ value: z.array(z.unknown()) })
const IdOnly = z.looseObject({ id: z.string().min(1) })
/** calendarView answers occurrences and exceptions of a series; Concord syncs the series (its master). */
const SeriesMember = z.looseObject({ type: z.enum(['occurrence', 'exception']), seriesMasterId: z.string().min(1) })
/** Series masters remembered in the cursor at most. */
const MAX_TRACKED_SERIES = 5000
const FolderSchema = z.looseObject({ id: z.string().min(1), parentFolderId: z.string().nullable().optional() })

interface Stream {
  key: string
  kind: ItemKind
  /** Mail folder (well-known name or id) of a message stream. */
  folder?: string | undefined
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`
const enc = encodeURIComponent

export class ExchangeAdapter implements ReplicaAdapter {
  readonly replicaId: ReplicaId
  readonly options: ResolvedExchangeOptions
  readonly http: GraphHttp
  readonly auth: ClientCredentialsAuthProvider
  private readonly logger: Logger
  private readonly now: () => number
  private readonly user: string
  private folderIds: Map<string, string> | undefined
  private listId: string | undefined
  readonly subscriptions: SubscriptionManager
  /** `Prefer` of every request: immutable ids, and the To Do task zone when it is not UTC. */
  private readonly prefer: string
  /** Zone task dates are mapped into (undefined = as Graph answers, UTC). */
  private readonly taskZone: string | undefined

  constructor(options: ExchangeAdapterOptions, deps: ExchangeAdapterDeps = {}) {
    this.options = parseExchangeOptions(options)
    this.replicaId = this.options.replicaId as ReplicaId
    this.now = deps.now ?? Date.now
    this.logger = deps.logger ?? silentLogger
    const fetchImpl = deps.fetch ?? globalThis.fetch.bind(globalThis)
    const o = this.options
    this.auth = new ClientCredentialsAuthProvider({
      tokenUrl: o.tokenUrl ?? `https://login.microsoftonline.com/${enc(o.tenantId)}/oauth2/v2.0/token`,
      clientId: o.clientId,
      clientSecret: o.clientSecret,
      scope: o.scope,
      fetch: fetchImpl,
      now: this.now,
    })
    this.http = new GraphHttp(o.graphBaseUrl, this.auth, fetchImpl, this.now)
    this.user = `/users/${enc(o.mailbox)}`
    this.taskZone = o.taskTimeZone === 'UTC' ? undefined : o.taskTimeZone
    this.prefer = this.taskZone === undefined ? IMMUTABLE : `${IMMUTABLE}, outlook.timezone="${this.taskZone}"`
    this.subscriptions = new SubscriptionManager(this.http, this.user, () => this.listIdOrResolve(), this.options.kinds, this.options.mailFolders, this.now, this.logger)
  }

  // ---------- notifications (see subscriptions.ts) ----------

  createSubscriptions(notificationUrl: string, clientState: string, options?: SubscriptionOptions): Promise<void> {
    return this.subscriptions.create(notificationUrl, clientState, options)
  }
  renewSubscriptions(now?: number): Promise<number> {
    return this.subscriptions.renew(now ?? this.now())
  }
  /** The subscriptions' persistable state (no secret); see `SubscriptionManager.snapshot`. */
  snapshotSubscriptions(): SubscriptionState {
    return this.subscriptions.snapshot()
  }
  /** Adopts, renews or re-creates the subscriptions of a snapshot; see `SubscriptionManager.restore`. */
  restoreSubscriptions(state: unknown, options: RestoreOptions): Promise<RestoreReport> {
    return this.subscriptions.restore(state, options)
  }
  handleNotification(body: unknown): Promise<NotificationResult> {
    return this.subscriptions.handle(body)
  }
  onNotification(listener: NotificationListener): () => void {
    return this.subscriptions.onNotification(listener)
  }

  // ---------- streams ----------

  private streams(): Stream[] {
    const out: Stream[] = []
    for (const kind of this.options.kinds) {
      if (kind === 'email') for (const folder of this.options.mailFolders) out.push({ key: `m:${folder}`, kind, folder })
      else out.push({ key: kind, kind })
    }
    return out
  }

  private async initialUrl(s: Stream): Promise<string> {
    const expandStamp = this.options.stampLookup === 'expand' ? `?$expand=${enc(`singleValueExtendedProperties($filter=id eq ${quote(CONCORD_PROPERTY_ID)})`)}` : ''
    switch (s.kind) {
      case 'email': {
        // Messages also read In-Reply-To (a MAPI property), which CRM correlation needs.
        const expand = this.options.stampLookup === 'expand' ? `?$expand=${enc(`singleValueExtendedProperties($filter=id eq ${quote(CONCORD_PROPERTY_ID)} or id eq ${quote(IN_REPLY_TO_PROPERTY_ID)})`)}` : ''
        return `${this.user}/mailFolders/${enc(s.folder!)}/messages/delta${expand}`
      }
      case 'contact':
        return `${this.user}/contacts/delta${expandStamp}`
      case 'task':
        return `${this.user}/todo/lists/${enc(await this.listIdOrResolve())}/tasks/delta${this.options.stampLookup === 'expand' ? '?$expand=linkedResources' : ''}`
      case 'appointment': {
        const day = 86_400_000
        const start = new Date(this.now() - this.options.calendarWindow.pastDays * day).toISOString()
        const end = new Date(this.now() + this.options.calendarWindow.futureDays * day).toISOString()
        return `${this.user}/calendarView/delta?startDateTime=${enc(start)}&endDateTime=${enc(end)}`
      }
    }
  }

  /** The To Do list tasks live in: configured, or the one Graph calls `defaultList`. */
  private async listIdOrResolve(): Promise<string> {
    if (this.options.todoListId) return this.options.todoListId
    if (this.listId) return this.listId
    let url: string | undefined = `${this.user}/todo/lists`
    for (let i = 0; i < 50 && url; i++) {
      const res = await this.http.ok('GET', url, { Prefer: this.prefer })
      const page = z.looseObject({ value: z.array(z.looseObject({ id: z.string(), wellknownListName: z.string().nullable().optional() })), '@odata.nextLink': z.string().optional() }).safeParse(res.body)
      if (!page.success) throw invalidRemoteData('todoTaskList collection', page.error, url)
      const found = page.data.value.find((l) => l.wellknownListName === 'defaultList')
      if (found) return (this.listId = found.id)
      url = page.data['@odata.nextLink']
    }
    throw new SyncError('NotFound', `Mailbox ${this.options.mailbox} has no default To Do list; set todoListId`)
  }

  /** Ids of the tracked mail folders plus Sent Items and Deleted Items (well-known name → id). */
  private async folders(): Promise<Map<string, string>> {
    if (this.folderIds) return this.folderIds
    const names = [...new Set([...this.options.mailFolders, 'sentitems', 'deleteditems'])]
    const res = await this.http.batch(
      names.map((n, i) => ({ id: String(i), method: 'GET' as const, url: `${this.user}/mailFolders/${enc(n)}?$select=id`, headers: { Prefer: this.prefer } })),
      this.options.batchSize,
    )
    const map = new Map<string, string>()
    names.forEach((n, i) => {
      const r = res.get(String(i))!
      if (r.status !== 200) throw classifyGraphFailure(r, { now: this.now() })
      const f = FolderSchema.safeParse(r.body)
      if (!f.success) throw invalidRemoteData('mailFolder', f.error, r.url)
      map.set(n, f.data.id)
    })
    this.folderIds = map
    return map
  }

  private async directionOf(parentFolderId: string | undefined): Promise<'incoming' | 'outgoing' | undefined> {
    if (parentFolderId === undefined) return undefined
    const folders = await this.folders()
    return parentFolderId === folders.get('sentitems') ? 'outgoing' : 'incoming'
  }

  private itemPath(nativeId: NativeId | string): string {
    const d = decodeNativeId(nativeId)
    const id = enc(d.graphId)
    switch (d.kind) {
      case 'email':
        return `${this.user}/messages/${id}`
      case 'appointment':
        return `${this.user}/events/${id}`
      case 'contact':
        return `${this.user}/contacts/${id}`
      case 'task':
        return `${this.user}/todo/lists/${enc(d.listId!)}/tasks/${id}`
    }
  }

  private async nativeIdOf(kind: ItemKind, graphId: string): Promise<NativeId> {
    return encodeNativeId(kind, graphId, kind === 'task' ? await this.listIdOrResolve() : undefined)
  }

  private toUpsert(kind: ItemKind, nativeId: NativeId, m: MappedRecord): RemoteUpsert {
    return { type: 'upsert', nativeId, kind, version: m.version, fields: m.fields, concordId: m.concordId, modifiedAt: m.modifiedAt }
  }

  // ---------- pull ----------

  private decodeCursor(cursor: Cursor): CursorState {
    try {
      const parsed = CursorSchema.safeParse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')))
      if (parsed.success) return parsed.data
    } catch {
      // fall through
    }
    throw new CursorExpiredError('The Exchange cursor cannot be read; a full resync is required')
  }

  async pull(cursor: Cursor | null, options: PullOptions): Promise<PullPage> {
    const streams = this.streams()
    const byKey = new Map(streams.map((s) => [s.key, s]))
    let state: CursorState = cursor === null ? { v: 1, full: true, pending: streams.map((s) => s.key), streams: {} } : this.decodeCursor(cursor)
    if (state.pending.length === 0) state = { ...state, full: false, pending: streams.map((s) => s.key) }
    state = { ...state, pending: state.pending.filter((k) => byKey.has(k)), streams: { ...state.streams } }
    const limit = Math.max(1, Math.floor(options.limit))
    const found: Array<{ stream: Stream; item: unknown; url: string }> = []
    for (let requests = 0; requests < MAX_PAGES_PER_PULL && state.pending.length > 0 && found.length < limit; requests++) {
      options.signal?.throwIfAborted()
      const key = state.pending[0]!
      const stream = byKey.get(key)!
      const s = state.streams[key] ?? {}
      const url = s.next ?? s.delta ?? (await this.initialUrl(stream))
      const isToken = s.next !== undefined || s.delta !== undefined
      const res = await this.http.send('GET', url, { Prefer: `${this.prefer}, odata.maxpagesize=${Math.max(1, limit - found.length)}` })
      // A 410/400 on a token link is an expired cursor. Restarting only the stream from its deltaLink would
      // not help: Exchange evicts the oldest generations first, and the deltaLink is older than the nextLink.
      if (res.status !== 200) throw classifyGraphFailure(res, { delta: isToken, now: this.now() })
      const page = PageSchema.safeParse(res.body)
      if (!page.success) throw invalidRemoteData('delta page', page.error, url)
      for (const item of page.data.value) found.push({ stream, item, url })
      const next = page.data['@odata.nextLink']
      const delta = page.data['@odata.deltaLink']
      if (next !== undefined) state.streams[key] = { delta: s.delta, next }
      else if (delta !== undefined) {
        state.streams[key] = { delta }
        state.pending.shift()
      } else throw new SyncError('InvalidRemoteData', 'A delta page carries neither @odata.nextLink nor @odata.deltaLink', { url })
    }
    const series = new Set(state.series ?? [])
    const changes = await this.toChanges(found, series)
    state.series = [...series].slice(-MAX_TRACKED_SERIES)
    if (state.series.length === 0) delete state.series
    return { changes, nextCursor: asCursor(Buffer.from(JSON.stringify(state)).toString('base64url')), hasMore: state.pending.length > 0, fullListing: state.full }
  }

  /**
   * Maps a pull's items; reads stamps the payload did not carry and verifies every removal.
   * Occurrences and exceptions of a recurring series stand for their series master, which is read
   * (once per pull) and synced instead; `series` (the masters the cursor knows) is updated.
   */
  private async toChanges(found: ReadonlyArray<{ stream: Stream; item: unknown; url: string }>, series: Set<string>): Promise<RemoteChange[]> {
    const out: Array<RemoteChange | { verify: NativeId; kind: ItemKind } | { master: string }> = []
    const needStamp: Array<{ index: number; nativeId: NativeId; kind: ItemKind }> = []
    const masters = new Map<string, number>()
    let appointmentRemovals = false
    for (const { stream, item, url } of found) {
      const removed = GraphRemoved.safeParse(item)
      if (removed.success) {
        if (stream.kind === 'appointment') appointmentRemovals = true
        out.push({ verify: await this.nativeIdOf(stream.kind, removed.data.id), kind: stream.kind })
        continue
      }
      if (stream.kind === 'appointment') {
        const member = SeriesMember.safeParse(item)
        if (member.success) {
          const id = member.data.seriesMasterId
          if (!masters.has(id)) {
            masters.set(id, out.length)
            out.push({ master: id })
          }
          continue
        }
      }
      const direction = stream.kind === 'email' ? (stream.folder?.toLowerCase() === 'sentitems' || stream.folder === (await this.folders()).get('sentitems') ? 'outgoing' : 'incoming') : undefined
      const m = fromGraph(stream.kind, item, { direction, url, taskTimeZone: this.taskZone })
      const nativeId = await this.nativeIdOf(stream.kind, m.graphId)
      const lookup = stream.kind === 'appointment' ? !m.stampKnown : this.options.stampLookup === 'get' && !m.stampKnown
      if (lookup) needStamp.push({ index: out.length, nativeId, kind: stream.kind })
      out.push(this.toUpsert(stream.kind, nativeId, m))
      if (stream.kind === 'appointment') series.delete(m.graphId) // no longer a series (or never was)
    }
    // A deleted series only shows as removed occurrences: check the masters the cursor knows.
    const check = appointmentRemovals ? [...series].filter((id) => !masters.has(id)) : []
    await this.readMasters(out, masters, check, series)
    await this.readStamps(out as RemoteChange[], needStamp)
    return this.verifyRemovals(out as Array<RemoteChange | { verify: NativeId; kind: ItemKind }>)
  }

  /** Reads series masters (full, with the stamp) in place of their occurrences, and checks known ones still exist. */
  private async readMasters(out: Array<RemoteChange | { verify: NativeId; kind: ItemKind } | { master: string }>, masters: ReadonlyMap<string, number>, check: readonly string[], series: Set<string>): Promise<void> {
    if (masters.size === 0 && check.length === 0) return
    const expand = `$expand=${enc(`singleValueExtendedProperties($filter=id eq ${quote(CONCORD_PROPERTY_ID)})`)}`
    const reads: BatchRequest[] = [
      ...[...masters.keys()].map((id, i) => ({ id: `m${i}`, method: 'GET' as const, url: `${this.user}/events/${enc(id)}?${expand}`, headers: { Prefer: this.prefer } })),
      ...check.map((id, i) => ({ id: `c${i}`, method: 'GET' as const, url: `${this.user}/events/${enc(id)}?$select=id`, headers: { Prefer: this.prefer } })),
    ]
    const res = await this.http.batch(reads, this.options.batchSize)
    let i = 0
    for (const [id, index] of masters) {
      const r = res.get(`m${i++}`)!
      const nativeId = await this.nativeIdOf('appointment', id)
      if (r.status === 404) {
        series.delete(id)
        out[index] = { type: 'delete', nativeId, provenance: 'user-deleted' }
        continue
      }
      if (r.status !== 200) throw classifyGraphFailure(r, { now: this.now() })
      const m = fromGraph('appointment', r.body, { url: r.url, taskTimeZone: this.taskZone })
      out[index] = this.toUpsert('appointment', nativeId, m)
      series.add(id)
    }
    for (const [j, id] of check.entries()) {
      const r = res.get(`c${j}`)!
      if (r.status === 404) {
        series.delete(id)
        out.push({ type: 'delete', nativeId: await this.nativeIdOf('appointment', id), provenance: 'user-deleted' })
      } else if (r.status !== 200) throw classifyGraphFailure(r, { now: this.now() })
    }
  }

  private stampUrl(nativeId: NativeId, kind: ItemKind): string {
    const path = this.itemPath(nativeId)
    if (kind === 'task') return `${path}?$select=id&$expand=linkedResources`
    return `${path}?$select=id&$expand=${enc(`singleValueExtendedProperties($filter=id eq ${quote(CONCORD_PROPERTY_ID)})`)}`
  }

  private async readStamps(out: RemoteChange[], need: ReadonlyArray<{ index: number; nativeId: NativeId; kind: ItemKind }>): Promise<void> {
    if (need.length === 0) return
    const unique = [...new Map(need.map((n) => [n.nativeId, n])).values()]
    const res = await this.http.batch(
      unique.map((n, i) => ({ id: String(i), method: 'GET' as const, url: this.stampUrl(n.nativeId, n.kind), headers: { Prefer: this.prefer } })),
      this.options.batchSize,
    )
    const byNative = new Map<NativeId, { concordId?: ConcordId | undefined; regarding?: unknown }>()
    unique.forEach((n, i) => {
      const r = res.get(String(i))!
      if (r.status === 404) return // gone since the page was read; the next round reports it
      if (r.status !== 200) throw classifyGraphFailure(r, { now: this.now() })
      const m = fromGraph(n.kind, r.body, { url: r.url, taskTimeZone: this.taskZone })
      const info: { concordId?: ConcordId | undefined; regarding?: unknown } = { concordId: m.concordId }
      if (n.kind === 'task' && 'regarding' in m.fields) info.regarding = m.fields['regarding']
      byNative.set(n.nativeId, info)
    })
    for (const n of need) {
      const change = out[n.index] as RemoteUpsert
      const info = byNative.get(n.nativeId)
      if (!info) continue
      if (info.concordId !== undefined) change.concordId = info.concordId
      if ('regarding' in info) change.fields = { ...change.fields, regarding: info.regarding }
    }
  }

  /**
   * A removal in one stream may be a move: with immutable ids the record keeps its id. GET it: 404 →
   * deleted; in Deleted Items → deleted by the user; in another tracked folder → nothing (that
   * stream reports it); elsewhere (an untracked folder, outside the calendar window) → left-filter.
   */
  private async verifyRemovals(out: ReadonlyArray<RemoteChange | { verify: NativeId; kind: ItemKind }>): Promise<RemoteChange[]> {
    const toCheck = [...new Set(out.flatMap((c) => ('verify' in c ? [c.verify] : [])))]
    const verdict = new Map<NativeId, RemoteChange | null>()
    if (toCheck.length > 0) {
      const res = await this.http.batch(
        toCheck.map((id, i) => {
          const kind = decodeNativeId(id).kind
          const select = kind === 'email' || kind === 'contact' ? 'id,parentFolderId' : kind === 'appointment' ? 'id,type' : 'id'
          return { id: String(i), method: 'GET' as const, url: `${this.itemPath(id)}?$select=${select}`, headers: { Prefer: this.prefer } }
        }),
        this.options.batchSize,
      )
      const folders = toCheck.some((id) => decodeNativeId(id).kind === 'email') ? await this.folders() : new Map<string, string>()
      const tracked = new Set(this.options.mailFolders.map((f) => folders.get(f) ?? f))
      toCheck.forEach((nativeId, i) => {
        const r = res.get(String(i))!
        const del = (provenance: 'user-deleted' | 'left-filter'): RemoteChange => ({ type: 'delete', nativeId, provenance })
        if (r.status === 404) return verdict.set(nativeId, del('user-deleted'))
        if (r.status !== 200) throw classifyGraphFailure(r, { now: this.now() })
        const f = FolderSchema.safeParse(r.body)
        if (!f.success) throw invalidRemoteData('item', f.error, r.url)
        const kind = decodeNativeId(nativeId).kind
        if (kind === 'email') {
          const parent = f.data.parentFolderId ?? ''
          if (tracked.has(parent)) verdict.set(nativeId, null)
          else verdict.set(nativeId, del(parent === folders.get('deleteditems') ? 'user-deleted' : 'left-filter'))
        } else if (kind === 'task') verdict.set(nativeId, null)
        // A series master is represented by its occurrences: its own id leaving the view is no removal.
        else if (kind === 'appointment' && (r.body as { type?: unknown } | null)?.type === 'seriesMaster') verdict.set(nativeId, null)
        else verdict.set(nativeId, del('left-filter'))
      })
    }
    const changes: RemoteChange[] = []
    for (const c of out) {
      if (!('verify' in c)) changes.push(c)
      else {
        const v = verdict.get(c.verify)
        if (v) changes.push(v)
      }
    }
    return changes
  }

  // ---------- push ----------

  private lookupUrl(kind: ItemKind, concordId: ConcordId, listId: string | undefined): string {
    if (kind === 'task') {
      return `${this.user}/todo/lists/${enc(listId!)}/tasks?$filter=${enc(`linkedResources/any(l: l/applicationName eq ${quote(CONCORD_APPLICATION)} and l/externalId eq ${quote(concordId)})`)}&$expand=linkedResources&$top=2`
    }
    const coll = kind === 'email' ? 'messages' : kind === 'appointment' ? 'events' : 'contacts'
    const filter = `singleValueExtendedProperties/Any(ep: ep/id eq ${quote(CONCORD_PROPERTY_ID)} and ep/value eq ${quote(concordId)})`
    return `${this.user}/${coll}?$filter=${enc(filter)}&$expand=${enc(`singleValueExtendedProperties($filter=id eq ${quote(CONCORD_PROPERTY_ID)})`)}&$top=2`
  }

  private currentUrl(nativeId: NativeId, kind: ItemKind): string {
    return kind === 'task' ? `${this.itemPath(nativeId)}?$expand=linkedResources` : this.itemPath(nativeId)
  }

  async push(ops: readonly PushOp[], options: { signal?: AbortSignal | undefined } = {}): Promise<PushResult> {
    const applied: PushApplied[] = []
    const rejected: PushRejected[] = []
    const reject = (opId: PushOp['opId'], error: SyncError) => rejected.push({ opId, error })
    const needsList = ops.some((o) => o.kind === 'task')
    const listId = needsList ? await this.listIdOrResolve() : undefined
    options.signal?.throwIfAborted()

    // Phase 1: read. Creates and id-less deletes look the record up by its stamp; updates read the current record.
    const reads: BatchRequest[] = []
    for (const [i, op] of ops.entries()) {
      if (op.type === 'create' || (op.type === 'delete' && op.nativeId === undefined)) reads.push({ id: `r${i}`, method: 'GET', url: this.lookupUrl(op.kind, op.concordId, listId), headers: { Prefer: this.prefer } })
      else if (op.type === 'update') reads.push({ id: `r${i}`, method: 'GET', url: this.currentUrl(op.nativeId, op.kind), headers: { Prefer: this.prefer } })
    }
    const readRes = reads.length > 0 ? await this.http.batch(reads, this.options.batchSize) : new Map<string, GraphResponse>()

    // Phase 2: write.
    const writes: BatchRequest[] = []
    const writeOps = new Map<string, { op: PushOp; current?: { raw: unknown; mapped: MappedRecord } | undefined }>()
    for (const [i, op] of ops.entries()) {
      try {
        const r = readRes.get(`r${i}`)
        if (op.type === 'create' || (op.type === 'delete' && op.nativeId === undefined)) {
          if (r!.status !== 200) throw classifyGraphFailure(r!, { now: this.now() })
          const list = ListSchema.safeParse(r!.body)
          if (!list.success) throw invalidRemoteData('lookup result', list.error, r!.url)
          const existing = list.data.value[0]
          if (op.type === 'create') {
            if (existing !== undefined) {
              applied.push(await this.appliedFrom(op.opId, op.kind, existing, r!.url))
              continue
            }
            writes.push({ id: `w${i}`, method: 'POST', url: await this.createUrl(op.kind, op.fields, listId), headers: { Prefer: this.prefer }, body: this.createBody(op.kind, op.concordId, op.fields) })
            writeOps.set(`w${i}`, { op })
          } else {
            if (existing === undefined) {
              applied.push({ opId: op.opId })
              continue
            }
            const id = IdOnly.parse(existing).id
            writes.push({ id: `w${i}`, method: 'DELETE', url: this.itemPath(await this.nativeIdOf(op.kind, id)), headers: { Prefer: this.prefer } })
            writeOps.set(`w${i}`, { op })
          }
        } else if (op.type === 'update') {
          if (r!.status !== 200) throw classifyGraphFailure(r!, { now: this.now() })
          const mapped = fromGraph(op.kind, r!.body, { url: r!.url, taskTimeZone: this.taskZone })
          const body: Record<string, unknown> = toGraph(op.kind, op.fields, mapped.fields)
          if (op.kind !== 'task') body['singleValueExtendedProperties'] = [stampProperty(op.concordId)]
          const headers: Record<string, string> = { Prefer: this.prefer }
          if (op.ifMatch !== undefined) headers['If-Match'] = op.ifMatch
          writes.push({ id: `w${i}`, method: 'PATCH', url: this.itemPath(op.nativeId), headers, body })
          writeOps.set(`w${i}`, { op, current: { raw: r!.body, mapped } })
        } else {
          const headers: Record<string, string> = { Prefer: this.prefer }
          if (op.ifMatch !== undefined) headers['If-Match'] = op.ifMatch // stale → 412: re-merged, not a lost edit
          writes.push({ id: `w${i}`, method: 'DELETE', url: this.itemPath(op.nativeId!), headers })
          writeOps.set(`w${i}`, { op })
        }
      } catch (error) {
        if (!(error instanceof SyncError)) throw error
        reject(op.opId, error)
      }
    }
    const writeRes = writes.length > 0 ? await this.http.batch(writes, this.options.batchSize) : new Map<string, GraphResponse>()

    // Phase 3: classify each answer; tasks get their linkedResources (stamp, regarding) maintained.
    for (const [id, { op, current }] of writeOps) {
      const r = writeRes.get(id)!
      try {
        if (op.type === 'delete') {
          if (r.status === 204 || r.status === 200 || r.status === 404) applied.push({ opId: op.opId })
          else throw classifyGraphFailure(r, { now: this.now() })
          continue
        }
        if (r.status !== 200 && r.status !== 201) throw classifyGraphFailure(r, { now: this.now() })
        if (op.type === 'update' && op.kind === 'task' && current) {
          const touched = await this.maintainTaskLinks(op.nativeId, op.concordId, op.fields, current.raw)
          if (touched) {
            const fresh = await this.http.ok('GET', this.itemPath(op.nativeId), { Prefer: this.prefer })
            applied.push(await this.appliedFrom(op.opId, op.kind, fresh.body, fresh.url))
            continue
          }
        }
        applied.push(await this.appliedFrom(op.opId, op.kind, r.body, r.url))
      } catch (error) {
        if (!(error instanceof SyncError)) throw error
        reject(op.opId, error)
      }
    }
    return { applied, rejected }
  }

  private async appliedFrom(opId: PushOp['opId'], kind: ItemKind, raw: unknown, url: string): Promise<PushApplied> {
    const m0 = fromGraph(kind, raw, { url, taskTimeZone: this.taskZone })
    const direction = kind === 'email' ? await this.directionOf(m0.parentFolderId) : undefined
    const m = direction ? fromGraph(kind, raw, { url, direction, taskTimeZone: this.taskZone }) : m0
    return { opId, nativeId: await this.nativeIdOf(kind, m.graphId), version: m.version, fields: m.fields }
  }

  private async createUrl(kind: ItemKind, fields: Fields, listId: string | undefined): Promise<string> {
    switch (kind) {
      case 'email': {
        const tracked = this.options.mailFolders
        const wanted = fields['direction'] === 'outgoing' ? 'sentitems' : 'inbox'
        return `${this.user}/mailFolders/${enc(tracked.includes(wanted) ? wanted : tracked[0]!)}/messages`
      }
      case 'appointment':
        return `${this.user}/calendar/events`
      case 'contact':
        return `${this.user}/contacts`
      case 'task':
        return `${this.user}/todo/lists/${enc(listId!)}/tasks`
    }
  }

  private createBody(kind: ItemKind, concordId: ConcordId, fields: Fields): Record<string, unknown> {
    const body = toGraph(kind, fields)
    switch (kind) {
      case 'email':
        body['singleValueExtendedProperties'] = [stampProperty(concordId), MESSAGE_FLAGS, ...(typeof fields['inReplyTo'] === 'string' && fields['inReplyTo'] !== '' ? [{ id: IN_REPLY_TO_PROPERTY_ID, value: fields['inReplyTo'] }] : [])]
        break
      case 'appointment':
        body['transactionId'] = `${TRANSACTION_PREFIX}${concordId}`
        body['singleValueExtendedProperties'] = [stampProperty(concordId)]
        break
      case 'contact':
        body['singleValueExtendedProperties'] = [stampProperty(concordId)]
        break
      case 'task': {
        const reg = regardingLinkedResource(fields['regarding'])
        body['linkedResources'] = reg ? [stampLinkedResource(concordId), reg] : [stampLinkedResource(concordId)]
        break
      }
    }
    return body
  }

  /** Adds the Concord link and writes the regarding linkedResource of a task. True when anything was written. */
  private async maintainTaskLinks(nativeId: NativeId, concordId: ConcordId, fields: Fields, currentRaw: unknown): Promise<boolean> {
    const links = z.looseObject({ linkedResources: z.array(z.looseObject({ id: z.string(), applicationName: z.string().nullable().optional(), externalId: z.string().nullable().optional() })).nullable().optional() }).safeParse(currentRaw)
    const list = links.success ? (links.data.linkedResources ?? []) : []
    const base = `${this.itemPath(nativeId)}/linkedResources`
    let touched = false
    if (!list.some((l) => l.applicationName === CONCORD_APPLICATION && l.externalId === concordId)) {
      await this.http.ok('POST', base, { Prefer: this.prefer }, stampLinkedResource(concordId))
      touched = true
    }
    if ('regarding' in fields) {
      const existing = list.find((l) => l.applicationName === REGARDING_APPLICATION)
      const wanted = regardingLinkedResource(fields['regarding'])
      if (wanted && existing) await this.http.ok('PATCH', `${base}/${enc(existing.id)}`, { Prefer: this.prefer }, wanted)
      else if (wanted) await this.http.ok('POST', base, { Prefer: this.prefer }, wanted)
      else if (existing) await this.http.ok('DELETE', `${base}/${enc(existing.id)}`, { Prefer: this.prefer })
      touched = touched || wanted !== null || existing !== undefined
    }
    return touched
  }

  // ---------- confirmMissing ----------

  async confirmMissing(nativeIds: readonly NativeId[], options: { signal?: AbortSignal | undefined } = {}): Promise<NativeId[]> {
    options.signal?.throwIfAborted()
    const valid = nativeIds.filter((id) => {
      try {
        decodeNativeId(id)
        return true
      } catch {
        return false
      }
    })
    if (valid.length === 0) return []
    const res = await this.http.batch(
      valid.map((id, i) => ({ id: String(i), method: 'GET' as const, url: `${this.itemPath(id)}?$select=id`, headers: { Prefer: this.prefer } })),
      this.options.batchSize,
    )
    const gone: NativeId[] = []
    let throttled: ThrottledError | undefined
    valid.forEach((id, i) => {
      const r = res.get(String(i))!
      if (r.status === 404) gone.push(id)
      else if (r.status !== 200) {
        const e = classifyGraphFailure(r, { now: this.now() })
        if (e instanceof ThrottledError) throttled = throttled && throttled.retryAfterMs >= e.retryAfterMs ? throttled : e
        else throw e
      }
    })
    if (throttled) throw throttled
    return gone
  }

  async close(): Promise<void> {
    await this.subscriptions.close()
  }
}
