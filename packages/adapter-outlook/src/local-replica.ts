import type { AbstractBatchOperation, AbstractLevel } from 'abstract-level'
import {
  type ConcordId,
  type Cursor,
  CursorExpiredError,
  type DeleteProvenance,
  type Fields,
  type ItemKind,
  type NativeId,
  type PullOptions,
  type PullPage,
  type PushApplied,
  type PushOp,
  type PushRejected,
  type PushResult,
  PreconditionFailedError,
  type RecordMeta,
  type RemoteChange,
  type ReplicaAdapter,
  type ReplicaId,
  SyncError,
  type Version,
  asCursor,
  asNativeId,
  asReplicaId,
  asVersion,
  parseFields,
} from '@concord/engine'
import { z } from 'zod'

/** The database under a local replica: any abstract-level database with string keys and values. */
export type LocalDatabase = AbstractLevel<string | Uint8Array | Buffer, string, string>
type BatchOp = AbstractBatchOperation<LocalDatabase, string, string>

/** One Outlook item as the client stores it (canonical fields of the engine model). */
export interface LocalItem {
  nativeId: NativeId
  kind: ItemKind
  fields: Fields
  version: Version
  /** Stamped by the server when the item came from, or was linked to, the CRM. */
  concordId?: ConcordId | undefined
  meta?: RecordMeta | undefined
  modifiedAt: number
  deleted: boolean
  provenance?: DeleteProvenance | undefined
}

/** A change-log entry: who wrote the item at this sequence number. */
interface LogRecord {
  n: string
  /** `user` = an edit in Outlook (the offline queue until the server pulls it); `server` = applied from a push. */
  by: 'user' | 'server'
}

interface ReplicaState {
  /** Random per database: a cursor from another database (a reinstalled client) is expired. */
  instance: string
  epoch: number
  seq: number
  nextId: number
  version: number
  /** Highest log sequence the server has confirmed by pulling from a cursor at or after it. */
  acked: number
}

const CursorSchema = z.union([
  z.strictObject({ i: z.string(), e: z.number().int(), s: z.number().int().nonnegative() }),
  z.strictObject({ i: z.string(), e: z.number().int(), full: z.literal(true), at: z.number().int().nonnegative(), after: z.string() }),
])
type CursorState = z.infer<typeof CursorSchema>

const STATE_KEY = 'm!state'
const itemKey = (nativeId: string) => `i!${nativeId}`
const logKey = (seq: number) => `l!${String(seq).padStart(16, '0')}`
const concordKey = (concordId: string) => `c!${concordId}`
const opKey = (opId: string) => `o!${opId}`

export interface OutlookLocalReplicaOptions {
  /** The replica id reported to the engine. Default `outlook-local`. */
  replicaId?: string | undefined
  /** Clock for `modifiedAt` (ms since epoch). Default `Date.now`. */
  now?: (() => number) | undefined
}

export interface CreateItemOptions {
  /** Tracked to the CRM (Track in Outlook): only tracked items are brought to the CRM. */
  tracked?: boolean | undefined
}

/**
 * The Outlook client's replica: the user's synced items, an append-only change log (the pull
 * cursor is a log sequence) and the offline queue (user edits the server has not pulled yet), in
 * one abstract-level database — classic-level in Node, browser-level in the add-in, memory-level
 * in tests. It is the `mailbox` side of the user's sync pair, served to the server over the socket.
 *
 * One process writes a database at a time; all writes of this object are serialised and each is
 * one atomic batch, so a crash never leaves an item without its log entry.
 */
export class OutlookLocalReplica implements ReplicaAdapter {
  readonly replicaId: ReplicaId
  private readonly now: () => number
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(
    readonly db: LocalDatabase,
    private state: ReplicaState,
    options: OutlookLocalReplicaOptions,
  ) {
    this.replicaId = asReplicaId(options.replicaId ?? 'outlook-local')
    this.now = options.now ?? Date.now
  }

  /** Opens (and initialises, on first use) a replica on `db`. */
  static async open(db: LocalDatabase, options: OutlookLocalReplicaOptions = {}): Promise<OutlookLocalReplica> {
    if (db.status === 'opening' || db.status === 'closed') await db.open()
    const stored = await db.get(STATE_KEY)
    let state: ReplicaState
    if (stored === undefined) {
      state = { instance: globalThis.crypto.randomUUID(), epoch: 1, seq: 0, nextId: 1, version: 1, acked: 0 }
      await db.put(STATE_KEY, JSON.stringify(state))
    } else {
      state = JSON.parse(stored) as ReplicaState
    }
    return new OutlookLocalReplica(db, state, options)
  }

  /** Runs `fn` after every earlier write (one writer at a time). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => undefined)
    return run
  }

  // -------------------------------------------------------------------------------------------
  // Local edits (the Outlook integration calls these; they form the offline queue)
  // -------------------------------------------------------------------------------------------

  /** The user created an item in Outlook. Fields are validated against the engine model. */
  async createItem(kind: ItemKind, fields: Fields, options: CreateItemOptions = {}): Promise<LocalItem> {
    const valid = parseFields(kind, fields) as Fields
    return this.exclusive(async () => {
      const nativeId = asNativeId(`ol-${this.state.nextId}`)
      const next = { ...this.state, nextId: this.state.nextId + 1 }
      const item: LocalItem = { nativeId, kind, fields: valid, version: this.versionOf(next), modifiedAt: this.now(), deleted: false, meta: options.tracked === undefined ? undefined : { tracked: options.tracked } }
      await this.write(next, [item], 'user')
      return item
    })
  }

  /** The user edited an item in Outlook. `patch` replaces the named fields. */
  updateItem(nativeId: NativeId | string, patch: Fields): Promise<LocalItem> {
    return this.exclusive(async () => {
      const item = await this.live(nativeId)
      const fields = parseFields(item.kind, { ...item.fields, ...patch }) as Fields
      const next = { ...this.state }
      const updated: LocalItem = { ...item, fields, version: this.versionOf(next), modifiedAt: this.now() }
      await this.write(next, [updated], 'user')
      return updated
    })
  }

  /** Marks an item tracked (Track / Set Regarding in Outlook) or untracked (Stop tracking). */
  setTracked(nativeId: NativeId | string, tracked: boolean): Promise<LocalItem> {
    return this.exclusive(async () => {
      const item = await this.live(nativeId)
      const next = { ...this.state }
      const updated: LocalItem = { ...item, meta: { ...item.meta, tracked }, version: this.versionOf(next), modifiedAt: this.now() }
      await this.write(next, [updated], 'user')
      return updated
    })
  }

  /** The user deleted an item in Outlook. Deleting an item that is already gone does nothing. */
  deleteItem(nativeId: NativeId | string): Promise<void> {
    return this.exclusive(async () => {
      const item = await this.getItem(nativeId)
      if (!item || item.deleted) return
      const next = { ...this.state }
      await this.write(next, [{ ...item, deleted: true, provenance: 'user-deleted', version: this.versionOf(next), modifiedAt: this.now() }], 'user')
    })
  }

  /** An item, live or deleted (a tombstone), or undefined when never seen. */
  async getItem(nativeId: NativeId | string): Promise<LocalItem | undefined> {
    const raw = await this.db.get(itemKey(nativeId))
    return raw === undefined ? undefined : (JSON.parse(raw) as LocalItem)
  }

  /** Every live item. */
  async listItems(kind?: ItemKind): Promise<LocalItem[]> {
    const out: LocalItem[] = []
    for await (const value of this.db.values({ gt: 'i!', lt: 'i"' })) {
      const item = JSON.parse(value) as LocalItem
      if (!item.deleted && (kind === undefined || item.kind === kind)) out.push(item)
    }
    return out
  }

  /** The live item stamped with a Concord id. */
  async findByConcordId(concordId: ConcordId | string): Promise<LocalItem | undefined> {
    const nativeId = await this.db.get(concordKey(concordId))
    if (nativeId === undefined) return undefined
    const item = await this.getItem(nativeId)
    return item && !item.deleted ? item : undefined
  }

  /** The offline queue: user edits logged after the last position the server confirmed. */
  async pendingEdits(): Promise<number> {
    let count = 0
    for await (const value of this.db.values({ gt: logKey(this.state.acked), lt: 'l"' })) if ((JSON.parse(value) as LogRecord).by === 'user') count++
    return count
  }

  /** The head of the change log. */
  get headSeq(): number {
    return this.state.seq
  }

  /** Invalidates every cursor handed out so far: the next pull from one throws `CursorExpiredError`. */
  expireCursors(): Promise<void> {
    return this.exclusive(async () => {
      const next = { ...this.state, epoch: this.state.epoch + 1 }
      await this.db.put(STATE_KEY, JSON.stringify(next))
      this.state = next
    })
  }

  async close(): Promise<void> {
    await this.queue
    await this.db.close()
  }

  // -------------------------------------------------------------------------------------------
  // ReplicaAdapter (the server calls these over the socket)
  // -------------------------------------------------------------------------------------------

  /**
   * `kinds` (the sync scope, protocol 2) lists only items of those kinds: other kinds are skipped, as
   * if they were not in the store (never reported deleted). The cursor still moves past them.
   */
  async pull(cursor: Cursor | null, options: PullOptions & { kinds?: readonly ItemKind[] | undefined }): Promise<PullPage> {
    await this.queue
    const limit = Math.max(1, Math.floor(options.limit))
    const inScope = options.kinds === undefined ? () => true : ((set: ReadonlySet<ItemKind>) => (kind: ItemKind) => set.has(kind))(new Set(options.kinds))
    const state = this.state
    const position: CursorState = cursor === null ? { i: state.instance, e: state.epoch, full: true, at: state.seq, after: '' } : parseCursor(cursor)
    if (position.i !== state.instance || position.e !== state.epoch) throw new CursorExpiredError('The Outlook client cursor is from another epoch or another client database; a full resync is required')
    if ('full' in position) {
      const changes: RemoteChange[] = []
      let last = position.after
      let more = false
      for await (const [key, value] of this.db.iterator({ gt: itemKey(position.after), lt: 'i"' })) {
        const item = JSON.parse(value) as LocalItem
        if (item.deleted || !inScope(item.kind)) continue
        if (changes.length === limit) {
          more = true
          break
        }
        changes.push(toChange(item))
        last = key.slice(2)
      }
      return { changes, hasMore: more, fullListing: true, nextCursor: more ? formatCursor({ i: position.i, e: position.e, full: true, at: position.at, after: last }) : formatCursor({ i: position.i, e: position.e, s: position.at }) }
    }
    await this.ack(position.s)
    const changes: RemoteChange[] = []
    const seen = new Set<string>()
    let nextSeq = position.s
    // Reads the log in batches until `limit` distinct in-scope items (or the end): out-of-scope entries never make empty pages.
    for (let done = false; !done; ) {
      const batch: Array<{ seq: number; id: string }> = []
      for await (const [key, value] of this.db.iterator({ gt: logKey(nextSeq), lt: 'l"', limit })) batch.push({ seq: Number(key.slice(2)), id: (JSON.parse(value) as LogRecord).n })
      if (batch.length === 0) break
      const unique = [...new Set(batch.map((b) => b.id))].filter((id) => !seen.has(id))
      const raws = await this.db.getMany(unique.map(itemKey))
      const items = new Map<string, LocalItem>()
      raws.forEach((raw, index) => {
        if (raw === undefined) throw new SyncError('Storage', `change log names item ${unique[index]} that is not stored`)
        items.set(unique[index]!, JSON.parse(raw) as LocalItem)
      })
      for (const entry of batch) {
        nextSeq = entry.seq
        const item = items.get(entry.id)
        if (item && !seen.has(entry.id) && inScope(item.kind)) {
          seen.add(entry.id)
          changes.push(toChange(item))
          if (changes.length >= limit) {
            done = true
            break
          }
        }
      }
      if (batch.length < limit) break
    }
    return { changes, hasMore: nextSeq < this.state.seq, nextCursor: formatCursor({ i: position.i, e: position.e, s: nextSeq }) }
  }

  push(ops: readonly PushOp[]): Promise<PushResult> {
    return this.exclusive(async () => {
      const applied: PushApplied[] = []
      const rejected: PushRejected[] = []
      for (const op of ops) {
        try {
          applied.push(await this.applyOp(op))
        } catch (error) {
          if (error instanceof SyncError) rejected.push({ opId: op.opId, error })
          else throw error
        }
      }
      return { applied, rejected }
    })
  }

  async confirmMissing(nativeIds: readonly NativeId[]): Promise<NativeId[]> {
    const items = await this.db.getMany(nativeIds.map(itemKey))
    return nativeIds.filter((_, index) => {
      const raw = items[index]
      return raw === undefined || (JSON.parse(raw) as LocalItem).deleted
    })
  }

  private async applyOp(op: PushOp): Promise<PushApplied> {
    const done = await this.db.get(opKey(op.opId))
    if (done !== undefined) return JSON.parse(done) as PushApplied
    const next = { ...this.state }
    let applied: PushApplied
    let written: LocalItem | undefined
    switch (op.type) {
      case 'create': {
        const existing = await this.findByConcordId(op.concordId)
        if (existing) {
          applied = { opId: op.opId, nativeId: existing.nativeId, version: existing.version, fields: existing.fields }
          break
        }
        const fields = parseFields(op.kind, op.fields) as Fields
        const nativeId = asNativeId(`ol-${next.nextId}`)
        next.nextId++
        written = { nativeId, kind: op.kind, fields, version: this.versionOf(next), concordId: op.concordId, modifiedAt: this.now(), deleted: false }
        applied = { opId: op.opId, nativeId, version: written.version, fields }
        break
      }
      case 'update': {
        const item = await this.getItem(op.nativeId)
        if (!item || item.deleted) throw new SyncError('NotFound', `Outlook client: no item ${op.nativeId}`)
        if (op.ifMatch !== undefined && op.ifMatch !== item.version) throw new PreconditionFailedError(`Outlook client: item ${op.nativeId} is at version ${item.version}, not ${op.ifMatch}`)
        const fields = parseFields(item.kind, { ...item.fields, ...op.fields }) as Fields
        written = { ...item, fields, concordId: item.concordId ?? op.concordId, version: this.versionOf(next), modifiedAt: this.now() }
        applied = { opId: op.opId, nativeId: item.nativeId, version: written.version, fields }
        break
      }
      case 'delete': {
        const item = op.nativeId !== undefined ? await this.getItem(op.nativeId) : await this.findByConcordId(op.concordId)
        if (item && !item.deleted) {
          if (op.ifMatch !== undefined && op.ifMatch !== item.version) throw new PreconditionFailedError(`Outlook client: item ${item.nativeId} is at version ${item.version}, not ${op.ifMatch}`)
          written = { ...item, deleted: true, provenance: op.provenance, version: this.versionOf(next), modifiedAt: this.now() }
        }
        applied = { opId: op.opId }
        break
      }
    }
    await this.write(next, written ? [written] : [], 'server', [{ type: 'put', key: opKey(op.opId), value: JSON.stringify(applied) }])
    return applied
  }

  // -------------------------------------------------------------------------------------------

  private async live(nativeId: NativeId | string): Promise<LocalItem> {
    const item = await this.getItem(nativeId)
    if (!item || item.deleted) throw new SyncError('NotFound', `Outlook client: no item ${nativeId}`)
    return item
  }

  private versionOf(next: ReplicaState): Version {
    return asVersion(`v${next.version++}`)
  }

  /** One atomic batch: the items, their log entries, the Concord-id index and the state. */
  private async write(next: ReplicaState, items: readonly LocalItem[], by: LogRecord['by'], extra: BatchOp[] = []): Promise<void> {
    const ops: BatchOp[] = [...extra]
    for (const item of items) {
      next.seq++
      ops.push({ type: 'put', key: itemKey(item.nativeId), value: JSON.stringify(item) })
      ops.push({ type: 'put', key: logKey(next.seq), value: JSON.stringify({ n: item.nativeId, by } satisfies LogRecord) })
      if (item.concordId !== undefined) {
        if (item.deleted) ops.push({ type: 'del', key: concordKey(item.concordId) })
        else ops.push({ type: 'put', key: concordKey(item.concordId), value: item.nativeId })
      }
    }
    ops.push({ type: 'put', key: STATE_KEY, value: JSON.stringify(next) })
    await this.db.batch(ops)
    this.state = next
  }

  private async ack(seq: number): Promise<void> {
    if (seq <= this.state.acked) return
    await this.exclusive(async () => {
      if (seq <= this.state.acked || seq > this.state.seq) return
      const next = { ...this.state, acked: seq }
      await this.db.put(STATE_KEY, JSON.stringify(next))
      this.state = next
    })
  }
}

function toChange(item: LocalItem): RemoteChange {
  if (item.deleted) return { type: 'delete', nativeId: item.nativeId, provenance: item.provenance ?? 'user-deleted' }
  return { type: 'upsert', nativeId: item.nativeId, kind: item.kind, version: item.version, fields: item.fields, concordId: item.concordId, modifiedAt: item.modifiedAt, meta: item.meta }
}

function formatCursor(state: CursorState): Cursor {
  return asCursor(JSON.stringify(state))
}

function parseCursor(cursor: Cursor): CursorState {
  let raw: unknown
  try {
    raw = JSON.parse(cursor)
  } catch (error) {
    throw new CursorExpiredError('Unreadable Outlook client cursor', {}, { cause: error })
  }
  const parsed = CursorSchema.safeParse(raw)
  if (!parsed.success) throw new CursorExpiredError('Unreadable Outlook client cursor', {}, { cause: parsed.error })
  return parsed.data
}
