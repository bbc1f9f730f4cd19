import { type ConcordId, type NativeId, type PullOptions, type PullPage, type PushOp, type PushOptions, type PushResult, type ReplicaAdapter, type ReplicaId, type Cursor, type Fields, type ItemKind, ThrottledError } from '@concord/engine'
import { type MemoryAdapterState, type MemoryFaults, type MemoryRemoteState, MemoryRemote, MemoryReplicaAdapter } from '@concord/engine/testing'

/** A `MemoryRemote` with an index from stamped Concord id to native id (the real services look this up by key too). */
export class SimRemote extends MemoryRemote {
  private readonly byConcord = new Map<ConcordId, NativeId>()

  override create(kind: ItemKind, fields: Fields, concordId?: ConcordId): NativeId {
    const id = super.create(kind, fields, concordId)
    if (concordId !== undefined) this.byConcord.set(concordId, id)
    return id
  }

  override move(nativeId: NativeId): NativeId {
    const concordId = this.live(nativeId).concordId
    const moved = super.move(nativeId)
    if (concordId !== undefined) this.byConcord.set(concordId, moved)
    return moved
  }

  override exportState(): SimRemoteState {
    return { ...super.exportState(), byConcord: this.byConcord }
  }

  protected override takeState(state: MemoryRemoteState): void {
    super.takeState(state)
    for (const [concordId, nativeId] of (state as SimRemoteState).byConcord) this.byConcord.set(concordId, nativeId)
  }

  override findByConcordId(concordId: ConcordId): ReturnType<MemoryRemote['get']> {
    const id = this.byConcord.get(concordId)
    const record = id === undefined ? undefined : this.get(id)
    return record && record.concordId === concordId ? record : undefined
  }
}

/** A {@link SimRemote}'s state as data. */
export interface SimRemoteState extends MemoryRemoteState {
  byConcord: Map<ConcordId, NativeId>
}

/** A {@link SimAdapter}'s state as data (with its remote's, exported apart). */
export interface SimAdapterState {
  replicaId: ReplicaId
  limit: ServiceLimit
  calls: number
  throttled: number
  tokenRefreshes: number
  window: number[]
  tokenExpiresAt: number
  inner: MemoryAdapterState
}

/** Service limits of one side in virtual time. */
export interface ServiceLimit {
  requestsPerWindow: number
  windowMs: number
}

/** Graph: 10,000 requests per 10 minutes per app and mailbox (performance.md §3a). */
export const GRAPH_LIMIT: ServiceLimit = { requestsPerWindow: 10_000, windowMs: 10 * 60_000 }
/** Dataverse: 6,000 requests per 5-minute sliding window per user (performance.md §3e). */
export const DATAVERSE_LIMIT: ServiceLimit = { requestsPerWindow: 6_000, windowMs: 5 * 60_000 }

/**
 * A replica adapter over a `SimRemote` that behaves like the service in virtual time: every call is
 * counted, a sliding-window request budget answers 429 with Retry-After when exceeded, and the
 * OAuth token expires every hour (a refresh is one extra call to the identity platform). Paging,
 * replayed pages, duplicates and expired delta tokens come from `MemoryReplicaAdapter`'s seeded faults.
 */
export class SimAdapter implements ReplicaAdapter {
  readonly inner: MemoryReplicaAdapter
  calls = 0
  throttled = 0
  tokenRefreshes = 0
  private readonly window: number[] = []
  private windowHead = 0
  private tokenExpiresAt = -Infinity

  constructor(
    readonly replicaId: ReplicaId,
    readonly remote: SimRemote,
    private readonly clock: () => number,
    private readonly limit: ServiceLimit,
    options: { faults?: MemoryFaults; seed: number } | { inner: MemoryReplicaAdapter },
  ) {
    this.inner = 'inner' in options ? options.inner : new MemoryReplicaAdapter(replicaId, remote, { faults: options.faults, seed: options.seed })
  }

  /** An adapter over `remote` (a clone of this one's remote) that continues this one's counters, request window, token and fault draws. */
  clone(remote: SimRemote, clock: () => number): SimAdapter {
    return SimAdapter.fromState(this.exportState(), remote, clock)
  }

  /** This adapter's counters, request window, token and fault draws as data (see {@link SimAdapter.fromState}). */
  exportState(): SimAdapterState {
    return { replicaId: this.replicaId, limit: this.limit, calls: this.calls, throttled: this.throttled, tokenRefreshes: this.tokenRefreshes, window: this.window.slice(this.windowHead), tokenExpiresAt: this.tokenExpiresAt, inner: this.inner.exportState() }
  }

  /** An adapter over `remote` (rebuilt from the exported remote's state) that continues the exported adapter. */
  static fromState(state: SimAdapterState, remote: SimRemote, clock: () => number): SimAdapter {
    const adapter = new SimAdapter(state.replicaId, remote, clock, state.limit, { inner: MemoryReplicaAdapter.fromState(state.inner, remote) })
    adapter.calls = state.calls
    adapter.throttled = state.throttled
    adapter.tokenRefreshes = state.tokenRefreshes
    for (const t of state.window) adapter.window.push(t)
    adapter.tokenExpiresAt = state.tokenExpiresAt
    return adapter
  }

  /** Admits one request at the current virtual time or throws a 429 with Retry-After. */
  private admit(): void {
    const now = this.clock()
    if (now >= this.tokenExpiresAt) {
      this.tokenRefreshes++
      this.tokenExpiresAt = now + 60 * 60_000
    }
    while (this.windowHead < this.window.length && this.window[this.windowHead]! <= now - this.limit.windowMs) this.windowHead++
    if (this.windowHead > 4096) {
      this.window.splice(0, this.windowHead)
      this.windowHead = 0
    }
    if (this.window.length - this.windowHead >= this.limit.requestsPerWindow) {
      this.throttled++
      throw new ThrottledError(Math.max(1000, this.window[this.windowHead]! + this.limit.windowMs - now))
    }
    this.window.push(now)
    this.calls++
  }

  async pull(cursor: Cursor | null, options: PullOptions): Promise<PullPage> {
    this.admit()
    return this.inner.pull(cursor, options)
  }

  async push(ops: readonly PushOp[], _options?: PushOptions): Promise<PushResult> {
    this.admit()
    return this.inner.push(ops)
  }

  async confirmMissing(nativeIds: readonly NativeId[]): Promise<NativeId[]> {
    this.admit()
    return this.inner.confirmMissing(nativeIds)
  }
}
