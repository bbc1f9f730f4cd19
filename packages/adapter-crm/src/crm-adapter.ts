import { randomUUID } from 'node:crypto'
import {
  asNativeId,
  asConcordId,
  asVersion,
  silentLogger,
  SyncError,
  type Fields,
  type Logger,
  type NativeId,
  type PullOptions,
  type PullPage,
  type PushApplied,
  type PushOp,
  type PushOptions,
  type PushRejected,
  type PushResult,
  type Regarding,
  type RemoteChange,
  type ReplicaAdapter,
  type ReplicaId,
  type Cursor,
} from '@concord/engine'
import { z } from 'zod'
import { buildBatch, parseBatchResponse, type BatchRequest, type BatchResponse } from './batch.js'
import { decodeCursor, encodeCursor, freshCursor, type CursorState } from './cursor.js'
import { classifyFailure, isDuplicateRecord, parseErrorBody } from './errors.js'
import type { CorrelationIndex, CorrelationMethod, IncomingEmail, PendingEmail } from './correlation.js'
import { parseJson, WebApiClient, type ApiResult } from './http.js'
import {
  fieldsToPayload,
  LINK_COLUMN,
  PARTY,
  partiesToWire,
  PartyRowSchema,
  RowSchema,
  rowToFields,
  selectColumns,
  TABLES,
  type PartyRow,
  type PartyWrite,
  type Row,
} from './mapping.js'
import { FieldSecurityReader } from './field-security.js'
import { buildOwnerMasks, PrivilegesResponseSchema, type OwnerMasks, type RecordAccess } from './masks.js'
import { CrmKinds, parseCrmAdapterOptions, type CrmAdapterDeps, type CrmAdapterOptions, type CrmAdapterOptionsInput, type CrmKind } from './options.js'

const MAX_PAGE = 5000
const ANNOTATIONS = 'odata.include-annotations="*"'

const PageSchema = z.object({
  value: z.array(z.record(z.string(), z.unknown())),
  '@odata.nextLink': z.string().min(1).optional(),
  '@odata.deltaLink': z.string().min(1).optional(),
}).loose()

const DeletedSchema = z.object({ '@odata.context': z.string().endsWith('$deletedEntity'), id: z.string().min(1), reason: z.string().optional() }).loose()
const WhoAmISchema = z.object({ UserId: z.string().min(1) }).loose()
const OwnerSchema = z.object({ _ownerid_value: z.string().nullable().optional() }).loose()

const NATIVE_ID = /^(contacts|appointments|tasks|emails)\(([0-9a-fA-F-]{36})\)$/
const KIND_BY_SET: Record<string, CrmKind> = { contacts: 'contact', appointments: 'appointment', tasks: 'task', emails: 'email' }

/** `contacts(<guid>)`: the native id names the table, so `confirmMissing` needs nothing else. */
export function nativeIdOf(kind: CrmKind, id: string): NativeId {
  return asNativeId(`${TABLES[kind].entitySet}(${id.toLowerCase()})`)
}

export function parseNativeId(nativeId: NativeId | string): { kind: CrmKind; id: string } {
  const m = NATIVE_ID.exec(String(nativeId))
  if (!m) throw new SyncError('Validation', `Not a CRM native id: '${String(nativeId)}' (expected e.g. contacts(<guid>))`)
  return { kind: KIND_BY_SET[m[1] as string] as CrmKind, id: (m[2] as string).toLowerCase() }
}

/** OData string literal inside a key or `$filter`: quotes doubled, then URL-encoded. */
export function odataString(value: string): string {
  return encodeURIComponent(`'${value.replace(/'/g, "''")}'`)
}

/** CRM metadata of a record for the engine's sync filters (`CrmRecordMeta` in the engine merge). */
export interface CrmRecordMeta {
  ownerId?: string | undefined
  /** systemuserids among the appointment's organizer / required / optional attendees. */
  attendeeIds?: readonly string[] | undefined
  /** `active` / `inactive` (contact); `open` / `completed` / `canceled` / `scheduled` (activities). */
  state?: string | undefined
}

const ACTIVITY_STATES: Record<number, string> = { 0: 'open', 1: 'completed', 2: 'canceled', 3: 'scheduled' }
const META_CACHE_LIMIT = 100_000

export function recordMetaOf(kind: CrmKind, row: Row, parties: readonly PartyRow[]): CrmRecordMeta {
  const meta: CrmRecordMeta = {}
  if (row._ownerid_value) meta.ownerId = row._ownerid_value.toLowerCase()
  if (typeof row.statecode === 'number') meta.state = kind === 'contact' ? (row.statecode === 0 ? 'active' : 'inactive') : ACTIVITY_STATES[row.statecode]
  if (kind === 'appointment') {
    const masks: number[] = [PARTY.organizer, PARTY.required, PARTY.optional]
    meta.attendeeIds = [
      ...new Set(
        parties
          .filter((p) => masks.includes(p.participationtypemask) && p._partyid_value && p['_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname'] === 'systemuser')
          .map((p) => String(p._partyid_value).toLowerCase()),
      ),
    ]
  }
  return meta
}

/** What correlation looks at for a push op: a new e-mail without a regarding record and with a sender; else null. */
function correlationInputOf(op: PushOp): IncomingEmail | null {
  if (op.type !== 'create' || op.kind !== 'email' || (op.fields.regarding !== undefined && op.fields.regarding !== null)) return null
  const f = op.fields as { subject?: unknown; from?: { address?: unknown } | null; to?: Array<{ address?: unknown }> | null; cc?: Array<{ address?: unknown }> | null; inReplyTo?: unknown; conversationId?: unknown }
  const from = typeof f.from?.address === 'string' ? f.from.address : undefined
  if (from === undefined) return null
  const list = (v: Array<{ address?: unknown }> | null | undefined) => (v ?? []).flatMap((a) => (typeof a.address === 'string' ? [a.address] : []))
  return {
    subject: typeof f.subject === 'string' ? f.subject : '',
    from,
    to: list(f.to),
    cc: list(f.cc),
    inReplyTo: typeof f.inReplyTo === 'string' ? f.inReplyTo : null,
    conversationId: typeof f.conversationId === 'string' ? f.conversationId : null,
  }
}

/** A create correlated to e-mail `activityId`: its regarding copied, the method and links recorded. */
function correlatedTo(op: Extract<PushOp, { type: 'create' }>, method: CorrelationMethod, code: number, activityId: string | undefined, regarding: Regarding | null | undefined): { op: PushOp; extra: Record<string, unknown> } {
  const extra: Record<string, unknown> = { correlationmethod: code }
  if (activityId === undefined) return { op, extra }
  extra['correlatedactivityid_email@odata.bind'] = `/emails(${activityId})`
  if (method === 'InReplyTo') extra['parentactivityid_email@odata.bind'] = `/emails(${activityId})`
  return { op: regarding ? { ...op, fields: { ...op.fields, regarding } } : op, extra }
}

interface PreparedOp {
  op: PushOp
  request: BatchRequest
}

/**
 * `ReplicaAdapter` for one Dataverse scope as seen by one mailbox owner (impersonated on every
 * request). Pulls with change tracking per table, pushes through `$batch` change sets with
 * If-Match / If-None-Match guards, reports the owner's security masks.
 */
export class CrmAdapter implements ReplicaAdapter {
  readonly replicaId: ReplicaId
  readonly options: CrmAdapterOptions
  readonly http: WebApiClient
  /** The application user itself (not impersonated): reads column-security configuration a basic user cannot read. */
  readonly appHttp: WebApiClient
  /** Per-user column permissions (cached for `fieldSecurityCacheMs`). */
  readonly fieldSecurity: FieldSecurityReader
  private readonly logger: Logger
  private userId: string | null = null
  private masks: OwnerMasks | null = null
  private masksAt = -Infinity
  private readonly now: () => number
  private readonly meta = new Map<NativeId, CrmRecordMeta>()

  constructor(options: CrmAdapterOptionsInput, deps: CrmAdapterDeps) {
    this.options = parseCrmAdapterOptions(options)
    this.replicaId = deps.replicaId
    this.logger = deps.logger ?? silentLogger
    this.now = deps.now ?? Date.now
    const fetchFn = deps.fetch ?? globalThis.fetch.bind(globalThis)
    this.http = new WebApiClient(this.options, fetchFn, this.logger)
    this.appHttp = new WebApiClient({ ...this.options, impersonate: undefined }, fetchFn, this.logger)
    this.fieldSecurity = new FieldSecurityReader(this.appHttp, {
      tables: CrmKinds.map((k) => TABLES[k].logicalName),
      ttlMs: this.options.fieldSecurityCacheMs,
      now: deps.now,
    })
  }

  // ---------------------------------------------------------------- identity and masks

  /** systemuserid of the impersonated mailbox owner (WhoAmI as that user). */
  async ownerId(signal?: AbortSignal): Promise<string> {
    if (this.userId) return this.userId
    const who = this.options.impersonate
    if ('systemUserId' in who) this.userId = who.systemUserId.toLowerCase()
    else this.userId = (await this.http.getJson('WhoAmI', WhoAmISchema, {}, signal)).UserId.toLowerCase()
    return this.userId
  }

  /**
   * The masks of a mailbox owner (default: the impersonated one): sync/send privileges
   * (`RetrieveUserPrivileges`) and column security (field security profiles and permissions, read as
   * the application user and cached per user for `fieldSecurityCacheMs`; `refresh` bypasses that cache).
   */
  async getOwnerMasks(userId?: string, signal?: AbortSignal, options: { refresh?: boolean } = {}): Promise<OwnerMasks> {
    const id = (userId ?? (await this.ownerId(signal))).toLowerCase()
    const [privileges, fields] = await Promise.all([
      this.http.getJson(`systemusers(${id})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()`, PrivilegesResponseSchema, {}, signal),
      this.fieldSecurity.permissionsOf(id, { refresh: options.refresh, signal }),
    ])
    const masks = buildOwnerMasks(id, privileges, fields, this.options.contactAddresses)
    if (id === (await this.ownerId(signal))) {
      this.masks = masks
      this.masksAt = this.now()
    }
    return masks
  }

  private async currentMasks(refresh: boolean, signal?: AbortSignal): Promise<OwnerMasks> {
    if (!refresh && this.masks) return this.masks
    return this.getOwnerMasks(undefined, signal)
  }

  /** Whether the owner can read a record and whether they own it. */
  async checkRecordAccess(nativeId: NativeId | string, signal?: AbortSignal): Promise<RecordAccess> {
    const { kind, id } = parseNativeId(nativeId)
    const res = await this.http.raw('GET', `${TABLES[kind].entitySet}(${id})?$select=_ownerid_value`, { signal })
    if (res.status === 404 || res.status === 403) return { mayRead: false, owned: false, ownerId: null }
    if (res.status !== 200) throw this.http.failure(res)
    const owner = parseJson(res, OwnerSchema, 'owner')._ownerid_value ?? null
    return { mayRead: true, owned: owner !== null && owner.toLowerCase() === (await this.ownerId(signal)), ownerId: owner }
  }

  private readable(masks: OwnerMasks, kind: CrmKind): (column: string) => boolean {
    const cols = masks.columns[TABLES[kind].logicalName]
    return cols ? (c) => cols[c]?.read ?? true : () => true
  }

  private writable(masks: OwnerMasks, kind: CrmKind, create: boolean): (column: string) => boolean {
    const cols = masks.columns[TABLES[kind].logicalName]
    return cols ? (c) => (create ? cols[c]?.create : cols[c]?.update) ?? true : () => true
  }

  // ---------------------------------------------------------------- pull

  async pull(cursor: Cursor | null, options: PullOptions): Promise<PullPage> {
    const kinds = this.options.kinds
    let state: CursorState = cursor === null ? freshCursor(kinds) : decodeCursor(cursor, kinds)
    let roundStart = cursor === null
    if (state.pos >= state.kinds.length) {
      // Previous round complete: a new incremental round from each table's delta link.
      state = { ...state, full: false, pos: 0, links: Object.fromEntries(Object.entries(state.links).map(([k, l]) => [k, { delta: l.delta }])) }
      roundStart = true
    }
    const masks = await this.currentMasks(roundStart && this.now() - this.masksAt >= this.options.masksMaxAgeMs, options.signal)
    if (!masks.maySync) {
      throw new SyncError('Forbidden', `User ${masks.userId} has no security role with the sync privilege (${'prvSyncToOutlook'}); nothing is synced for this mailbox`)
    }
    const limit = Math.max(1, Math.min(MAX_PAGE, Math.floor(options.limit)))
    const changes: RemoteChange[] = []
    let hasMore: boolean
    for (;;) {
      const kind = state.kinds[state.pos] as CrmKind
      const link = state.links[kind] ?? {}
      const url = link.next ?? link.delta ?? `${TABLES[kind].entitySet}?$select=${selectColumns(kind, this.options.contactAddresses).join(',')}`
      const res = await this.http.request('GET', url, {
        headers: { Prefer: `odata.track-changes,odata.maxpagesize=${limit},${ANNOTATIONS}` },
        signal: options.signal,
      })
      const page = parseJson(res, PageSchema, `change-tracking page of ${TABLES[kind].entitySet}`)
      changes.push(...(await this.mapPage(kind, page.value, masks, options.signal)))
      const next = page['@odata.nextLink']
      const delta = page['@odata.deltaLink']
      if (next) {
        state = { ...state, links: { ...state.links, [kind]: { next } } }
      } else if (delta) {
        state = { ...state, pos: state.pos + 1, links: { ...state.links, [kind]: { delta } } }
      } else {
        throw new SyncError('InvalidRemoteData', `Change-tracking page of ${TABLES[kind].entitySet} has neither @odata.nextLink nor @odata.deltaLink`, { url: res.url.split('?')[0] })
      }
      hasMore = next !== undefined || state.pos < state.kinds.length
      if (changes.length > 0 || !hasMore) break
    }
    return { changes, nextCursor: encodeCursor(state), hasMore, fullListing: state.full }
  }

  private async mapPage(kind: CrmKind, value: ReadonlyArray<Record<string, unknown>>, masks: OwnerMasks, signal?: AbortSignal): Promise<RemoteChange[]> {
    const table = TABLES[kind]
    const rows: Array<{ index: number; row: Row }> = []
    const out: Array<RemoteChange | undefined> = []
    value.forEach((item, index) => {
      const ctx = typeof item['@odata.context'] === 'string' ? item['@odata.context'] : ''
      if (ctx.endsWith('$deletedEntity')) {
        const del = DeletedSchema.safeParse(item)
        if (!del.success) throw new SyncError('InvalidRemoteData', `Invalid $deletedEntity in ${table.entitySet}: ${del.error.issues[0]?.path.join('.')}`)
        out[index] = { type: 'delete', nativeId: nativeIdOf(kind, del.data.id), provenance: 'user-deleted' }
        return
      }
      const parsed = RowSchema.safeParse(item)
      if (!parsed.success) {
        const i = parsed.error.issues[0]
        throw new SyncError('InvalidRemoteData', `Invalid ${table.logicalName} row from Dataverse: ${i?.path.join('.')}: ${i?.message}`, {}, { cause: parsed.error })
      }
      if (typeof parsed.data[table.primaryKey] !== 'string') throw new SyncError('InvalidRemoteData', `${table.logicalName} row without ${table.primaryKey}`)
      rows.push({ index, row: parsed.data })
    })
    const parties = table.partyCollection ? await this.partiesOf(rows.map((r) => r.row[table.primaryKey] as string), signal) : new Map<string, PartyRow[]>()
    const ctx = { readable: this.readable(masks, kind), contactAddresses: this.options.contactAddresses }
    for (const { index, row } of rows) {
      const id = (row[table.primaryKey] as string).toLowerCase()
      const modified = row.modifiedon ? Date.parse(row.modifiedon) : NaN
      const nativeId = nativeIdOf(kind, id)
      if (this.meta.size >= META_CACHE_LIMIT) this.meta.clear()
      const meta = recordMetaOf(kind, row, parties.get(id) ?? [])
      this.meta.set(nativeId, meta)
      out[index] = {
        type: 'upsert',
        nativeId,
        kind,
        version: asVersion(row['@odata.etag']),
        fields: rowToFields(kind, row, parties.get(id) ?? [], ctx),
        concordId: row[LINK_COLUMN] ? asConcordId(row[LINK_COLUMN]) : undefined,
        modifiedAt: Number.isNaN(modified) ? undefined : modified,
        meta,
      }
    }
    return out.filter((c): c is RemoteChange => c !== undefined)
  }

  /** Activity parties of many activities (change tracking cannot `$expand`), 40 ids per query. */
  private async partiesOf(ids: readonly string[], signal?: AbortSignal): Promise<Map<string, PartyRow[]>> {
    const out = new Map<string, PartyRow[]>()
    for (let i = 0; i < ids.length; i += 40) {
      const chunk = ids.slice(i, i + 40)
      const filter = chunk.map((id) => `_activityid_value eq ${id}`).join(' or ')
      let url: string | undefined = `activityparties?$select=participationtypemask,addressused,_activityid_value,_partyid_value&$filter=${encodeURIComponent(filter)}`
      while (url) {
        const res = await this.http.request('GET', url, { headers: { Prefer: ANNOTATIONS }, signal })
        const page = parseJson(res, PageSchema, 'activity parties')
        for (const item of page.value) {
          const party = PartyRowSchema.safeParse(item)
          if (!party.success) throw new SyncError('InvalidRemoteData', `Invalid activity party: ${party.error.issues[0]?.path.join('.')}: ${party.error.issues[0]?.message}`)
          const key = party.data._activityid_value.toLowerCase()
          const list = out.get(key) ?? []
          list.push(party.data)
          out.set(key, list)
        }
        url = page['@odata.nextLink']
      }
    }
    return out
  }

  /**
   * Owner, attendees and state of a record, for the engine's sync filters (`owner: 'me'`,
   * `attendee: 'me'`, `state`). Served from what the last pulls saw; otherwise read (null = gone or unreadable).
   */
  async recordMeta(nativeId: NativeId | string, signal?: AbortSignal): Promise<CrmRecordMeta | null> {
    const cached = this.meta.get(nativeId as NativeId)
    if (cached) return cached
    const { kind, id } = parseNativeId(nativeId)
    const table = TABLES[kind]
    const res = await this.http.raw('GET', `${table.entitySet}(${id})?$select=${table.primaryKey},_ownerid_value,statecode`, { signal })
    if (res.status === 404 || res.status === 403) return null
    if (res.status !== 200) throw this.http.failure(res)
    const row = parseJson(res, RowSchema, `${kind} row`)
    const parties = kind === 'appointment' ? await this.partiesOf([id], signal) : new Map<string, PartyRow[]>()
    const meta = recordMetaOf(kind, row, parties.get(id) ?? [])
    this.meta.set(nativeId as NativeId, meta)
    return meta
  }

  // ---------------------------------------------------------------- push

  async push(ops: readonly PushOp[], options: PushOptions = {}): Promise<PushResult> {
    const applied: PushApplied[] = []
    const rejected: PushRejected[] = []
    if (ops.length === 0) return { applied, rejected }
    let masks: OwnerMasks
    try {
      masks = await this.currentMasks(false, options.signal)
    } catch (error) {
      if (!(error instanceof SyncError)) throw error
      return { applied, rejected: ops.map((op) => ({ opId: op.opId, error })) }
    }
    const { prefetchCorrelation, matchPending } = await import('./correlation.js')
    /** Ops answered (applied or rejected) so far: a failed batch rejects every op not among them. */
    const answered = new Set<string>()
    const reject = (opId: PushOp['opId'], error: SyncError): void => {
      answered.add(opId)
      rejected.push({ opId, error })
    }
    const rejectRest = (error: SyncError): PushResult => {
      for (const op of ops) if (!answered.has(op.opId)) reject(op.opId, error)
      return { applied, rejected }
    }
    /** Sends one $batch and settles its ops; false when the whole batch failed (the rest is rejected). */
    const flush = async (prepared: PreparedOp[], masks: OwnerMasks): Promise<boolean> => {
      if (prepared.length === 0) return true
      let responses: BatchResponse[]
      try {
        responses = await this.sendBatch(prepared.map((p) => p.request), options.signal)
      } catch (error) {
        if (!(error instanceof SyncError)) throw error
        // The whole batch failed (429, network): every op not yet acknowledged is rejected with it.
        rejectRest(error)
        return false
      }
      for (let k = 0; k < prepared.length; k++) {
        const { op } = prepared[k] as PreparedOp
        const res = responses[k]
        if (!res) {
          reject(op.opId, new SyncError('Transient', 'The $batch response ended before this operation'))
          continue
        }
        try {
          const result = await this.settle(op, res, masks, options.signal)
          if ('error' in result) reject(op.opId, result.error)
          else {
            answered.add(op.opId)
            applied.push(result)
          }
        } catch (error) {
          reject(op.opId, error instanceof SyncError ? error : new SyncError('Internal', (error as Error).message, {}, { cause: error }))
        }
      }
      return true
    }
    for (let i = 0; i < ops.length; i += this.options.batchSize) {
      const chunk = ops.slice(i, i + this.options.batchSize)
      let resolver: AddressResolver
      const inputs = chunk.map((op) => correlationInputOf(op))
      let index: CorrelationIndex
      try {
        resolver = await this.addressResolver(chunk, options.signal)
        // The chunk's correlation look-ups, batched (up to 20 values per query).
        index = await prefetchCorrelation(this, inputs.filter((x) => x !== null), {}, options.signal)
      } catch (error) {
        if (!(error instanceof SyncError)) throw error
        // Address resolution / correlation look-up failed (e.g. 429): nothing of this chunk or later was sent.
        return rejectRest(error)
      }
      const prepared: PreparedOp[] = []
      // E-mails of this chunk that later ones of the chunk may answer get their activityid assigned here,
      // so a reply in the same $batch (which runs in order) binds to them and inherits their regarding.
      const referenced = { messageIds: new Set<string>(), conversations: new Set<string>() }
      for (const input of inputs) {
        if (input?.inReplyTo) referenced.messageIds.add(input.inReplyTo.toLowerCase())
        if (input?.conversationId) referenced.conversations.add(input.conversationId.toLowerCase())
      }
      const pending: PendingEmail[] = []
      for (let k = 0; k < chunk.length; k++) {
        const op = chunk[k] as PushOp
        const input = inputs[k] ?? null
        try {
          const local = input !== null ? matchPending(input, pending, index, this.options.trackingTokenPrefix) : null
          const correlated = local !== null && op.type === 'create' ? correlatedTo(op, local.method, local.code, local.email.activityId, local.email.regarding) : await this.correlated(op, input, index, options.signal)
          let extra = correlated.extra
          let preassigned: PendingEmail | null = null
          if (correlated.op.type === 'create' && op.kind === 'email') {
            const f = correlated.op.fields as { internetMessageId?: unknown; conversationId?: unknown; regarding?: Regarding | null }
            const messageId = typeof f.internetMessageId === 'string' && f.internetMessageId !== '' ? f.internetMessageId.toLowerCase() : null
            const conversationId = typeof f.conversationId === 'string' && f.conversationId !== '' ? f.conversationId.toLowerCase() : null
            if ((messageId !== null && referenced.messageIds.has(messageId)) || (conversationId !== null && referenced.conversations.has(conversationId))) {
              preassigned = { messageId, conversationId, activityId: randomUUID(), regarding: f.regarding ?? null }
              extra = { ...extra, activityid: preassigned.activityId }
            }
          }
          prepared.push({ op, request: this.prepare(correlated.op, masks, resolver, extra) })
          if (preassigned !== null) pending.push(preassigned)
        } catch (error) {
          reject(op.opId, error instanceof SyncError ? error : new SyncError('Validation', (error as Error).message, {}, { cause: error }))
        }
      }
      if (!(await flush(prepared, masks))) return { applied, rejected }
    }
    return { applied, rejected }
  }

  private async sendBatch(requests: BatchRequest[], signal?: AbortSignal): Promise<BatchResponse[]> {
    const { contentType, body } = buildBatch(requests, this.http.apiBase)
    const res = await this.http.request('POST', '$batch', { headers: { 'Content-Type': contentType, Prefer: 'odata.continue-on-error' }, body, signal })
    return parseBatchResponse(res.headers.get('content-type') ?? '', res.text)
  }

  private linkKey(kind: CrmKind, concordId: string): string {
    return `${TABLES[kind].entitySet}(${LINK_COLUMN}=${odataString(concordId)})`
  }

  /** Builds the request of one op. Creates are upserts on the Concord link key with If-None-Match: *. */
  /**
   * A new e-mail without a regarding record is correlated first (§5.9: In-Reply-To, tracking token,
   * conversation, smart matching): it takes the regarding record of the tracked e-mail it answers, and
   * the method is recorded in `correlationmethod` (with `correlatedactivityid` / `parentactivityid`).
   */
  private async correlated(op: PushOp, input: IncomingEmail | null, index: CorrelationIndex | undefined, signal?: AbortSignal): Promise<{ op: PushOp; extra?: Record<string, unknown> | undefined }> {
    if (input === null || op.type !== 'create') return { op }
    const { correlateEmail } = await import('./correlation.js')
    const c = await correlateEmail(this, input, {}, signal, index)
    return correlatedTo(op, c.method, c.code, c.activityId === undefined ? undefined : parseNativeId(c.activityId).id, c.regarding)
  }

  prepare(op: PushOp, masks: OwnerMasks, resolve: AddressResolver, extraBody: Record<string, unknown> = {}): BatchRequest {
    const table = TABLES[op.kind as CrmKind]
    if (!table || !(CrmKinds as readonly string[]).includes(op.kind)) throw new SyncError('Validation', `The CRM adapter does not sync kind '${op.kind}'`)
    const kind = op.kind as CrmKind
    if (op.type === 'delete') {
      const url = op.nativeId ? `${table.entitySet}(${parseNativeId(op.nativeId).id})` : this.linkKey(kind, op.concordId)
      // A stale version → 412: the engine re-merges instead of deleting an edit it has not seen.
      return op.ifMatch === undefined ? { method: 'DELETE', url } : { method: 'DELETE', url, headers: { 'If-Match': op.ifMatch } }
    }
    const create = op.type === 'create'
    const payload = fieldsToPayload(kind, op.fields, { writable: this.writable(masks, kind, create), contactAddresses: this.options.contactAddresses, create })
    if (payload.dropped.length > 0) {
      this.logger.warn({ kind, opId: op.opId, fields: payload.dropped }, 'not writing secured fields the mailbox owner may not update')
    }
    const body: Record<string, unknown> = { ...payload.body, ...extraBody }
    if (payload.parties && table.partyCollection) body[table.partyCollection] = partiesToWire(resolve(payload.parties))
    const select = `$select=${selectColumns(kind, this.options.contactAddresses).join(',')}`
    if (create) {
      body[LINK_COLUMN] = op.concordId
      return { method: 'PATCH', url: `${this.linkKey(kind, op.concordId)}?${select}`, headers: { 'If-None-Match': '*', Prefer: `return=representation,${ANNOTATIONS}` }, body: JSON.stringify(body) }
    }
    const { id, kind: idKind } = parseNativeId(op.nativeId)
    if (idKind !== kind) throw new SyncError('Validation', `Native id ${op.nativeId} is not a ${kind}`)
    return {
      method: 'PATCH',
      url: `${table.entitySet}(${id})?${select}`,
      // If-Match '*' without a version: never let an update re-create a deleted row (upsert semantics).
      headers: { 'If-Match': op.ifMatch ?? '*', Prefer: `return=representation,${ANNOTATIONS}` },
      body: JSON.stringify(body),
    }
  }

  private async settle(op: PushOp, res: BatchResponse, masks: OwnerMasks, signal?: AbortSignal): Promise<PushApplied | { error: SyncError }> {
    const kind = op.kind as CrmKind
    if (res.status >= 200 && res.status < 300) {
      if (op.type === 'delete') return { opId: op.opId }
      return this.appliedFromRow(op, kind, parseJson({ text: res.body, url: '' }, RowSchema, `${kind} write response`), masks)
    }
    const failure = parseErrorBody(res.status, res.body)
    if (op.type === 'delete' && res.status === 404) return { opId: op.opId }
    if (op.type === 'create' && isDuplicateRecord(failure)) {
      // Replayed create: the row stamped with this Concord id exists; return it.
      const existing = await this.http.raw('GET', `${this.linkKey(kind, op.concordId)}?$select=${selectColumns(kind, this.options.contactAddresses).join(',')}`, { headers: { Prefer: ANNOTATIONS }, signal })
      if (existing.status === 200) return this.appliedFromRow(op, kind, parseJson(existing, RowSchema, `${kind} row`), masks)
      const messageId = kind === 'email' ? op.fields.internetMessageId : undefined
      if (existing.status === 404 && typeof messageId === 'string' && messageId !== '') {
        // The e-mail is already in the CRM (tracked by another recipient, or sent from the CRM): one
        // e-mail per Message-ID in the organization, so this mailbox's copy links to it.
        const same = await this.http.raw('GET', `emails(messageid=${encodeURIComponent(`'${messageId.replace(/'/g, "''")}'`)})?$select=${selectColumns(kind, this.options.contactAddresses).join(',')}`, { headers: { Prefer: ANNOTATIONS }, signal })
        if (same.status === 200) return this.appliedFromRow(op, kind, parseJson(same, RowSchema, 'email row'), masks)
      }
      if (existing.status === 404) return { error: new SyncError('Validation', `Create of ${kind} rejected: another record has the same key values (${failure.message})`, { status: 412 }) }
      return { error: this.http.failure(existing) }
    }
    // (a 412 is a PreconditionFailedError: a stale If-Match on an update or a delete)
    return { error: classifyFailure(failure, res.headers['retry-after'] ?? null, { url: op.type === 'create' ? undefined : op.nativeId === undefined ? undefined : String(op.nativeId) }) }
  }

  private appliedFromRow(op: PushOp, kind: CrmKind, row: Row, masks: OwnerMasks): PushApplied {
    const table = TABLES[kind]
    const id = row[table.primaryKey]
    if (typeof id !== 'string') throw new SyncError('InvalidRemoteData', `${kind} write response without ${table.primaryKey}`)
    const applied: PushApplied = { opId: op.opId, nativeId: nativeIdOf(kind, id), version: asVersion(row['@odata.etag']) }
    // Activities with parties: the representation has no parties, so fields are left to the next pull.
    if (!table.partyCollection) applied.fields = rowToFields(kind, row, [], { readable: this.readable(masks, kind), contactAddresses: this.options.contactAddresses })
    return applied
  }

  // ---------------------------------------------------------------- activity parties

  /**
   * Resolves the addresses of the parties in `ops` to CRM records (§5.8): the sender / organizer to
   * the first active match in the order systemuser, contact, account, lead; other parties to every match.
   * Unresolved addresses stay plain `addressused` parties.
   */
  async addressResolver(ops: readonly PushOp[], signal?: AbortSignal): Promise<AddressResolver> {
    const addresses = new Set<string>()
    for (const op of ops) {
      if (op.type === 'delete' || !TABLES[op.kind as CrmKind]?.partyCollection) continue
      for (const key of ['from', 'to', 'cc', 'bcc', 'organizer', 'requiredAttendees', 'optionalAttendees']) {
        const v = op.fields[key]
        const list = Array.isArray(v) ? v : v ? [v] : []
        for (const a of list) if (a && typeof (a as { address?: unknown }).address === 'string') addresses.add((a as { address: string }).address.toLowerCase())
      }
    }
    const matches = await this.resolveAddresses([...addresses], signal)
    return (parties) => {
      const out: PartyWrite[] = []
      for (const p of parties) {
        const found = matches.get(p.address.toLowerCase()) ?? []
        const single = p.mask === PARTY.from || p.mask === PARTY.organizer
        if (found.length === 0) out.push(p)
        else for (const m of single ? found.slice(0, 1) : found) out.push({ ...p, party: m })
      }
      return out
    }
  }

  /** address (lower-case) → matching records, in resolution order. */
  async resolveAddresses(addresses: readonly string[], signal?: AbortSignal): Promise<Map<string, Array<{ table: string; id: string }>>> {
    const out = new Map<string, Array<{ table: string; id: string }>>()
    const probes: Array<{ table: string; set: string; key: string; columns: string[]; active: string }> = [
      { table: 'systemuser', set: 'systemusers', key: 'systemuserid', columns: ['internalemailaddress'], active: 'isdisabled eq false' },
      { table: 'contact', set: 'contacts', key: 'contactid', columns: ['emailaddress1', 'emailaddress2', 'emailaddress3'], active: 'statecode eq 0' },
      { table: 'account', set: 'accounts', key: 'accountid', columns: ['emailaddress1'], active: 'statecode eq 0' },
      { table: 'lead', set: 'leads', key: 'leadid', columns: ['emailaddress1', 'emailaddress2', 'emailaddress3'], active: 'statecode eq 0' },
    ]
    for (let i = 0; i < addresses.length; i += 20) {
      const chunk = addresses.slice(i, i + 20)
      for (const probe of probes) {
        const ors = chunk.flatMap((a) => probe.columns.map((c) => `${c} eq '${a.replace(/'/g, "''")}'`)).join(' or ')
        const url = `${probe.set}?$select=${[probe.key, ...probe.columns].join(',')}&$filter=${encodeURIComponent(`(${ors}) and ${probe.active}`)}`
        const res = await this.http.raw('GET', url, { signal })
        if (res.status === 403) continue // no read privilege on that table: those addresses stay unresolved
        if (res.status !== 200) throw this.http.failure(res)
        const page = parseJson(res, PageSchema, `${probe.set} address lookup`)
        for (const row of page.value) {
          const id = row[probe.key]
          if (typeof id !== 'string') continue
          for (const c of probe.columns) {
            const a = row[c]
            if (typeof a !== 'string' || !chunk.includes(a.toLowerCase())) continue
            const list = out.get(a.toLowerCase()) ?? []
            if (!list.some((m) => m.id === id)) list.push({ table: probe.table, id })
            out.set(a.toLowerCase(), list)
          }
        }
      }
    }
    return out
  }

  // ---------------------------------------------------------------- confirmMissing

  /** GETs each record: 404 confirms it is gone. Anything else (403, 200) is not a delete. */
  async confirmMissing(nativeIds: readonly NativeId[], options: PushOptions = {}): Promise<NativeId[]> {
    const gone: NativeId[] = []
    for (const nativeId of nativeIds) {
      let parsed
      try {
        parsed = parseNativeId(nativeId)
      } catch {
        continue
      }
      const table = TABLES[parsed.kind]
      const res: ApiResult = await this.http.raw('GET', `${table.entitySet}(${parsed.id})?$select=${table.primaryKey}`, { signal: options.signal })
      if (res.status === 404) gone.push(nativeId)
      else if (res.status === 429 || res.status >= 500) throw this.http.failure(res)
    }
    return gone
  }

  async close(): Promise<void> {}

  /** Canonical fields of one record as the owner sees it (absent = secured / unknown). */
  async getRecord(nativeId: NativeId | string, signal?: AbortSignal): Promise<{ version: string; fields: Fields; concordId?: string | undefined } | null> {
    const { kind, id } = parseNativeId(nativeId)
    const table = TABLES[kind]
    const res = await this.http.raw('GET', `${table.entitySet}(${id})?$select=${selectColumns(kind, this.options.contactAddresses).join(',')}`, { headers: { Prefer: ANNOTATIONS }, signal })
    if (res.status === 404) return null
    if (res.status !== 200) throw this.http.failure(res)
    const row = parseJson(res, RowSchema, `${kind} row`)
    const masks = await this.currentMasks(false, signal)
    const parties = table.partyCollection ? await this.partiesOf([id], signal) : new Map<string, PartyRow[]>()
    return {
      version: row['@odata.etag'],
      fields: rowToFields(kind, row, parties.get(id) ?? [], { readable: this.readable(masks, kind), contactAddresses: this.options.contactAddresses }),
      concordId: row[LINK_COLUMN] ?? undefined,
    }
  }

  /** Sends one prepared write outside a batch (tracking operations). */
  async writeOne(request: BatchRequest, signal?: AbortSignal): Promise<ApiResult> {
    return this.http.raw(request.method, request.url, { headers: request.headers, body: request.body, signal })
  }

  /** @internal for tracking: masks and the settle logic. */
  async settleOne(op: PushOp, res: ApiResult, signal?: AbortSignal): Promise<PushApplied | { error: SyncError }> {
    const headers: Record<string, string> = {}
    res.headers.forEach((v, k) => (headers[k.toLowerCase()] = v))
    return this.settle(op, { status: res.status, headers, body: res.text }, await this.currentMasks(false, signal), signal)
  }

  /** @internal */
  async masksForWrite(signal?: AbortSignal): Promise<OwnerMasks> {
    return this.currentMasks(false, signal)
  }
}

export type AddressResolver = (parties: readonly PartyWrite[]) => PartyWrite[]
