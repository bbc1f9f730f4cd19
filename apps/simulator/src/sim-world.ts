import { cp } from 'node:fs/promises'
import { type ConcordId, type MergeStrategy, type NativeId, type ReplicaStore, type SeededRandom, type StoreCaches, type StoreDatabase, SyncPair, asPairId, asReplicaId, concordIdFor, jsonEqual, openMemoryStore, openMemoryStoreCopy, seededRandom } from '@concord/engine'
import { openLevelStore, settleLevelStore } from '@concord/engine/node'
import { initialSync } from './driver.js'
import { TimedHeap } from './heap.js'
import type { MailboxShard } from './policy-run.js'
import { type MergeModel, type ModelItem, modelCreate, modelWrite, settleModel } from './reference-model.js'
import { mixSeed, normal } from './rng.js'
import { newStoreDir, removeStoreDir } from './store-dirs.js'
import { DATAVERSE_LIMIT, GRAPH_LIMIT, type ServiceLimit, SimAdapter, SimRemote } from './sim-remote.js'
import { type Workload, type WorkloadEvent, type WorkloadSide, MIN, SIM_EPOCH } from './workload.js'

/** What a run's simulated systems are built from (a subset of `RunOptions`). */
export interface WorldOptions {
  workload: Workload
  seed: number
  store: 'leveldb' | 'memory'
  notifications: boolean
  notificationLoss: number
  warmupMs: number
  merge: () => MergeStrategy
  model: MergeModel
  limits?: { graph?: ServiceLimit | undefined; dataverse?: ServiceLimit | undefined } | undefined
}

export interface Pending {
  t: number
  item: string
  side: WorkloadSide
  op: WorkloadEvent['op']
  fields: string[]
  measured: boolean
}

/** The reference model of an item plus where its origin record lives. */
export interface ItemState extends ModelItem {
  native: NativeId
}

/** One mailbox: its two remotes and adapters, its engine pair, its reference model and its measurements. */
export interface Box {
  id: string
  index: number
  items: Map<string, ItemState>
  dirty: Set<string>
  pending: Pending[]
  crmPending: number
  stalenessSum: number
  measured: number
  changes: number
  crm: SimRemote
  mbx: SimRemote
  crmAdapter: SimAdapter
  mbxAdapter: SimAdapter
  pair: SyncPair
  /** Warm-up: changes applied since the last warm-up sync (all, and of them on the CRM side). */
  warmChanges: number
  warmCrmChanges: number
}

export const SIDES: readonly WorkloadSide[] = ['crm', 'mailbox']
const FAULTS = { replayPage: 0.02, reorderAndDuplicate: 0.02, expireCursor: 0.001 }
/** A run writes ≈ 0.4 MB per mailbox-day: a larger write buffer spares LevelDB most of its compactions (see `LevelOptions`). */
const LEVEL_OPTIONS = { writeBufferSize: 64 * 1024 * 1024 }

/** Where a world's store lives: a LevelDB directory (deleted with the world) or a memory-level database. */
type Storage = { dir: string } | { db: StoreDatabase }

/** Opens a world's store: empty, or a copy of a closed world's store resumed with its caches. */
async function openStorage(options: WorldOptions, clock: () => number, copy?: { from: Storage; caches: StoreCaches }): Promise<{ store: ReplicaStore; storage: Storage }> {
  // Group commit: one batch per cycle that pushes (see ReplicaStore). The read cache holds a run's
  // hot records (a few thousand keys per mailbox-day), so cycles rarely wait for the database.
  const storeOptions = { now: clock, groupCommit: true, cacheEntries: Math.max(100_000, 4_000 * options.workload.mailboxes.length), resumeCaches: copy?.caches }
  if (copy && 'db' in copy.from) {
    const { store, db } = await openMemoryStoreCopy(copy.from.db, storeOptions)
    return { store, storage: { db } }
  }
  if (options.store === 'memory') {
    const { store, db } = await openMemoryStore(storeOptions)
    return { store, storage: { db } }
  }
  const dir = await newStoreDir('store-')
  if (copy && 'dir' in copy.from) await cp(copy.from.dir, dir, { recursive: true })
  return { store: (await openLevelStore(dir, storeOptions, LEVEL_OPTIONS)).store, storage: { dir } }
}

/**
 * The simulated systems of one real-engine run in virtual time: per mailbox the CRM and mailbox
 * remotes, their adapters, the engine's pair and the reference model; the shared store; the change
 * notifications in flight. {@link RunPrefixes} builds the part every policy shares once and forks it.
 */
export class SimWorld {
  readonly boxes: Box[] = []
  readonly byId = new Map<string, Box>()
  /** Next workload event to apply. */
  next = 0
  conflicts = 0
  referenceConflicts = 0
  skippedEvents = 0
  notificationsSent = 0
  notificationsDropped = 0
  /** Warm-up events (`warmStart` up to `warmEnd`) and which of them counted as a change (not skipped). */
  warmStart = 0
  warmEnd = 0
  warmCounted = new Uint8Array(0)

  private constructor(
    readonly options: WorldOptions,
    private readonly time: { now: number },
    readonly store: ReplicaStore,
    private readonly storage: Storage,
    readonly notifications: TimedHeap<number>,
    private readonly random: SeededRandom,
  ) {}

  /** Virtual time, ms since the start of the simulation. */
  get now(): number {
    return this.time.now
  }

  set now(t: number) {
    this.time.now = t
  }

  /** Absolute virtual time (ms since the epoch), for every clock in this world. */
  readonly clock = () => SIM_EPOCH + this.time.now

  /** A new world: empty remotes and store, nothing applied. */
  static async create(options: WorldOptions): Promise<SimWorld> {
    const time = { now: 0 }
    const { store, storage } = await openStorage(options, () => SIM_EPOCH + time.now)
    const world = new SimWorld(options, time, store, storage, new TimedHeap(), seededRandom(mixSeed(options.seed, 0xbeef)))
    for (const [index, id] of options.workload.mailboxes.entries()) {
      const crm = new SimRemote(`crm-${id}`, world.clock)
      const mbx = new SimRemote(`mbx-${id}`, world.clock)
      const crmAdapter = new SimAdapter(asReplicaId(`crm-${id}`), crm, world.clock, options.limits?.dataverse ?? DATAVERSE_LIMIT, { faults: FAULTS, seed: mixSeed(options.seed, index * 2 + 1) })
      const mbxAdapter = new SimAdapter(asReplicaId(`mbx-${id}`), mbx, world.clock, options.limits?.graph ?? GRAPH_LIMIT, { faults: FAULTS, seed: mixSeed(options.seed, index * 2 + 2) })
      world.addBox({ id, index, items: new Map(), dirty: new Set(), pending: [], crmPending: 0, stalenessSum: 0, measured: 0, changes: 0, crm, mbx, crmAdapter, mbxAdapter, warmChanges: 0, warmCrmChanges: 0 })
    }
    return world
  }

  private addBox(box: Omit<Box, 'pair'>): void {
    const pair = new SyncPair({
      pairId: asPairId(`pair-${box.id}`),
      store: this.store,
      crm: box.crmAdapter,
      mailbox: box.mbxAdapter,
      merge: this.options.merge(),
      pageLimit: 50,
      explainRecords: false, // a run's store is deleted when it ends: nobody can ask it why
      now: this.clock,
      onDecision: (_id, decision) => {
        for (const f of decision.fields) if (f.outcome.startsWith('conflict') || f.outcome === 'merged') this.conflicts++
      },
    })
    const full: Box = { ...box, pair }
    this.boxes.push(full)
    this.byId.set(full.id, full)
  }

  /**
   * What every policy run starts from: the initial data and its sync, the warm-up's workload on both
   * remotes and the engine's one sync of it at the end of the warm-up (both uncharged, unmeasured).
   * The scheduler is not involved: each run replays the warm-up to its own scheduler (`warmCounted`).
   */
  static async prefix(options: WorldOptions): Promise<SimWorld> {
    const world = await SimWorld.create(options)
    try {
      await world.buildPrefix()
      return world
    } catch (error) {
      await world.close().catch(() => {})
      throw error
    }
  }

  private async buildPrefix(): Promise<void> {
    const { options } = this
    const events = options.workload.events
    while (this.next < events.length && events[this.next]!.initial) this.apply(events[this.next++]!)
    for (const box of this.boxes) {
      await initialSync(() => box.pair.runCycle())
      box.crmAdapter.calls = 0
      box.mbxAdapter.calls = 0
      this.settle(box)
    }
    this.warmStart = this.next
    if (options.warmupMs > 0) {
      const counted = new Uint8Array(events.length - this.warmStart)
      while (this.next < events.length && events[this.next]!.t < options.warmupMs) {
        const e = events[this.next]!
        this.now = e.t
        counted[this.next++ - this.warmStart] = this.apply(e) ? 1 : 0
      }
      this.warmCounted = counted.slice(0, this.next - this.warmStart)
      const uncharged = { conflicts: this.conflicts, referenceConflicts: this.referenceConflicts }
      this.now = options.warmupMs
      for (const box of this.boxes) {
        const calls = { crm: box.crmAdapter.calls, mbx: box.mbxAdapter.calls }
        await initialSync(() => box.pair.runCycle())
        box.crmAdapter.calls = calls.crm
        box.mbxAdapter.calls = calls.mbx
        this.settleSynced(box)
      }
      this.conflicts = uncharged.conflicts
      this.referenceConflicts = uncharged.referenceConflicts
    }
    this.warmEnd = this.next
  }

  remoteOf(box: Box, side: WorkloadSide): SimRemote {
    return side === 'crm' ? box.crm : box.mbx
  }

  /** The native id of an item on a side, if it is live there. */
  nativeOn(box: Box, item: ItemState, side: WorkloadSide): NativeId | undefined {
    if (side === item.origin) return this.remoteOf(box, side).get(item.native) ? item.native : undefined
    return this.remoteOf(box, side).findByConcordId(this.concordOf(box, item))?.nativeId
  }

  /** The Concord id of an item: the origin record's stamp, or the id the engine derives from the origin native id. */
  private concordOf(box: Box, item: ItemState): ConcordId {
    const originReplica = item.origin === 'crm' ? box.crmAdapter.replicaId : box.mbxAdapter.replicaId
    return this.remoteOf(box, item.origin).records.get(item.native)?.concordId ?? concordIdFor(originReplica, item.native)
  }

  /**
   * A person's change, at the current virtual time: to the remote and the reference model; measured
   * when inside the measured days. False when it was skipped (its item is not on that side) or is initial data.
   */
  apply(e: WorkloadEvent): boolean {
    const box = this.byId.get(e.mailbox)!
    let item = box.items.get(e.item)
    if (e.op === 'create') {
      const native = this.remoteOf(box, e.side).create(e.kind, e.fields ?? {})
      item = Object.assign(modelCreate(e.kind, e.side, e.fields ?? {}, this.now), { native }) // (no second copy of the new item)
      box.items.set(e.item, item)
    } else {
      if (!item) return this.skipped()
      const native = this.nativeOn(box, item, e.side)
      if (native === undefined) return this.skipped() // not (yet) on this side: the person cannot edit it
      const remote = this.remoteOf(box, e.side)
      if (e.op === 'update') remote.update(native, e.fields ?? {})
      else if (e.op === 'delete') remote.remove(native)
      else {
        const moved = remote.move(native)
        if (item.origin === e.side) item.native = moved
      }
      modelWrite(item, e.side, e.op, e.fields, this.now)
    }
    box.dirty.add(e.item)
    if (e.initial) return false
    box.changes++
    const o = this.options
    box.pending.push({ t: this.now, item: e.item, side: e.side, op: e.op, fields: e.fields ? Object.keys(e.fields) : [], measured: this.now >= o.warmupMs && this.now < o.workload.durationMs })
    if (o.notifications) this.notify(box, e.side)
    return true
  }

  private skipped(): false {
    this.skippedEvents++
    return false
  }

  private notify(box: Box, side: WorkloadSide): void {
    if (this.random() < this.options.notificationLoss) this.notificationsDropped++
    else {
      // Graph: mostly under a minute, never over 3 minutes (performance.md §3b)
      const latency = Math.min(3 * MIN, 15_000 * Math.exp(0.9 * normal(this.random)))
      this.notifications.push(this.now + latency, box.index * 2 + (side === 'crm' ? 1 : 0))
      this.notificationsSent++
    }
  }

  /** Settles the reference model after a clean cycle. */
  settle(box: Box, crmPulled = true): void {
    this.referenceConflicts += settleModel(box.items, box.dirty, this.options.model, crmPulled)
  }

  /** After an unmeasured clean cycle of both sides (a bulk sync, the drain): settles the model and forgets the changes both sides now show. */
  settleSynced(box: Box): void {
    this.settle(box)
    box.pending = box.pending.filter((p) => !this.propagated(box, p))
  }

  /** True when both sides show what the reference model expects of the change's item (present or gone, and the change's fields). */
  propagated(box: Box, p: Pending): boolean {
    const item = box.items.get(p.item)
    if (!item) return false
    for (const side of SIDES) {
      const native = this.nativeOn(box, item, side)
      if (item.deleted || !item.present[side]) {
        if (native !== undefined) return false
        continue
      }
      if (native === undefined) return false
      const fields = this.remoteOf(box, side).get(native)!.fields
      const expected = item.sides[side]
      for (const f of p.fields) if (!jsonEqual(fields[f] ?? null, expected[f] ?? null)) return false
    }
    return true
  }

  /**
   * Makes this world a template for {@link FrozenWorld.fork}: its store is closed (its caches kept), and nothing
   * of it runs again. Called once, when the world is complete.
   */
  async freeze(): Promise<FrozenWorld> {
    const caches = await this.store.closeKeepingCaches()
    if ('dir' in this.storage) await settleLevelStore(this.storage.dir, LEVEL_OPTIONS) // forks copy a table, not a log to replay
    return { fork: (only) => this.forkFrozen(caches, only), dispose: () => this.removeStorage() }
  }

  /**
   * A world that continues from this frozen one independently: its own remotes, model, store (a copy, resumed with
   * `caches`) and notifications. With `only` (and notifications off), the other mailboxes are left out: a part of a
   * run touches none of them, and copying their remotes and model is most of a fork's time.
   */
  private async forkFrozen(caches: StoreCaches, only?: MailboxShard): Promise<SimWorld> {
    const time = { now: this.now }
    const { store, storage } = await openStorage(this.options, () => SIM_EPOCH + time.now, { from: this.storage, caches })
    const world = new SimWorld(this.options, time, store, storage, this.notifications.clone(), this.random.fork())
    world.next = this.next
    world.conflicts = this.conflicts
    world.referenceConflicts = this.referenceConflicts
    world.skippedEvents = this.skippedEvents
    world.notificationsSent = this.notificationsSent
    world.notificationsDropped = this.notificationsDropped
    world.warmStart = this.warmStart
    world.warmEnd = this.warmEnd
    world.warmCounted = this.warmCounted
    const range = only && !this.options.notifications ? only : { from: 0, to: this.boxes.length }
    for (const box of this.boxes.slice(range.from, range.to)) {
      const crm = box.crm.clone(world.clock)
      const mbx = box.mbx.clone(world.clock)
      world.addBox({
        ...box,
        items: new Map([...box.items].map(([key, item]) => [key, cloneItem(item)])),
        dirty: new Set(box.dirty),
        pending: box.pending.slice(),
        crm,
        mbx,
        crmAdapter: box.crmAdapter.clone(crm, world.clock),
        mbxAdapter: box.mbxAdapter.clone(mbx, world.clock),
      })
    }
    return world
  }

  /** Closes the store and deletes its files. */
  async close(): Promise<void> {
    await this.store.close()
    await this.removeStorage()
  }

  private async removeStorage(): Promise<void> {
    if ('dir' in this.storage) await removeStoreDir(this.storage.dir)
  }
}

/** A complete world whose store is closed ({@link SimWorld.freeze}), to fork runs from. */
export interface FrozenWorld {
  /** A world that continues from the template; with `only`, holding just those mailboxes (notifications off: nothing else reaches them). */
  fork(only?: MailboxShard): Promise<SimWorld>
  /** Deletes the template's store files. */
  dispose(): Promise<void>
}

/** A model item to change independently: its records copied; their values are shared (the model replaces values, it never changes one in place). */
function cloneItem(item: ItemState): ItemState {
  return {
    ...item,
    present: { ...item.present },
    base: { ...item.base },
    sides: { crm: { ...item.sides.crm }, mailbox: { ...item.sides.mailbox } },
    touched: { ...item.touched },
    modifiedAt: { ...item.modifiedAt },
    kept: item.kept && new Set(item.kept),
  }
}

/**
 * The start every policy run of a simulation shares ({@link SimWorld.prefix}): built once per process
 * and forked for each run. Runs share it when `identity` (the workload, merge and model objects) is the
 * same and so are the seed, store, warm-up, notification and limit settings; otherwise the last one is
 * replaced. `close()` deletes its store files.
 */
export class RunPrefixes {
  private current: { identity: readonly unknown[]; settings: string; frozen: Promise<FrozenWorld> } | undefined

  async fork(options: WorldOptions, identity: readonly unknown[], only?: MailboxShard): Promise<SimWorld> {
    const settings = JSON.stringify([options.seed, options.store, options.notifications, options.notificationLoss, options.warmupMs, options.limits ?? null])
    const c = this.current
    if (!c || c.settings !== settings || c.identity.length !== identity.length || c.identity.some((x, i) => x !== identity[i])) {
      await this.close()
      this.current = { identity, settings, frozen: SimWorld.prefix(options).then((world) => world.freeze()) }
    }
    return (await this.current!.frozen).fork(only)
  }

  async close(): Promise<void> {
    const c = this.current
    this.current = undefined
    const frozen = await c?.frozen.catch(() => undefined)
    await frozen?.dispose()
  }
}
