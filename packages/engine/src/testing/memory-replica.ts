import type { DeleteProvenance, RecordMeta, PullOptions, PullPage, PushApplied, PushOp, PushRejected, PushResult, RemoteChange, ReplicaAdapter } from '../contract/replica-adapter.js'
import { CursorExpiredError, PreconditionFailedError, SyncError, ThrottledError } from '../errors.js'
import { type ConcordId, type Cursor, type NativeId, type OpId, type ReplicaId, type Version, asCursor, asNativeId, asVersion } from '../ids.js'
import type { Fields, ItemKind } from '../model/item.js'
import { type SeededRandom, seededRandom } from '../util/random.js'
import { cloneJson } from '../util/canonical-json.js'
import { deepFreeze } from '../util/deep-freeze.js'

export interface RemoteRecord {
  nativeId: NativeId
  kind: ItemKind
  /**
   * Never changed in place (deeply frozen; a write replaces it), so pulled changes and acknowledgements
   * hand it out as it is, as a service hands out a copy. Written fields that are already frozen are kept
   * as they are, shared with the writer, not copied.
   */
  fields: Fields
  version: Version
  concordId?: ConcordId | undefined
  modifiedAt: number
  deleted: boolean
  deleteProvenance?: DeleteProvenance | undefined
  meta?: RecordMeta | undefined
}

/** A {@link MemoryRemote}'s state as data ({@link MemoryRemote.exportState}). */
export interface MemoryRemoteState {
  name: string
  records: Map<NativeId, RemoteRecord>
  /** The change feed: the record changed by change n at index n − 1. */
  changes: NativeId[]
  seq: number
  nextId: number
  versionCounter: number
  epoch: number
  appliedOps: Map<OpId, PushApplied>
  pushWrites: number
}

/**
 * An in-memory remote system (the "server" side of a fake replica). It outlives adapters, so a
 * test can crash and restart the engine while the remote keeps its state, like a real service.
 * People's edits go through `create`/`update`/`remove`/`move`/`touch`.
 */
export class MemoryRemote {
  readonly records = new Map<NativeId, RemoteRecord>()
  /** The change feed from seq 1 on, in order: the record changed by change n at index n − 1 (its seq is its place). */
  private changes: NativeId[] = []
  private seq = 0
  private nextId = 1
  private versionCounter = 1
  /** Bumped by `expireCursors()`: older cursors raise `CursorExpiredError`. */
  epoch = 1
  readonly appliedOps = new Map<OpId, PushApplied>()
  /** Count of remote writes made by pushes (for duplicate / idempotency assertions). */
  pushWrites = 0

  constructor(
    readonly name: string,
    private readonly clock: () => number = () => 0,
  ) {}

  /**
   * An independent copy of this remote as it is now (records, change feed, versions, applied ops), whose
   * timestamps come from `clock`. Subclasses that keep more state extend {@link exportState} and {@link takeState}.
   */
  clone(clock: () => number = this.clock): this {
    const copy = new (this.constructor as new (name: string, clock: () => number) => this)(this.name, clock)
    const state = this.exportState()
    // (records are replaced on write, never changed in place, except for their metadata)
    const records = new Map([...state.records].map(([id, record]) => [id, { ...record, meta: record.meta && cloneJson(record.meta) }]))
    copy.takeState({ ...state, records, changes: state.changes.slice() }) // (takeState copies the applied ops)
    return copy
  }

  /** This remote's state as structured-cloneable data (records, change feed, versions, applied ops), shared, not copied: {@link MemoryRemote.fromState} rebuilds it, in another process say. */
  exportState(): MemoryRemoteState {
    return { name: this.name, records: this.records, changes: this.changes, seq: this.seq, nextId: this.nextId, versionCounter: this.versionCounter, epoch: this.epoch, appliedOps: this.appliedOps, pushWrites: this.pushWrites }
  }

  /** A remote with `state` (from {@link exportState}, structured-cloned; taken over, not copied), whose timestamps come from `clock`. */
  static fromState<T extends MemoryRemote>(this: new (name: string, clock: () => number) => T, state: MemoryRemoteState, clock: () => number): T {
    const remote = new this(state.name, clock)
    remote.takeState(state)
    return remote
  }

  /** Takes over `state` (a fresh instance, from {@link clone} or {@link fromState}). */
  protected takeState(state: MemoryRemoteState): void {
    for (const [id, record] of state.records) {
      deepFreeze(record.fields) // (structured cloning does not keep them frozen)
      this.records.set(id, record)
    }
    this.changes = state.changes
    this.seq = state.seq
    this.nextId = state.nextId
    this.versionCounter = state.versionCounter
    this.epoch = state.epoch
    for (const [opId, applied] of state.appliedOps) this.appliedOps.set(opId, applied)
    this.pushWrites = state.pushWrites
  }

  private bump(nativeId: NativeId): void {
    this.changes.push(nativeId)
    this.seq++
  }

  private newVersion(): Version {
    return asVersion(`${this.name}-v${this.versionCounter++}`)
  }

  get headSeq(): number {
    return this.seq
  }

  /** The changes after `seq`, oldest first, at most `limit` of them. */
  changesAfter(seq: number, limit = Infinity): Array<{ seq: number; nativeId: NativeId }> {
    const from = Math.max(0, Math.min(this.changes.length, Math.floor(seq)))
    const to = Math.min(this.changes.length, from + limit)
    const out: Array<{ seq: number; nativeId: NativeId }> = []
    for (let i = from; i < to; i++) out.push({ seq: i + 1, nativeId: this.changes[i]! })
    return out
  }

  create(kind: ItemKind, fields: Fields, concordId?: ConcordId, meta?: RecordMeta): NativeId {
    const nativeId = asNativeId(`${this.name}-${this.nextId++}`)
    this.records.set(nativeId, { nativeId, kind, fields: deepFreeze(cloneJson(fields)), version: this.newVersion(), concordId, modifiedAt: this.clock(), deleted: false, meta })
    this.bump(nativeId)
    return nativeId
  }

  update(nativeId: NativeId, patch: Fields): Version {
    const record = this.live(nativeId)
    record.fields = deepFreeze({ ...record.fields, ...cloneJson(patch) })
    record.version = this.newVersion()
    record.modifiedAt = this.clock()
    this.bump(nativeId)
    return record.version
  }

  /** Changes what the remote knows about a record besides its fields (owner, tracked…): a new version. */
  setMeta(nativeId: NativeId, meta: RecordMeta): void {
    const record = this.live(nativeId)
    record.meta = { ...record.meta, ...meta }
    record.version = this.newVersion()
    record.modifiedAt = this.clock()
    this.bump(nativeId)
  }

  /** A write that changes the version but not the content (Exchange does this on open). */
  touch(nativeId: NativeId): void {
    const record = this.live(nativeId)
    record.version = this.newVersion()
    this.bump(nativeId)
  }

  remove(nativeId: NativeId, provenance: DeleteProvenance = 'user-deleted'): void {
    const record = this.live(nativeId)
    record.deleted = true
    record.deleteProvenance = provenance
    record.version = this.newVersion()
    this.bump(nativeId)
  }

  /** Moves a record: it gets a new native id and keeps its stamped Concord id (Graph move without immutable ids). */
  move(nativeId: NativeId): NativeId {
    const record = this.live(nativeId)
    this.remove(nativeId)
    const moved = asNativeId(`${this.name}-${this.nextId++}`)
    this.records.set(moved, { ...record, nativeId: moved, version: this.newVersion(), deleted: false })
    this.bump(moved)
    return moved
  }

  expireCursors(): void {
    this.epoch++
  }

  get(nativeId: NativeId): RemoteRecord | undefined {
    const record = this.records.get(nativeId)
    return record && !record.deleted ? record : undefined
  }

  live(nativeId: NativeId): RemoteRecord {
    const record = this.get(nativeId)
    if (!record) throw new SyncError('NotFound', `${this.name}: no record ${nativeId}`)
    return record
  }

  liveRecords(): RemoteRecord[] {
    return [...this.records.values()].filter((r) => !r.deleted)
  }

  findByConcordId(concordId: ConcordId): RemoteRecord | undefined {
    for (const record of this.records.values()) if (!record.deleted && record.concordId === concordId) return record
    return undefined
  }

  applyPush(op: PushOp): PushApplied {
    const done = this.appliedOps.get(op.opId)
    if (done) return done
    let applied: PushApplied
    switch (op.type) {
      case 'create': {
        const existing = this.findByConcordId(op.concordId)
        if (existing) {
          applied = { opId: op.opId, nativeId: existing.nativeId, version: existing.version, fields: existing.fields }
          break
        }
        const nativeId = this.create(op.kind, op.fields, op.concordId)
        this.pushWrites++
        const record = this.live(nativeId)
        applied = { opId: op.opId, nativeId, version: record.version, fields: record.fields }
        break
      }
      case 'update': {
        const record = this.get(op.nativeId)
        if (!record) throw new SyncError('NotFound', `${this.name}: no record ${op.nativeId}`)
        if (op.ifMatch !== undefined && op.ifMatch !== record.version) throw new PreconditionFailedError()
        this.update(op.nativeId, op.fields)
        this.pushWrites++
        applied = { opId: op.opId, nativeId: op.nativeId, version: record.version, fields: record.fields }
        break
      }
      case 'delete': {
        const record = op.nativeId !== undefined ? this.get(op.nativeId) : this.findByConcordId(op.concordId)
        if (record) {
          if (op.ifMatch !== undefined && op.ifMatch !== record.version) throw new PreconditionFailedError()
          this.remove(record.nativeId, op.provenance)
          this.pushWrites++
        }
        applied = { opId: op.opId }
        break
      }
    }
    this.appliedOps.set(op.opId, applied)
    return applied
  }
}

/** Faults a `MemoryReplicaAdapter` injects, each drawn from a seeded RNG. */
export interface MemoryFaults {
  /** Probability that a page's cursor is rolled back, so the next page replays part of it. */
  replayPage?: number | undefined
  /** Probability that a page's changes are shuffled and one is duplicated. */
  reorderAndDuplicate?: number | undefined
  /** Probability that a call is throttled (429). */
  throttle?: number | undefined
  /** Probability that a push is applied remotely but its response is lost (connection reset). */
  loseAck?: number | undefined
  /** Probability that an incremental pull finds its cursor expired. */
  expireCursor?: number | undefined
}

/** A {@link MemoryReplicaAdapter}'s state as data ({@link MemoryReplicaAdapter.exportState}). */
export interface MemoryAdapterState {
  replicaId: ReplicaId
  faults: MemoryFaults
  random: number
  injected: MemoryReplicaAdapter['injected']
  forcedThrottles: number
}

type CursorState = { e: number; s: number } | { e: number; full: true; at: number; after: string }

/**
 * A `ReplicaAdapter` over a `MemoryRemote`, with seeded fault injection: replayed and duplicated
 * pages, reordering, 429s, lost push acknowledgements and expired cursors.
 */
export class MemoryReplicaAdapter implements ReplicaAdapter {
  private random: SeededRandom
  private readonly faults: MemoryFaults
  /** Calls that each fault actually disturbed, for tests that assert faults happened. */
  readonly injected = { replayPage: 0, reorderAndDuplicate: 0, throttle: 0, loseAck: 0, expireCursor: 0 }
  private forcedThrottles = 0

  constructor(
    readonly replicaId: ReplicaId,
    readonly remote: MemoryRemote,
    options: { faults?: MemoryFaults | undefined; seed?: number | undefined } = {},
  ) {
    this.faults = options.faults ?? {}
    this.random = seededRandom(options.seed ?? 1)
  }

  /** An adapter over `remote` (usually a {@link MemoryRemote.clone} of this one's) that continues this one's fault draws and counters. */
  clone(remote: MemoryRemote): MemoryReplicaAdapter {
    return MemoryReplicaAdapter.fromState(this.exportState(), remote)
  }

  /** This adapter's fault draws and counters as data: {@link MemoryReplicaAdapter.fromState} continues them over a remote rebuilt from its state. */
  exportState(): MemoryAdapterState {
    return { replicaId: this.replicaId, faults: this.faults, random: this.random.state(), injected: { ...this.injected }, forcedThrottles: this.forcedThrottles }
  }

  /** An adapter over `remote` that continues the exported one's fault draws and counters. */
  static fromState(state: MemoryAdapterState, remote: MemoryRemote): MemoryReplicaAdapter {
    const adapter = new MemoryReplicaAdapter(state.replicaId, remote, { faults: state.faults, seed: state.random })
    Object.assign(adapter.injected, state.injected)
    adapter.forcedThrottles = state.forcedThrottles
    return adapter
  }

  /** The next `n` calls answer 429. */
  throttleNext(n: number): void {
    this.forcedThrottles += n
  }

  private roll(fault: keyof MemoryFaults): boolean {
    const p = this.faults[fault] ?? 0
    if (p > 0 && this.random() < p) {
      this.injected[fault]++
      return true
    }
    return false
  }

  private maybeThrottle(): void {
    if (this.forcedThrottles > 0) {
      this.forcedThrottles--
      throw new ThrottledError(1000)
    }
    if (this.roll('throttle')) throw new ThrottledError(Math.ceil(this.random() * 5) * 1000)
  }

  async pull(cursor: Cursor | null, options: PullOptions): Promise<PullPage> {
    this.maybeThrottle()
    const limit = Math.max(1, options.limit)
    const state: CursorState = cursor === null ? { e: this.remote.epoch, full: true, at: this.remote.headSeq, after: '' } : parseCursor(cursor)
    if (state.e !== this.remote.epoch || (!('full' in state) && this.roll('expireCursor'))) {
      if (state.e === this.remote.epoch) this.remote.expireCursors()
      throw new CursorExpiredError()
    }
    let page: PullPage
    if ('full' in state) {
      const ids = this.remote
        .liveRecords()
        .map((r) => r.nativeId)
        .filter((id) => id > state.after)
        .sort()
      const slice = ids.slice(0, limit)
      const changes = slice.map((id) => this.toChange(id))
      const done = slice.length === ids.length
      const last = slice.at(-1) ?? state.after
      page = { changes, hasMore: !done, fullListing: true, nextCursor: done ? formatCursor({ e: state.e, s: state.at }) : formatCursor({ e: state.e, full: true, at: state.at, after: last }) }
    } else {
      const slice = this.remote.changesAfter(state.s, limit)
      const seen = new Set<NativeId>()
      const changes: RemoteChange[] = []
      for (const { nativeId } of slice) {
        if (seen.has(nativeId)) continue
        seen.add(nativeId)
        changes.push(this.toChange(nativeId))
      }
      let nextSeq = slice.at(-1)?.seq ?? state.s
      if (slice.length > 1 && this.roll('replayPage')) nextSeq = slice[Math.floor(slice.length / 2)]!.seq
      page = { changes, hasMore: nextSeq < this.remote.headSeq, nextCursor: formatCursor({ e: state.e, s: nextSeq }) }
    }
    if (page.changes.length > 1 && this.roll('reorderAndDuplicate')) {
      const shuffled = [...page.changes]
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(this.random() * (i + 1))
        ;[shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!]
      }
      shuffled.push(shuffled[0]!) // the same state twice: Graph may repeat an item within a round
      page = { ...page, changes: shuffled }
    }
    return page
  }

  private toChange(nativeId: NativeId): RemoteChange {
    const record = this.remote.records.get(nativeId)!
    if (record.deleted) return { type: 'delete', nativeId, provenance: record.deleteProvenance ?? 'user-deleted' }
    return { type: 'upsert', nativeId, kind: record.kind, version: record.version, fields: record.fields, concordId: record.concordId, modifiedAt: record.modifiedAt, meta: record.meta }
  }

  async confirmMissing(nativeIds: readonly NativeId[]): Promise<NativeId[]> {
    this.maybeThrottle()
    return nativeIds.filter((id) => !this.remote.get(id))
  }

  async push(ops: readonly PushOp[]): Promise<PushResult> {
    this.maybeThrottle()
    const applied: PushApplied[] = []
    const rejected: PushRejected[] = []
    for (const op of ops) {
      try {
        applied.push(this.remote.applyPush(op))
      } catch (error) {
        if (error instanceof SyncError) rejected.push({ opId: op.opId, error })
        else throw error
      }
    }
    if (this.roll('loseAck')) throw new SyncError('Transient', `${this.remote.name}: connection reset before the response arrived`)
    return { applied, rejected }
  }
}

function formatCursor(state: CursorState): Cursor {
  return asCursor(JSON.stringify(state))
}

function parseCursor(cursor: Cursor): CursorState {
  try {
    const parsed = JSON.parse(cursor) as CursorState
    if (typeof parsed.e !== 'number') throw new Error('missing epoch')
    return parsed
  } catch (error) {
    throw new CursorExpiredError(`Unreadable cursor: ${(error as Error).message}`, {}, { cause: error })
  }
}
