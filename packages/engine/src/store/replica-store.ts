import type { AbstractBatchOperation, AbstractChainedBatchWriteOptions, AbstractLevel } from 'abstract-level'
import type { PullPage, PushApplied, RecordMeta } from '../contract/replica-adapter.js'
import { SyncError } from '../errors.js'
import { type ConcordId, type Cursor, type NativeId, type PairId, type ReplicaId, asCursor, concordIdFor } from '../ids.js'
import { type Fields, hashFields } from '../model/item.js'
import { deepFreeze } from '../util/deep-freeze.js'
import { KeyedQueue } from '../util/keyed-queue.js'
import { assertKeyPart, keys, prefixEnd } from './keys.js'
import { KnownKeys, type KnownKeysData } from './known-keys.js'
import { decodeExplain, decodeOutboxEntry, encodeExplain, encodeOutboxEntry, withAgreedFields } from './records.js'
import type { BaseRecord, ConflictListRecord, ExplainRecord, LinkRecord, LogEntry, OutboxEntry, QuarantineRecord, Snapshot, TombstoneRecord } from './records.js'

/** Any `abstract-level` database with string keys and values: classic-level, memory-level, browser-level. */
export type StoreDatabase = AbstractLevel<string | Uint8Array | Buffer, string, string>

/**
 * A batch operation; a put may carry its value as an object (`decoded`, with the `encode` that made its
 * string), which the read cache then keeps, frozen, so that reads of it parse nothing.
 */
type BatchOp = AbstractBatchOperation<StoreDatabase, string, string> & { decoded?: unknown; encode?: (value: unknown) => string }

/**
 * A cached value that was parsed (with the string it came from) or written as an object (with its
 * encoder, not its string: a store's cache holds every record it wrote, and the strings made a record
 * cost a quarter more; only {@link storeCachesToData} needs them again). Readers share the value, so it is frozen.
 */
type Decoded = { readonly raw: string; readonly value: unknown } | { readonly value: unknown; readonly encode: (value: unknown) => string }

/** What the read cache holds of a key: its raw value, its value parsed too, or null (known absent). */
type CacheSlot = string | Decoded | null

/** A put whose value the caches keep as the (frozen) object: the store owns it from here on. */
function putDecoded<T extends object>(key: string, value: T, encode: (value: T) => string = JSON.stringify): BatchOp {
  return { type: 'put', key, value: encode(value), decoded: deepFreeze(value), encode: encode as (value: unknown) => string }
}

/** A link to change: a copy of the stored one (stored records are shared and frozen), else a new one. */
function editableLink(stored: LinkRecord | undefined, kind: LinkRecord['kind']): LinkRecord {
  return stored ? { ...stored, natives: { ...stored.natives } } : { kind, natives: {} }
}

export interface ReplicaStoreOptions {
  /** Ask the backend to fsync every batch (classic-level `sync: true`). Default false. */
  durable?: boolean | undefined
  /** Clock for log timestamps (ms). Injected so that simulations are deterministic. */
  now?: (() => number) | undefined
  /**
   * Called before every storage write with the number of operations in the batch. Tests use it to
   * simulate a crash between two writes (throw, and the batch is not applied).
   */
  beforeWrite?: ((ops: number) => void) | undefined
  /**
   * Entries of the write-through read cache (point records: snapshots, links, bases, outbox entries…).
   * The store is its database's single writer (the lease guarantees it), so what it wrote or read is
   * what the database holds; hot reads then cost no database round trip. Default 100,000; 0 disables.
   */
  cacheEntries?: number | undefined
  /**
   * Group commit: writes are applied to the store's caches at once and reach the database together,
   * in one batch, when `flush()` is called, when a read needs the database, or every
   * `GROUP_COMMIT_MAX_OPS` operations. Callers must `flush()` before any effect outside the store that
   * depends on what they wrote (`SyncPair` flushes before every push: the outbox is on disk before a
   * remote sees the write). A crash loses the unflushed tail as a whole — the state of an earlier
   * moment, which every replay path already handles. A failed flush closes the store to further use.
   * Pairs sharing the store may flush at the same time: one batch is written at a time, in write order,
   * and a flush returns only once everything written before it is stored (or rejects if it was not).
   * Readers of `db` itself must `flush()` first. Default false: every write is its own batch.
   */
  groupCommit?: boolean | undefined
  /**
   * The caches of a closed store ({@link ReplicaStore.closeKeepingCaches}), to start warm on `db`, which
   * must hold exactly what that store's database held when it closed (a copy of its files, say). They
   * are trusted, not checked. The cache and what it knows absent are taken only with the same `cacheEntries`.
   */
  resumeCaches?: StoreCaches | undefined
}

/** What a closed store knew beyond its database (see `ReplicaStoreOptions.resumeCaches`). Opaque; shared by every store resumed from it, each of which copies it. */
export interface StoreCaches {
  readonly cacheLimit: number
  readonly heads: ReadonlyMap<ReplicaId, number>
  readonly cursors: ReadonlyMap<ReplicaId, Cursor | null>
  readonly listingsSettled: ReadonlySet<ReplicaId>
  readonly cache: ReadonlyMap<string, CacheSlot>
  readonly outboxes: ReadonlyMap<string, ReadonlyMap<string, { raw: string; entry?: OutboxEntry }>>
  readonly tails: ReadonlyMap<ReplicaId, { first: number; entries: readonly LogEntry[] }>
  /** The keys outside the cache that may exist (a store that created its database); data after {@link storeCachesToData}. */
  readonly known: KnownKeys | KnownKeysData | undefined
}

/**
 * `caches` as structured-cloneable data, to resume a store in another process: parsed values travel as their raw
 * strings (the resumed store parses what it reads, as after a cache miss), log tails as their entries.
 */
export function storeCachesToData(caches: StoreCaches): StoreCaches {
  const cache = new Map<string, CacheSlot>()
  for (const [key, slot] of caches.cache) cache.set(key, slot !== null && typeof slot === 'object' ? rawOf(slot) : slot)
  const outboxes = new Map<string, Map<string, { raw: string }>>()
  for (const [prefix, outbox] of caches.outboxes) outboxes.set(prefix, new Map([...outbox].map(([key, slot]) => [key, { raw: slot.raw }])))
  const known = caches.known instanceof KnownKeys ? caches.known.toData() : caches.known
  return { ...caches, cache, outboxes, known }
}

/** The string a decoded cache slot stands for. */
function rawOf(slot: Decoded): string {
  return 'raw' in slot ? slot.raw : slot.encode(slot.value)
}

/** Caches that arrived as data ({@link storeCachesToData}, then structured-cloned): the log tails' entries frozen again, as a store shares them with its readers. */
export function storeCachesFromData(data: StoreCaches): StoreCaches {
  for (const tail of data.tails.values()) for (const entry of tail.entries) deepFreeze(entry)
  return data
}

export interface PageApplyResult {
  /** Records that really changed and went into the log. */
  logged: number
  /** Records seen again unchanged (same version, or same content): no log entry. */
  unchanged: number
  headSeq: number
}

const STORE_FORMAT = 1
/** Under group commit, pending operations that force a flush. */
const GROUP_COMMIT_MAX_OPS = 8192
/** Log entries kept in memory per replica (the unmerged tail a cycle reads back right after pulling). */
const LOG_TAIL_MAX = 1024
const SEP = '!'
const REPLICA_KEY_START = `v1${SEP}r${SEP}`
const PAIR_KEY_START = `v1${SEP}p${SEP}`
const LOG_PART = `log${SEP}`
const OUTBOX_PART = `out${SEP}`

/** Whether `key` is a log entry (`v1!r!<replica>!log!<seq>`): those are read by range, never cached as points. */
function isLogKey(key: string): boolean {
  if (!key.startsWith(REPLICA_KEY_START)) return false
  const a = key.indexOf(SEP, 5) // after the replica id
  return a >= 0 && key.startsWith(LOG_PART, a + 1)
}

/** The outbox prefix (`v1!p!<pair>!out!<replica>!`) of an outbox key, else undefined. */
function outboxPrefixOf(key: string): string | undefined {
  if (!key.startsWith(PAIR_KEY_START)) return undefined
  const a = key.indexOf(SEP, 5) // after the pair id
  if (a < 0 || !key.startsWith(OUTBOX_PART, a + 1)) return undefined
  const b = key.indexOf(SEP, a + 5) // after the target replica id
  return b < 0 ? undefined : key.slice(0, b + 1)
}

/** Hash of a pulled record's content. Metadata (owner, tracked…) counts as content: reassigning a record can move it in or out of a filter. */
function contentHash(change: { fields: Fields; meta?: RecordMeta | undefined }): string {
  return change.meta ? hashFields({ ...change.fields, '@meta': change.meta }) : hashFields(change.fields)
}

/** The Concord id of a pulled change: stamped on the record, else known from its snapshot, else derived from the native id. */
function concordIdOf(replicaId: ReplicaId, change: PullPage['changes'][number], snap: Snapshot | undefined): ConcordId {
  return (change.type === 'upsert' ? change.concordId : undefined) ?? snap?.concordId ?? concordIdFor(replicaId, change.nativeId)
}

/** Adds a snapshot write to a page's batch, and makes it what the rest of the page sees. */
function stageSnapshot(ops: BatchOp[], snapshots: Map<NativeId, Snapshot | undefined>, replicaId: ReplicaId, nativeId: NativeId, snapshot: Snapshot): void {
  snapshots.set(nativeId, snapshot)
  ops.push(putDecoded(keys.snapshot(replicaId, nativeId), snapshot))
}

/** Adds a log entry's write to a page's batch, and keeps the entry (frozen) for the replica's in-memory tail. */
function stageLogEntry(ops: BatchOp[], appended: LogEntry[], replicaId: ReplicaId, entry: LogEntry): void {
  appended.push(deepFreeze(entry))
  ops.push({ type: 'put', key: keys.log(replicaId, entry.seq), value: JSON.stringify(entry) })
}

/** Progress of a replica's full listings: which one is current, whether it ended, whether its gaps were checked. */
interface ListingState {
  no: number
  open: boolean
  confirmed: boolean
  /** Pages of this listing written so far (each one's native ids under `keys.listed`). */
  pages?: number | undefined
}

/**
 * The engine's durable state for every replica and pair, on one `abstract-level` database.
 *
 * Holds per replica an append-only change log, a snapshot of each known native record, the opaque
 * cursor; per item the links; per pair the base, the merge watermarks and the outbox. Every method
 * that writes does so in exactly one atomic batch, so a crash leaves either all or nothing of it.
 */
export class ReplicaStore {
  private readonly durable: boolean
  private readonly now: () => number
  private readonly beforeWrite: ((ops: number) => void) | undefined
  private readonly heads = new Map<ReplicaId, number>()
  /**
   * Write-through caches of state only this store writes (one engine owns a replica's state at a
   * time — the lease guarantees it): they let an idle cycle run without touching the database.
   */
  private readonly cursors = new Map<ReplicaId, Cursor | null>()
  private readonly listingsSettled = new Set<ReplicaId>()
  /**
   * Values of point keys as the database holds them (raw, or parsed once and frozen); null = known
   * absent. Bounded (least recently written or read in goes first).
   */
  private readonly cache = new Map<string, CacheSlot>()
  private readonly cacheLimit: number
  /**
   * Whole outboxes (prefix → key → raw entry, and the entry decoded and frozen once it was listed),
   * once listed: kept current by every write. A cycle lists its outboxes several times.
   */
  private readonly outboxes = new Map<string, Map<string, { raw: string; entry?: OutboxEntry }>>()
  /** The newest log entries of each replica (frozen, shared with readers), contiguous up to the head. */
  private readonly tails = new Map<ReplicaId, { first: number; entries: LogEntry[] }>()
  /**
   * Cursors of pages that changed nothing (e.g. the echo of our own pushes), not yet written: losing
   * one on a crash only replays such a page, which is a no-op. They go out with the next write.
   */
  private readonly lazyCursors = new Map<ReplicaId, Cursor>()
  /** Bumped by every write: a read that overlapped a write does not fill the cache (it may be stale). */
  private epoch = 0
  /**
   * Group commit: bumped by every write (a change of what the caches say; a commit only makes the database
   * agree). A point read that overlapped no write may fill the cache, whatever commits ran meanwhile.
   */
  private cacheChanges = 0
  /**
   * Group commit: keys the cache evicted while writes were pending or being committed — their newest value
   * may not be in the database yet — until the batch that was next at the time has landed (`unsettledUntil`).
   * A point read of one of them waits for the pending writes; any other key the cache does not hold is in the
   * database as written, so its read need not wait for the flush of writes it does not touch.
   */
  private readonly evictedUnsettled = new Set<string>()
  private unsettledUntil = 0
  /** Group commit: batches taken for writing so far (numbered in the order they land). */
  private batchesStarted = 0
  /**
   * Set when this store created its database (it was empty at open): every point key it may hold is
   * one this store wrote, so a key neither cached nor known here is absent without asking the
   * database. Only keys outside the cache need to be here: a written key joins when the cache
   * evicts it (or when the cache could not take it), which spares every write a lookup here.
   */
  private known: KnownKeys | undefined
  private readonly groupCommit: boolean
  /** Group commit: operations applied to the caches, not yet in the database (in write order). */
  private pending: BatchOp[] = []
  /** Read-modify-write updates, one at a time (see {@link exclusive}). */
  private readonly updates = new KeyedQueue<'updates'>()
  /** Work of each pair, one piece at a time (see {@link runForPair}). */
  private readonly pairWork = new KeyedQueue<PairId>()
  /** Group commit: the batch a flush is writing, if any. */
  private flushing: Promise<void> | undefined
  /** Set when a group-commit flush failed: the caches may disagree with the database. */
  private failure: Error | undefined

  private constructor(
    readonly db: StoreDatabase,
    options: ReplicaStoreOptions,
  ) {
    this.durable = options.durable ?? false
    this.now = options.now ?? Date.now
    this.beforeWrite = options.beforeWrite
    this.cacheLimit = options.cacheEntries ?? 100_000
    this.groupCommit = options.groupCommit ?? false
  }

  /** Opens (and if new, initialises) a store on `db`. Rejects a store written by an unknown format. */
  static async open(db: StoreDatabase, options: ReplicaStoreOptions = {}): Promise<ReplicaStore> {
    if (db.status === 'opening' || db.status === 'closed') await db.open()
    const store = new ReplicaStore(db, options)
    const meta = await db.get(keys.meta())
    if (options.resumeCaches) {
      if (meta === undefined) throw new SyncError('Storage', 'Cannot resume caches on an empty database: it must be a copy of the database they were taken from')
      store.resume(options.resumeCaches)
    }
    if (meta === undefined) {
      if (store.cacheLimit > 0) store.known = KnownKeys.empty(store.cacheLimit)
      await store.write([{ type: 'put', key: keys.meta(), value: JSON.stringify({ format: STORE_FORMAT }) }])
    } else {
      const format = (JSON.parse(meta) as { format?: unknown }).format
      if (format !== STORE_FORMAT) throw new SyncError('Storage', `Unsupported store format ${String(format)} (this Concord reads format ${STORE_FORMAT})`)
    }
    return store
  }

  async close(): Promise<void> {
    // (a batch another pair's flush is writing lands first: `flush` waits for it)
    if ((this.lazyCursors.size > 0 || this.pending.length > 0 || this.flushing) && this.db.status === 'open' && !this.failure) {
      try {
        await this.write([])
        await this.flush()
      } catch {
        // Best effort by design: a lazy cursor only saves replaying pages that changed nothing (see
        // `lazyCursors`); a refused write (e.g. a lease lost before shutdown) must not keep the database open.
        this.lazyCursors.clear()
        this.pending = []
      }
    }
    await this.db.close()
  }

  /**
   * Writes everything pending, closes the database and returns the caches, for stores opened on copies
   * of the closed database (`ReplicaStoreOptions.resumeCaches`). Unlike {@link close}, a failed write rejects.
   */
  async closeKeepingCaches(): Promise<StoreCaches> {
    await this.write([])
    await this.flush()
    await this.db.close()
    const { cacheLimit, heads, cursors, listingsSettled, cache, outboxes, tails, known } = this
    return { cacheLimit, heads, cursors, listingsSettled, cache, outboxes, tails, known }
  }

  /** Starts from a closed store's caches (copied: several stores may resume from the same ones). */
  private resume(from: StoreCaches): void {
    for (const [replicaId, head] of from.heads) this.heads.set(replicaId, head)
    for (const [replicaId, cursor] of from.cursors) this.cursors.set(replicaId, cursor)
    for (const replicaId of from.listingsSettled) this.listingsSettled.add(replicaId)
    for (const [replicaId, tail] of from.tails) this.tails.set(replicaId, { first: tail.first, entries: tail.entries.slice() })
    if (from.cacheLimit !== this.cacheLimit || this.cacheLimit <= 0) return
    for (const [key, value] of from.cache) this.cache.set(key, value)
    for (const [prefix, outbox] of from.outboxes) this.outboxes.set(prefix, new Map([...outbox].map(([key, slot]) => [key, { ...slot }])))
    this.known = from.known instanceof KnownKeys ? from.known.copy() : from.known && KnownKeys.fromData(from.known)
  }

  /**
   * Under group commit: writes every pending operation in one batch (otherwise a no-op). Every read that
   * goes to the database calls it first, so it sees what the caches already show.
   */
  async flush(): Promise<void> {
    // Pairs sharing the store flush on their own: what this caller wrote is pending, or in the batch
    // another flush is writing. Wait for that batch (one at a time, so batches land in write order),
    // then write what is still pending.
    while (this.flushing) await this.flushing.catch(() => undefined)
    if (this.failure) throw this.failure
    if (this.pending.length === 0) return
    const ops = this.pending
    this.pending = []
    const batch = ++this.batchesStarted
    const flushing = this.commit(ops)
    this.flushing = flushing
    try {
      await flushing
      if (batch >= this.unsettledUntil) this.evictedUnsettled.clear()
    } catch (error) {
      // What the caches say may be neither the old nor the new database state: refuse further use.
      this.failure = error instanceof Error ? error : new Error(String(error))
      for (const cache of [this.cache, this.outboxes, this.heads, this.cursors, this.tails, this.lazyCursors]) cache.clear()
      this.listingsSettled.clear()
      this.known = undefined
      throw error
    } finally {
      if (this.flushing === flushing) this.flushing = undefined
    }
  }

  /**
   * Under group commit: starts writing every pending operation without waiting for the database (otherwise a
   * no-op). Batches still land one at a time, in write order, and a later {@link flush} waits for this one. A
   * failure is kept as {@link flush}'s is: the store refuses every later write and flush with it. For callers
   * whose effects outside the store need not wait for the disk — a simulation, which never crashes.
   */
  flushInBackground(): void {
    if (!this.groupCommit || this.pending.length === 0) return
    this.flush().catch(() => undefined) // kept in `failure`: the next write or flush rejects with it
  }

  private async commit(ops: BatchOp[]): Promise<void> {
    this.beforeWrite?.(ops.length)
    this.epoch++
    await this.writeBatch(ops)
    this.epoch++
  }

  /**
   * Writes `ops` as one atomic batch. A chained batch: classic-level takes each operation as two
   * strings, where an array batch costs a copy of every operation and a lookup of each of its
   * members on the main thread (the larger cost of a bulk flush).
   */
  private async writeBatch(ops: readonly BatchOp[]): Promise<void> {
    const batch = this.db.batch()
    try {
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value)
        else batch.del(op.key)
      }
    } catch (error) {
      await batch.close()
      throw error
    }
    // `sync` is classic-level's fsync flag; other backends ignore it.
    if (this.durable) await batch.write({ sync: true } as AbstractChainedBatchWriteOptions)
    else await batch.write()
  }

  private async write(ops: BatchOp[]): Promise<void> {
    if (this.failure) throw this.failure
    if (this.lazyCursors.size > 0) {
      // the explicit ops come last, so they win over a lazy cursor of the same key
      const lazy: BatchOp[] = [...this.lazyCursors].map(([replicaId, cursor]) => ({ type: 'put', key: keys.cursor(replicaId), value: cursor }))
      ops = [...lazy, ...ops]
    }
    if (ops.length === 0) return
    const lazyWritten = this.lazyCursors.size > 0 ? new Map(this.lazyCursors) : undefined
    if (this.groupCommit) {
      this.epoch++ // a database read in flight may predate these writes: it must not fill the cache
      this.cacheChanges++
      for (const op of ops) this.pending.push(op)
    } else {
      try {
        await this.commit(ops)
      } catch (error) {
        // Unknown whether the batch landed: forget what it touched.
        for (const op of ops) {
          this.cache.delete(op.key)
          this.known?.add(op.key) // out of the cache, landed or not: ask the database
          const prefix = outboxPrefixOf(op.key)
          if (prefix !== undefined) this.outboxes.delete(prefix)
        }
        throw error
      }
    }
    if (lazyWritten) for (const [replicaId, cursor] of lazyWritten) if (this.lazyCursors.get(replicaId) === cursor) this.lazyCursors.delete(replicaId)
    for (const op of ops) {
      const key = op.key
      if (isLogKey(key)) continue // log entries: see `tails`
      const value = op.type === 'put' ? op.value : null
      this.rememberWritten(key, value !== null && op.decoded !== undefined && op.encode ? { value: op.decoded, encode: op.encode } : value)
      const prefix = outboxPrefixOf(key)
      const outbox = prefix === undefined ? undefined : this.outboxes.get(prefix)
      if (outbox) {
        if (value === null) outbox.delete(key)
        else outbox.set(key, op.decoded === undefined ? { raw: value } : { raw: value, entry: op.decoded as OutboxEntry })
      }
    }
    if (this.pending.length >= GROUP_COMMIT_MAX_OPS) await this.flush()
  }

  /**
   * Caches what a write stored. Recency (delete and re-insert) is kept only from half the limit on:
   * below it nothing is evicted soon, and rewriting the same hot keys every cycle would cost a delete
   * and a re-insert each for nothing.
   */
  private rememberWritten(key: string, value: CacheSlot): void {
    if (this.cacheLimit <= 0) return
    if (this.cache.size >= this.cacheLimit >> 1) this.cache.delete(key)
    this.cache.set(key, value)
    this.evictOverLimit()
  }

  private remember(key: string, value: CacheSlot): void {
    if (this.cacheLimit <= 0) return
    this.cache.delete(key) // re-inserted at the end: eviction takes the least recently written or read-in first
    this.cache.set(key, value)
    this.evictOverLimit()
  }

  private evictOverLimit(): void {
    if (this.cache.size > this.cacheLimit) {
      // Drop the oldest eighth in one pass: evicting one entry per insert would rescan the Map's
      // deleted slots every time (quadratic).
      let drop = Math.max(1, this.cacheLimit >> 3)
      const unsettled = this.pending.length > 0 || this.flushing !== undefined
      if (unsettled) this.unsettledUntil = this.batchesStarted + (this.pending.length > 0 ? 1 : 0)
      for (const [oldest, value] of this.cache) {
        this.cache.delete(oldest)
        if (value !== null) this.known?.add(oldest) // out of the cache: `known` must say it exists
        if (unsettled) this.evictedUnsettled.add(oldest)
        if (--drop === 0) break
      }
    }
  }

  /**
   * Reads the `missing` indexes of `keyList` from the database into `out`, decoded and frozen, and into the
   * cache as decoded (unless a write overlapped), so that the next read of them parses nothing.
   */
  private async readMissing<T>(keyList: readonly string[], missing: readonly number[], decode: (raw: string) => T, out: Array<T | undefined>): Promise<void> {
    if (this.failure) throw this.failure
    // Under group commit a key the cache lacks is in the database as written unless it was evicted before it
    // got there (see `evictedUnsettled`): the read need not wait for writes of other keys.
    if (!this.groupCommit || this.cacheLimit <= 0 || (this.evictedUnsettled.size > 0 && missing.some((i) => this.evictedUnsettled.has(keyList[i]!)))) await this.flush()
    const epoch = this.epoch
    const changes = this.cacheChanges
    const raw = await this.db.getMany(missing.map((i) => keyList[i]!))
    const fill = this.groupCommit ? changes === this.cacheChanges : epoch === this.epoch
    for (let j = 0; j < missing.length; j++) {
      const i = missing[j]!
      const stored = raw[j]
      const value = stored === undefined ? undefined : deepFreeze(decode(stored))
      out[i] = value
      if (fill) this.remember(keyList[i]!, stored === undefined ? null : { raw: stored, value })
    }
  }

  /** Values of `keys` parsed as JSON, in order; undefined where a key is absent. Shared and frozen: copy one to change it. */
  private getManyJson<T>(keyList: readonly string[]): Promise<Array<T | undefined>> {
    return this.getManyDecoded(keyList, JSON.parse as (raw: string) => T)
  }

  /**
   * Values of `keyList` decoded with `decode` (always the same one for a key), in order; undefined where
   * a key is absent. Each value is decoded once while it stays in the cache, and frozen, since every
   * reader shares it.
   */
  private async getManyDecoded<T>(keyList: readonly string[], decode: (raw: string) => T): Promise<Array<T | undefined>> {
    const out = new Array<T | undefined>(keyList.length)
    let missing: number[] | undefined
    const known = this.known
    for (let i = 0; i < keyList.length; i++) {
      const key = keyList[i]!
      const hit = this.cache.get(key)
      if (hit === undefined) {
        if (known === undefined || known.mayHave(key)) (missing ??= []).push(i)
      } else if (typeof hit === 'string') {
        const value = deepFreeze(decode(hit))
        this.cache.set(key, { raw: hit, value }) // (an existing key: its place in the eviction order stays)
        out[i] = value
      } else if (hit !== null) out[i] = hit.value as T
    }
    if (missing) await this.readMissing(keyList, missing, decode, out)
    return out
  }

  /** Puts of outbox entries, for a batch. */
  private outboxPuts(pairId: PairId, entries: readonly OutboxEntry[]): BatchOp[] {
    // the entries are the store's from here on (frozen): the outbox cache lists them as they are
    return entries.map((entry) => putDecoded(keys.outbox(pairId, entry.target, entry.op.concordId), entry, encodeOutboxEntry))
  }

  private async getJson<T>(key: string): Promise<T | undefined> {
    return (await this.getManyJson<T>([key]))[0]
  }

  // ── cursors and log ────────────────────────────────────────────────────────────────────────

  async getCursor(replicaId: ReplicaId): Promise<Cursor | null> {
    const cached = this.cursors.get(replicaId)
    if (cached !== undefined) return cached
    await this.flush()
    const raw = await this.db.get(keys.cursor(replicaId))
    const cursor = raw === undefined ? null : asCursor(raw)
    this.cursors.set(replicaId, cursor)
    return cursor
  }

  /** Forgets a replica's cursor so that the next pull is a full listing (after `CursorExpiredError`). */
  async resetCursor(replicaId: ReplicaId): Promise<void> {
    this.cursors.delete(replicaId)
    this.lazyCursors.delete(replicaId)
    await this.write([{ type: 'del', key: keys.cursor(replicaId) }])
    this.cursors.set(replicaId, null)
  }

  async headSeq(replicaId: ReplicaId): Promise<number> {
    const cached = this.heads.get(replicaId)
    if (cached !== undefined) return cached
    await this.flush()
    const raw = await this.db.get(keys.logHead(replicaId))
    const head = raw === undefined ? 0 : Number(raw)
    this.heads.set(replicaId, head)
    return head
  }

  /**
   * Records one pulled page: the log entries of records that really changed (version changed and
   * content hash changed), the updated snapshots and links, and the new cursor — in one batch.
   * Replaying a page, or a page with duplicates, logs nothing twice.
   */
  applyPulledPage(replicaId: ReplicaId, page: PullPage): Promise<PageApplyResult> {
    return this.applyChanges(replicaId, page, page.nextCursor)
  }

  /**
   * Runs `update` once the updates queued before it are done. Applying a page and acknowledging pushes
   * read state, await, and write what they derived from it: the log head (each page takes the next
   * sequence numbers) and the links (an item's native id per replica). Two at once — pairs sharing a
   * replica or an item, or two cycles of one pair — would number entries alike or each write back a
   * link without the other's native id. Flushes are not queued here (see {@link flush}).
   */
  private exclusive<T>(update: () => Promise<T>): Promise<T> {
    return this.updates.run('updates', update)
  }

  /**
   * Runs `work` once the work queued for `pairId` before it is done. `SyncPair` runs its cycles and its
   * admin actions (conflicts, quarantines, restores) through it, so two cycles of one pair — two calls at
   * once, or two `SyncPair` objects of the same pair on this store — never interleave: they would merge the
   * same log entries and queue the same pushes twice.
   */
  runForPair<T>(pairId: PairId, work: () => Promise<T>): Promise<T> {
    return this.pairWork.run(pairId, work)
  }

  private applyChanges(replicaId: ReplicaId, page: Pick<PullPage, 'changes' | 'fullListing' | 'hasMore'>, nextCursor: Cursor | undefined, extra: BatchOp[] = []): Promise<PageApplyResult> {
    return this.exclusive(() => this.applyChangesNow(replicaId, page, nextCursor, extra))
  }

  private async applyChangesNow(replicaId: ReplicaId, page: Pick<PullPage, 'changes' | 'fullListing' | 'hasMore'>, nextCursor: Cursor | undefined, extra: BatchOp[]): Promise<PageApplyResult> {
    assertKeyPart(replicaId, 'replicaId')
    const at = this.now()
    let head = this.heads.get(replicaId) ?? (await this.headSeq(replicaId))
    const startHead = head
    const snapshots = new Map<NativeId, Snapshot | undefined>()
    const ops: BatchOp[] = []
    const appended: LogEntry[] = []
    let logged = 0
    let unchanged = 0
    // A full listing is numbered, and each of its pages records the native ids it contained (one write
    // a page, in the page's batch), so that when the listing ends, even across a crash, the records it
    // did *not* contain can be found. A record it lists unchanged costs no write and no hash.
    let listing: (ListingState & { pages: number }) | undefined
    if (page.fullListing) {
      const current = await this.getJson<ListingState>(keys.listing(replicaId))
      listing = current?.open ? { ...current, open: page.hasMore, pages: (current.pages ?? 0) + 1 } : { no: (current?.no ?? 0) + 1, open: page.hasMore, confirmed: false, pages: 1 }
      ops.push({ type: 'put', key: keys.listing(replicaId), value: JSON.stringify(listing) })
    }

    // Within a page only the last occurrence of a record counts: a remote lists its current state,
    // and may repeat a record; collapsing first makes a replayed page a no-op.
    const lastIndex = new Map<NativeId, number>()
    page.changes.forEach((change, i) => lastIndex.set(change.nativeId, i))
    const changes = page.changes.filter((change, i) => lastIndex.get(change.nativeId) === i)
    if (changes.length === 0 && !page.fullListing && extra.length === 0 && (nextCursor === undefined || nextCursor === (this.cursors.get(replicaId) ?? (await this.getCursor(replicaId))))) {
      return { logged: 0, unchanged: 0, headSeq: head } // an empty page that moves nothing: no write
    }
    const distinctIds = [...lastIndex.keys()]
    const stored = await this.getSnapshots(replicaId, distinctIds)
    distinctIds.forEach((n, i) => snapshots.set(n, stored[i]))

    // Links are read only where they can change: new or re-created records, moves, deletes.
    const linkIds = new Set<ConcordId>()
    for (const change of changes) {
      const snap = snapshots.get(change.nativeId)
      const linkMayChange = change.type === 'delete' ? snap !== undefined && !snap.deleted : !snap || snap.deleted || (change.concordId !== undefined && change.concordId !== snap.concordId)
      if (linkMayChange) linkIds.add(concordIdOf(replicaId, change, snap))
    }
    const links = new Map<ConcordId, LinkRecord>()
    const storedLinks = new Map<ConcordId, LinkRecord>()
    if (linkIds.size > 0) {
      const linkIdList = [...linkIds]
      const linkRecords = await this.getLinks(linkIdList)
      linkIdList.forEach((c, i) => linkRecords[i] !== undefined && storedLinks.set(c, linkRecords[i]!))
    }

    for (const change of changes) {
      const snap = snapshots.get(change.nativeId)
      if (change.type === 'upsert') {
        if (snap !== undefined && !snap.deleted && snap.version === change.version) {
          unchanged++ // seen already (e.g. the echo of our own push): nothing to hash or write
          continue
        }
        const hash = contentHash(change)
        if (snap && !snap.deleted && snap.hash === hash) {
          stageSnapshot(ops, snapshots, replicaId, change.nativeId, { ...snap, version: change.version, hash }) // a new version, same content
          unchanged++
          continue
        }
        if (snap?.deleted && snap.version === change.version) {
          unchanged++ // a stale replay of a version we already saw deleted
          continue
        }
        const concordId = concordIdOf(replicaId, change, snap)
        if (linkIds.has(concordId)) {
          const link = await this.linkToChange(concordId, change.kind, links, storedLinks, linkIds)
          const previousNative = link.natives[replicaId]
          if (previousNative !== undefined && previousNative !== change.nativeId) {
            // The record moved (new native id, same stamped Concord id): retire the old location so
            // that its later "removed" notice is not mistaken for a delete.
            const old = snapshots.get(previousNative) ?? (await this.getSnapshot(replicaId, previousNative))
            if (old) stageSnapshot(ops, snapshots, replicaId, previousNative, { ...old, deleted: true })
          }
          link.natives[replicaId] = change.nativeId
        }
        head++
        const entry: LogEntry = {
          seq: head,
          concordId,
          nativeId: change.nativeId,
          kind: change.kind,
          type: 'upsert',
          version: change.version,
          hash,
          fields: change.fields,
          modifiedAt: change.modifiedAt,
          meta: change.meta,
          at,
        }
        stageLogEntry(ops, appended, replicaId, entry)
        stageSnapshot(ops, snapshots, replicaId, change.nativeId, { concordId, kind: change.kind, version: change.version, hash, meta: change.meta })
        logged++
      } else {
        if (!snap || snap.deleted) {
          unchanged++
          continue
        }
        const link = await this.linkToChange(snap.concordId, snap.kind, links, storedLinks, linkIds)
        if (link.natives[replicaId] !== undefined && link.natives[replicaId] !== change.nativeId) {
          stageSnapshot(ops, snapshots, replicaId, change.nativeId, { ...snap, deleted: true }) // an old location of a moved record
          unchanged++
          continue
        }
        delete link.natives[replicaId]
        head++
        const entry: LogEntry = {
          seq: head,
          concordId: snap.concordId,
          nativeId: change.nativeId,
          kind: snap.kind,
          type: 'delete',
          provenance: change.provenance,
          at,
        }
        stageLogEntry(ops, appended, replicaId, entry)
        stageSnapshot(ops, snapshots, replicaId, change.nativeId, { ...snap, deleted: true })
        logged++
      }
    }
    if (listing) {
      const listed: NativeId[] = []
      for (const change of changes) if (change.type === 'upsert') listed.push(change.nativeId)
      if (listed.length > 0) ops.push({ type: 'put', key: keys.listed(replicaId, listing.no, listing.pages - 1), value: JSON.stringify(listed) })
    }
    for (const [concordId, link] of links) ops.push(putDecoded(keys.link(concordId), link))
    if (head !== startHead) ops.push({ type: 'put', key: keys.logHead(replicaId), value: String(head) })
    if (ops.length === 0 && extra.length === 0 && nextCursor !== undefined && !page.fullListing) {
      // Nothing changed but the cursor: keep it in memory until the next write (see `lazyCursors`).
      this.lazyCursors.set(replicaId, nextCursor)
      this.cursors.set(replicaId, nextCursor)
      return { logged, unchanged, headSeq: head }
    }
    if (nextCursor !== undefined) {
      ops.push({ type: 'put', key: keys.cursor(replicaId), value: nextCursor })
      this.lazyCursors.delete(replicaId)
    }
    ops.push(...extra)
    try {
      await this.write(ops)
    } catch (error) {
      this.heads.delete(replicaId)
      this.cursors.delete(replicaId)
      this.tails.delete(replicaId)
      throw error
    }
    this.heads.set(replicaId, head)
    if (appended.length > 0) this.appendTail(replicaId, startHead + 1, appended)
    if (nextCursor !== undefined) this.cursors.set(replicaId, nextCursor)
    if (page.fullListing) this.listingsSettled.delete(replicaId)
    return { logged, unchanged, headSeq: head }
  }

  /**
   * The link a page is changing for `concordId`: the one this page already changes, else the stored
   * one (read in advance for `linkIds`, else now), else a new one.
   */
  private async linkToChange(concordId: ConcordId, kind: LinkRecord['kind'], links: Map<ConcordId, LinkRecord>, storedLinks: ReadonlyMap<ConcordId, LinkRecord>, linkIds: ReadonlySet<ConcordId>): Promise<LinkRecord> {
    let link = links.get(concordId)
    if (!link) {
      const stored = storedLinks.get(concordId) ?? (linkIds.has(concordId) ? undefined : await this.getLink(concordId))
      link = editableLink(stored, kind)
      links.set(concordId, link)
    }
    return link
  }

  /**
   * Live records of `replicaId` that the last completed full listing did not contain: candidates for
   * deletion, to be confirmed by the adapter. Empty while a listing is still in progress.
   */
  async unlistedAfterFullListing(replicaId: ReplicaId): Promise<NativeId[] | undefined> {
    if (this.listingsSettled.has(replicaId)) return undefined
    const listing = await this.getJson<ListingState>(keys.listing(replicaId))
    if (!listing || listing.confirmed) this.listingsSettled.add(replicaId)
    if (!listing || listing.open || listing.confirmed) return undefined
    const listed = new Set<string>()
    for (const page of await this.listJson<NativeId[]>(keys.listedPrefix(replicaId, listing.no))) for (const nativeId of page) listed.add(nativeId)
    // (`snapshot.listing`: how stores before 0.2 marked what a listing contained)
    return (await this.listSnapshots(replicaId)).filter(({ nativeId, snapshot }) => !listed.has(nativeId) && snapshot.listing !== listing.no).map(({ nativeId }) => nativeId)
  }

  /** The keys of the page records of every full listing of `replicaId` (read after a flush). */
  private async listedKeys(replicaId: ReplicaId): Promise<string[]> {
    const prefix = keys.listedPrefix(replicaId)
    const out: string[] = []
    await this.flush()
    for await (const key of this.db.keys({ gte: prefix, lt: prefixEnd(prefix) })) out.push(String(key))
    return out
  }

  /**
   * Closes the check of a completed full listing: logs deletes (provenance `resync`) for the records
   * the remote confirmed gone, and marks the listing confirmed, in one write.
   */
  async recordConfirmedMissing(replicaId: ReplicaId, nativeIds: readonly NativeId[]): Promise<number> {
    const listing = await this.getJson<ListingState>(keys.listing(replicaId))
    const changes = nativeIds.map((nativeId) => ({ type: 'delete' as const, nativeId, provenance: 'resync' as const }))
    // the listing's page records go with it (and those of any earlier listing left unchecked)
    const extra: BatchOp[] = listing ? [{ type: 'put', key: keys.listing(replicaId), value: JSON.stringify({ ...listing, confirmed: true }) }] : []
    for (const key of await this.listedKeys(replicaId)) extra.push({ type: 'del', key })
    const logged = (await this.applyChanges(replicaId, { changes, hasMore: false }, undefined, extra)).logged
    this.listingsSettled.add(replicaId)
    return logged
  }

  private appendTail(replicaId: ReplicaId, first: number, entries: readonly LogEntry[]): void {
    let tail = this.tails.get(replicaId)
    if (!tail || tail.first + tail.entries.length !== first) {
      tail = { first, entries: [] }
      this.tails.set(replicaId, tail)
    }
    for (const entry of entries) tail.entries.push(entry)
    const excess = tail.entries.length - LOG_TAIL_MAX
    if (excess > 0) {
      tail.entries.splice(0, excess)
      tail.first += excess
    }
  }

  /** Log entries with `seq > afterSeq`, oldest first, at most `limit`. */
  async readLog(replicaId: ReplicaId, afterSeq: number, limit = Infinity): Promise<LogEntry[]> {
    const out: LogEntry[] = []
    const tail = this.tails.get(replicaId)
    const head = this.heads.get(replicaId)
    if (tail && head !== undefined && afterSeq + 1 >= tail.first && tail.first + tail.entries.length - 1 === head) {
      // the entries asked for are the newest ones, still in memory (shared, frozen)
      const end = Math.min(tail.entries.length, afterSeq + 1 - tail.first + limit)
      for (let i = Math.max(0, afterSeq + 1 - tail.first); i < end; i++) out.push(tail.entries[i]!)
      return out
    }
    await this.flush()
    const iterator = this.db.values({ gt: keys.log(replicaId, afterSeq), lt: prefixEnd(keys.logPrefix(replicaId)), limit: Number.isFinite(limit) ? limit : -1 })
    try {
      for (;;) {
        const chunk = await iterator.nextv(1000)
        if (chunk.length === 0) break
        for (const raw of chunk) out.push(JSON.parse(raw) as LogEntry)
      }
    } finally {
      await iterator.close()
    }
    return out
  }

  /**
   * Deletes log entries up to and including `uptoSeq` (all pairs must have merged them). The head
   * is kept, so sequence numbers never repeat.
   */
  async compactLog(replicaId: ReplicaId, uptoSeq: number): Promise<void> {
    await this.flush()
    this.beforeWrite?.(1)
    this.tails.delete(replicaId)
    await this.db.clear({ gte: keys.logPrefix(replicaId), lte: keys.log(replicaId, uptoSeq) })
  }

  // ── snapshots and links ────────────────────────────────────────────────────────────────────

  getSnapshot(replicaId: ReplicaId, nativeId: NativeId): Promise<Snapshot | undefined> {
    return this.getJson<Snapshot>(keys.snapshot(replicaId, nativeId))
  }

  getLink(concordId: ConcordId): Promise<LinkRecord | undefined> {
    return this.getJson<LinkRecord>(keys.link(concordId))
  }

  getLinks(concordIds: readonly ConcordId[]): Promise<Array<LinkRecord | undefined>> {
    return this.getManyJson<LinkRecord>(concordIds.map((c) => keys.link(c)))
  }

  getSnapshots(replicaId: ReplicaId, nativeIds: readonly NativeId[]): Promise<Array<Snapshot | undefined>> {
    return this.getManyJson<Snapshot>(nativeIds.map((n) => keys.snapshot(replicaId, n)))
  }

  /** Every live snapshot of a replica (for resync checks and tests). */
  async listSnapshots(replicaId: ReplicaId): Promise<Array<{ nativeId: NativeId; snapshot: Snapshot }>> {
    const prefix = keys.snapshotPrefix(replicaId)
    const out: Array<{ nativeId: NativeId; snapshot: Snapshot }> = []
    await this.flush()
    for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefixEnd(prefix) })) {
      const snapshot = JSON.parse(value) as Snapshot
      if (!snapshot.deleted) out.push({ nativeId: String(key).slice(prefix.length) as NativeId, snapshot })
    }
    return out
  }

  // ── pairs: base, watermarks, outbox ────────────────────────────────────────────────────────

  getBase(pairId: PairId, concordId: ConcordId): Promise<BaseRecord | undefined> {
    return this.getJson<BaseRecord>(keys.base(pairId, concordId))
  }

  getBases(pairId: PairId, concordIds: readonly ConcordId[]): Promise<Array<BaseRecord | undefined>> {
    return this.getManyJson<BaseRecord>(concordIds.map((c) => keys.base(pairId, c)))
  }

  async listBases(pairId: PairId): Promise<Array<{ concordId: ConcordId; base: BaseRecord }>> {
    const prefix = keys.basePrefix(pairId)
    const out: Array<{ concordId: ConcordId; base: BaseRecord }> = []
    await this.flush()
    for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefixEnd(prefix) })) {
      out.push({ concordId: String(key).slice(prefix.length) as ConcordId, base: JSON.parse(value) as BaseRecord })
    }
    return out
  }

  async getWatermark(pairId: PairId, replicaId: ReplicaId): Promise<number> {
    await this.flush()
    const raw = await this.db.get(keys.watermark(pairId, replicaId))
    return raw === undefined ? 0 : Number(raw)
  }

  async getOutboxEntry(pairId: PairId, target: ReplicaId, concordId: ConcordId): Promise<OutboxEntry | undefined> {
    return (await this.getManyDecoded([keys.outbox(pairId, target, concordId)], decodeOutboxEntry))[0]
  }

  async listOutbox(pairId: PairId, target: ReplicaId): Promise<OutboxEntry[]> {
    const prefix = keys.outboxPrefix(pairId, target)
    let outbox = this.outboxes.get(prefix)
    if (!outbox) {
      await this.flush()
      const epoch = this.epoch
      const loaded = new Map<string, { raw: string; entry?: OutboxEntry }>()
      for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefixEnd(prefix) })) loaded.set(String(key), { raw: value })
      if (epoch !== this.epoch || this.cacheLimit <= 0) return [...loaded.values()].map(({ raw }) => decodeOutboxEntry(raw))
      outbox = loaded
      this.outboxes.set(prefix, outbox)
    }
    if (outbox.size === 0) return []
    // Shared between calls, so frozen: a caller that changes an entry must copy it (as every writer does).
    if (outbox.size === 1) {
      const only = outbox.values().next().value!
      return [(only.entry ??= deepFreeze(decodeOutboxEntry(only.raw)))]
    }
    // key order, as the database lists them
    const sorted = [...outbox].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    return sorted.map(([, slot]) => (slot.entry ??= deepFreeze(decodeOutboxEntry(slot.raw))))
  }

  /**
   * Commits the result of merging a batch of log entries in one write: new or coalesced outbox
   * entries, bases that changed without a push (both sides already agree), and the advanced merge
   * watermarks. A crash before this write re-merges the same entries; after it, the outbox holds
   * every push still owed.
   */
  async commitPlan(
    pairId: PairId,
    plan: {
      outbox: readonly OutboxEntry[]
      bases: ReadonlyArray<{ concordId: ConcordId; base: BaseRecord | null }>
      watermarks: Partial<Record<ReplicaId, number>>
      /** Outbox entries the plan supersedes (re-merged ops whose decision needs no write). */
      retire?: ReadonlyArray<{ target: ReplicaId; concordId: ConcordId }> | undefined
      /** Deletes held by the mass-deletion guard. */
      quarantine?: readonly QuarantineRecord[] | undefined
      /** Latest field decisions per item, for `explain`. */
      explain?: ReadonlyArray<{ concordId: ConcordId; record: ExplainRecord }> | undefined
      /** Conflicts kept for the user (`keep-both`). */
      conflicts?: readonly ConflictListRecord[] | undefined
    },
  ): Promise<void> {
    assertKeyPart(pairId, 'pairId')
    const ops: BatchOp[] = []
    for (const record of plan.quarantine ?? []) ops.push({ type: 'put', key: keys.quarantine(pairId, record.id), value: JSON.stringify(record) })
    for (const record of plan.conflicts ?? []) ops.push({ type: 'put', key: keys.conflict(pairId, record.concordId), value: JSON.stringify(record) })
    for (const { concordId, record } of plan.explain ?? []) ops.push(putDecoded(keys.explain(pairId, concordId), record, encodeExplain))
    for (const { target, concordId } of plan.retire ?? []) ops.push({ type: 'del', key: keys.outbox(pairId, target, concordId) })
    ops.push(...this.outboxPuts(pairId, plan.outbox))
    for (const { concordId, base } of plan.bases) {
      ops.push(base === null ? { type: 'del', key: keys.base(pairId, concordId) } : putDecoded(keys.base(pairId, concordId), base))
    }
    for (const [replicaId, seq] of Object.entries(plan.watermarks) as Array<[ReplicaId, number]>) {
      ops.push({ type: 'put', key: keys.watermark(pairId, replicaId), value: String(seq) })
    }
    await this.write(ops)
  }

  /**
   * Retires an acknowledged push together with its effects, in one write: the base takes the
   * agreed fields, the link and the target's snapshot take the new native id and version (so the
   * echo of our own write is not seen as a change).
   */
  async ackPush(entry: OutboxEntry, applied: PushApplied): Promise<void> {
    await this.ackPushes([{ entry, applied }])
  }

  /**
   * Retires acknowledged pushes of one target (each item at most once) in one write: the base takes
   * the agreed fields, the links and the target's snapshots take the new native ids and versions
   * (so the echo of our own write is not seen as a change), deletes leave a tombstone.
   */
  ackPushes(acks: ReadonlyArray<{ entry: OutboxEntry; applied: PushApplied }>): Promise<void> {
    return acks.length === 0 ? Promise.resolve() : this.exclusive(() => this.ackPushesNow(acks))
  }

  private async ackPushesNow(acks: ReadonlyArray<{ entry: OutboxEntry; applied: PushApplied }>): Promise<void> {
    const ids = acks.map(({ entry }) => entry.op.concordId)
    const [links, bases] = await Promise.all([this.getLinks(ids), this.getBases(acks[0]!.entry.pairId, ids)])
    const ops: BatchOp[] = []
    for (const [i, { entry, applied }] of acks.entries()) {
      const { pairId, target, op } = entry
      ops.push({ type: 'del', key: keys.outbox(pairId, target, op.concordId) })
      const link = editableLink(links[i], op.kind)
      const base = bases[i]
      let linkUnchanged = false
      if (op.type === 'delete') {
        const nativeId = op.nativeId ?? link.natives[target]
        delete link.natives[target]
        if (nativeId !== undefined) {
          const snap = await this.getSnapshot(target, nativeId)
          if (snap) ops.push({ type: 'put', key: keys.snapshot(target, nativeId), value: JSON.stringify({ ...snap, deleted: true }) })
        }
        ops.push({ type: 'del', key: keys.base(pairId, op.concordId) })
        if (base) {
          const tombstone: TombstoneRecord = { concordId: op.concordId, kind: op.kind, fields: base.fields, deletedAt: this.now(), target, provenance: op.provenance }
          ops.push({ type: 'put', key: keys.tombstone(pairId, op.concordId), value: JSON.stringify(tombstone) })
        }
      } else {
        const nativeId = applied.nativeId ?? (op.type === 'update' ? op.nativeId : undefined)
        if (nativeId === undefined) throw new SyncError('InvalidRemoteData', `Push ${op.opId} (create) was acknowledged without a native id`)
        const previous = link.natives[target]
        if (previous !== undefined && previous !== nativeId) {
          const old = await this.getSnapshot(target, previous)
          if (old) ops.push({ type: 'put', key: keys.snapshot(target, previous), value: JSON.stringify({ ...old, deleted: true }) })
        }
        if (links[i] !== undefined && previous === nativeId) linkUnchanged = true
        link.natives[target] = nativeId
        const next = withAgreedFields(base, op.kind, entry.agreed)
        if (applied.version !== undefined) next.versions[target] = applied.version
        if (entry.sourceReplica !== undefined && entry.sourceVersion !== undefined) next.versions[entry.sourceReplica] = entry.sourceVersion
        ops.push(putDecoded(keys.base(pairId, op.concordId), next))
        if (applied.version !== undefined) {
          const snapshot: Snapshot = { concordId: op.concordId, kind: op.kind, version: applied.version, hash: applied.fields ? hashFields(applied.fields) : '' }
          ops.push(putDecoded(keys.snapshot(target, nativeId), snapshot))
        }
      }
      if (!linkUnchanged) ops.push(putDecoded(keys.link(op.concordId), link))
    }
    await this.write(ops)
  }

  // ── quarantine, tombstones, explain ────────────────────────────────────────────────────────

  async listQuarantine(pairId: PairId): Promise<QuarantineRecord[]> {
    return this.listJson<QuarantineRecord>(keys.quarantinePrefix(pairId))
  }

  getQuarantine(pairId: PairId, id: string): Promise<QuarantineRecord | undefined> {
    return this.getJson<QuarantineRecord>(keys.quarantine(pairId, id))
  }

  /** Ends a quarantine in one write: its record goes, and `outbox` (the confirmed deletes, or the restores) is queued. */
  async resolveQuarantine(pairId: PairId, id: string, outbox: readonly OutboxEntry[]): Promise<void> {
    const ops: BatchOp[] = [{ type: 'del', key: keys.quarantine(pairId, id) }]
    ops.push(...this.outboxPuts(pairId, outbox))
    await this.write(ops)
  }

  async listTombstones(pairId: PairId): Promise<TombstoneRecord[]> {
    return this.listJson<TombstoneRecord>(keys.tombstonePrefix(pairId))
  }

  getTombstone(pairId: PairId, concordId: ConcordId): Promise<TombstoneRecord | undefined> {
    return this.getJson<TombstoneRecord>(keys.tombstone(pairId, concordId))
  }

  /** Drops tombstones older than `before` (ms), so the undo window is bounded. */
  async pruneTombstones(pairId: PairId, before: number): Promise<number> {
    const old = (await this.listTombstones(pairId)).filter((t) => t.deletedAt < before)
    await this.write(old.map((t) => ({ type: 'del' as const, key: keys.tombstone(pairId, t.concordId) })))
    return old.length
  }

  /** Queues the pushes that undo a delete, and removes its tombstone, in one write. */
  async restoreTombstone(pairId: PairId, concordId: ConcordId, outbox: readonly OutboxEntry[]): Promise<void> {
    const ops: BatchOp[] = [{ type: 'del', key: keys.tombstone(pairId, concordId) }]
    ops.push(...this.outboxPuts(pairId, outbox))
    await this.write(ops)
  }

  listConflicts(pairId: PairId): Promise<ConflictListRecord[]> {
    return this.listJson<ConflictListRecord>(keys.conflictPrefix(pairId))
  }

  getConflicts(pairId: PairId, concordId: ConcordId): Promise<ConflictListRecord | undefined> {
    return this.getJson<ConflictListRecord>(keys.conflict(pairId, concordId))
  }

  /** Replaces (or with `null` removes) an item's open conflicts and queues `outbox`, in one write. */
  async settleConflicts(pairId: PairId, concordId: ConcordId, remaining: ConflictListRecord | null, outbox: readonly OutboxEntry[]): Promise<void> {
    const ops: BatchOp[] = [remaining ? { type: 'put', key: keys.conflict(pairId, concordId), value: JSON.stringify(remaining) } : { type: 'del', key: keys.conflict(pairId, concordId) }]
    ops.push(...this.outboxPuts(pairId, outbox))
    await this.write(ops)
  }

  async getExplainMany(pairId: PairId, concordIds: readonly ConcordId[]): Promise<Array<ExplainRecord | undefined>> {
    if (concordIds.length === 0) return []
    return this.getManyDecoded(concordIds.map((c) => keys.explain(pairId, c)), decodeExplain)
  }

  async getExplain(pairId: PairId, concordId: ConcordId): Promise<ExplainRecord | undefined> {
    return (await this.getExplainMany(pairId, [concordId]))[0]
  }

  /** Number of items the pair has agreed on (its linked items): the denominator of the deletion guard. */
  async countBases(pairId: PairId): Promise<number> {
    const prefix = keys.basePrefix(pairId)
    let n = 0
    await this.flush()
    for await (const _ of this.db.keys({ gte: prefix, lt: prefixEnd(prefix) })) n++
    return n
  }

  private async listJson<T>(prefix: string): Promise<T[]> {
    const out: T[] = []
    await this.flush()
    for await (const value of this.db.values({ gte: prefix, lt: prefixEnd(prefix) })) out.push(JSON.parse(value) as T)
    return out
  }

  /**
   * Records a failed push: `retry` keeps it for another attempt (counted); `remerge` marks it to be
   * merged again against the remote's newer state (see `OutboxEntry.remerge`).
   */
  async settlePushFailure(entry: OutboxEntry, error: SyncError, disposition: 'retry' | 'remerge'): Promise<void> {
    const key = keys.outbox(entry.pairId, entry.target, entry.op.concordId)
    const lastError = { code: error.code, message: error.message }
    const next: OutboxEntry = disposition === 'remerge' ? { ...entry, remerge: true, lastError } : { ...entry, attempts: entry.attempts + 1, lastError }
    await this.write([{ type: 'put', key, value: encodeOutboxEntry(next) }])
  }
}
