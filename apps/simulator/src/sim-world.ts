import { cp, readFile, rm, writeFile } from 'node:fs/promises'
import { deserialize, serialize } from 'node:v8'
import { type ConcordId, type MergeStrategy, type NativeId, type ReplicaStore, type SeededRandom, type StoreCaches, type StoreDatabase, SyncPair, asPairId, asReplicaId, concordIdFor, deepFreeze, jsonEqual, openMemoryStore, openMemoryStoreCopy, seededRandom, sharedOrCopy, storeCachesFromData, storeCachesToData } from '@concord/engine'
import { openLevelStore, settleLevelStore } from '@concord/engine/node'
import { initialSync } from './driver.js'
import { storeCacheEntriesPerMailbox } from './memory-budget.js'
import { TimedHeap } from './heap.js'
import type { MailboxShard } from './policy-run.js'
import { type MergeModel, type ModelItem, modelCreate, modelWrite, settleModel } from './reference-model.js'
import { mixSeed, normal } from './rng.js'
import { newStoreDir, removeStoreDir } from './store-dirs.js'
import { DATAVERSE_LIMIT, GRAPH_LIMIT, type ServiceLimit, type SimAdapterState, type SimRemoteState, SimAdapter, SimRemote } from './sim-remote.js'
import { SimulatorError } from './errors.js'
import { type Workload, type WorkloadEvent, type WorkloadSide, DAY, MIN, SIM_EPOCH } from './workload.js'

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
  // hot records, so cycles rarely wait for the database (see `storeCacheEntriesPerMailbox`).
  const { workload } = options
  const perMailbox = storeCacheEntriesPerMailbox({ mailboxes: workload.mailboxes.length, days: workload.durationMs / DAY })
  const storeOptions = { now: clock, groupCommit: true, cacheEntries: Math.max(100_000, perMailbox * workload.mailboxes.length), resumeCaches: copy?.caches }
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
  warmCounted: Uint8Array = new Uint8Array(0)

  private constructor(
    readonly options: WorldOptions,
    private readonly time: { now: number },
    /** The stores of the world's blocks (see {@link RunPrefixes}): one, unless forked from several. */
    private readonly stores: Array<{ store: ReplicaStore; storage: Storage }>,
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

  /** A new world: empty remotes and store, nothing applied; with `block`, holding only those mailboxes. */
  static async create(options: WorldOptions, block?: MailboxShard): Promise<SimWorld> {
    const time = { now: 0 }
    const world = new SimWorld(options, time, [await openStorage(options, () => SIM_EPOCH + time.now)], new TimedHeap(), seededRandom(mixSeed(options.seed, 0xbeef)))
    for (const [index, id] of options.workload.mailboxes.entries()) {
      if (block && (index < block.from || index >= block.to)) continue
      const crm = new SimRemote(`crm-${id}`, world.clock)
      const mbx = new SimRemote(`mbx-${id}`, world.clock)
      const crmAdapter = new SimAdapter(asReplicaId(`crm-${id}`), crm, world.clock, options.limits?.dataverse ?? DATAVERSE_LIMIT, { faults: FAULTS, seed: mixSeed(options.seed, index * 2 + 1) })
      const mbxAdapter = new SimAdapter(asReplicaId(`mbx-${id}`), mbx, world.clock, options.limits?.graph ?? GRAPH_LIMIT, { faults: FAULTS, seed: mixSeed(options.seed, index * 2 + 2) })
      world.addBox({ id, index, items: new Map(), dirty: new Set(), pending: [], crmPending: 0, stalenessSum: 0, measured: 0, changes: 0, crm, mbx, crmAdapter, mbxAdapter, warmChanges: 0, warmCrmChanges: 0 })
    }
    return world
  }

  private addBox(box: Omit<Box, 'pair'>, storeIndex = 0): void {
    const pair = new SyncPair({
      pairId: asPairId(`pair-${box.id}`),
      store: this.stores[storeIndex]!.store,
      crm: box.crmAdapter,
      mailbox: box.mbxAdapter,
      merge: this.options.merge(),
      pageLimit: 50,
      explainRecords: false, // a run's store is deleted when it ends: nobody can ask it why
      waitForOutboxWrite: false, // no crash to survive: the store writes while the run goes on
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
  static async prefix(options: WorldOptions, block?: MailboxShard): Promise<SimWorld> {
    const world = await SimWorld.create(options, block)
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
    // (a block's world skips the other mailboxes' events)
    while (this.next < events.length && events[this.next]!.initial) {
      const e = events[this.next++]!
      if (this.byId.has(e.mailbox)) this.apply(e)
    }
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
        counted[this.next++ - this.warmStart] = this.byId.has(e.mailbox) && this.apply(e) ? 1 : 0
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
    // A workload's payloads are never written: frozen, the remotes keep them as they are instead of a copy each.
    const fields = e.fields && deepFreeze(e.fields)
    if (e.op === 'create') {
      const native = this.remoteOf(box, e.side).create(e.kind, fields ?? {})
      item = Object.assign(modelCreate(e.kind, e.side, fields ?? {}, this.now), { native }) // (no second copy of the new item)
      box.items.set(e.item, item)
    } else {
      if (!item) return this.skipped()
      const native = this.nativeOn(box, item, e.side)
      if (native === undefined) return this.skipped() // not (yet) on this side: the person cannot edit it
      const remote = this.remoteOf(box, e.side)
      if (e.op === 'update') remote.update(native, fields ?? {})
      else if (e.op === 'delete') remote.remove(native)
      else {
        const moved = remote.move(native)
        if (item.origin === e.side) item.native = moved
      }
      modelWrite(item, e.side, e.op, fields, this.now)
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
   * Makes this world (built by {@link SimWorld.prefix}, for `range`) a template to fork runs from ({@link SimWorld.fork}):
   * its store is closed (its caches kept), and nothing of it runs again. Called once, when the world is complete.
   */
  async freeze(range: MailboxShard): Promise<FrozenBlock> {
    const { store, storage } = this.stores[0]!
    const caches = await store.closeKeepingCaches()
    if ('dir' in storage) await settleLevelStore(storage.dir, LEVEL_OPTIONS) // forks copy a table, not a log to replay
    for (const box of this.boxes) for (const item of box.items.values()) freezeModelItem(item) // forks share them, copied on write
    return {
      range,
      storage,
      caches,
      boxes: this.boxes,
      counts: { conflicts: this.conflicts, referenceConflicts: this.referenceConflicts, skippedEvents: this.skippedEvents, notificationsSent: this.notificationsSent, notificationsDropped: this.notificationsDropped },
      now: this.now,
      next: this.next,
      warmStart: this.warmStart,
      warmEnd: this.warmEnd,
      warmCounted: this.warmCounted,
      notifications: this.notifications,
      random: this.random,
      owned: true,
    }
  }

  /**
   * A world that continues from frozen `blocks` (the start of every mailbox when they are several; see
   * {@link RunPrefixes}) independently: its own remotes, model, stores (copies, resumed with the blocks' caches) and
   * notifications. With `only` (and notifications off), the other mailboxes are left out: a part of a run touches
   * none of them, and copying their remotes and model is most of a fork's time. A block's start counts (conflicts,
   * skipped events…) go to the part that holds its first mailbox, so that the parts of a run add up to the whole.
   */
  static async fork(options: WorldOptions, blocks: readonly FrozenBlock[], only?: MailboxShard): Promise<SimWorld> {
    const first = blocks[0]!
    if (blocks.length > 1 && options.notifications) throw new SimulatorError('Internal', 'a start built in blocks cannot carry notifications')
    const time = { now: first.now }
    const clock = () => SIM_EPOCH + time.now
    const stores = await Promise.all(blocks.map((b) => openStorage(options, clock, { from: b.storage, caches: b.caches })))
    const world = new SimWorld(options, time, stores, first.notifications.clone(), first.random.fork())
    world.next = first.next
    world.warmStart = first.warmStart
    world.warmEnd = first.warmEnd
    // (a warm-up event counted in the block that holds its mailbox)
    world.warmCounted = blocks.length === 1 ? first.warmCounted : first.warmCounted.map((_, i) => (blocks.some((b) => b.warmCounted[i]) ? 1 : 0))
    const range = only && !options.notifications ? only : { from: 0, to: options.workload.mailboxes.length }
    for (const [k, block] of blocks.entries()) {
      if (!only || (block.range.from >= only.from && block.range.from < only.to)) {
        world.conflicts += block.counts.conflicts
        world.referenceConflicts += block.counts.referenceConflicts
        world.skippedEvents += block.counts.skippedEvents
        world.notificationsSent += block.counts.notificationsSent
        world.notificationsDropped += block.counts.notificationsDropped
      }
      for (const box of block.boxes) {
        if (box.index < range.from || box.index >= range.to) continue
        world.addBox(clonedBox(box, world.clock), k)
      }
    }
    return world
  }

  /** Forgets what the start counted (conflicts, skipped events, notifications): a part of a run without the first mailbox reports only its own. */
  clearStartCounts(): void {
    this.conflicts = this.referenceConflicts = this.skippedEvents = this.notificationsSent = this.notificationsDropped = 0
  }

  /** Closes the stores and deletes their files. */
  async close(): Promise<void> {
    let failure: unknown
    for (const { store, storage } of this.stores) {
      await store.flush().catch((error: unknown) => (failure ??= error)) // a write in the background failed
      await store.close()
      await removeStorage(storage)
    }
    if (failure !== undefined) throw failure
  }
}

async function removeStorage(storage: Storage): Promise<void> {
  if ('dir' in storage) await removeStoreDir(storage.dir)
}

/** What a world's start counted (see {@link SimWorld.fork}). */
interface StartCounts {
  conflicts: number
  referenceConflicts: number
  skippedEvents: number
  notificationsSent: number
  notificationsDropped: number
}

/** The start of the mailboxes of `range`, frozen ({@link SimWorld.freeze}): a template that never runs, to fork runs from. */
export interface FrozenBlock {
  range: MailboxShard
  storage: Storage
  caches: StoreCaches
  boxes: ReadonlyArray<Omit<Box, 'pair'>>
  counts: StartCounts
  now: number
  next: number
  warmStart: number
  warmEnd: number
  warmCounted: Uint8Array
  notifications: TimedHeap<number>
  random: SeededRandom
  /** Whether this process built it (and deletes its files); an imported block's belong to the process that built it. */
  owned: boolean
  /** Where it was exported to ({@link exportBlock}), if it was. */
  exportFile?: string | undefined
}

/** A box of a frozen block as data. */
interface BoxData extends Omit<Box, 'pair' | 'crm' | 'mbx' | 'crmAdapter' | 'mbxAdapter'> {
  crm: SimRemoteState
  mbx: SimRemoteState
  crmAdapter: SimAdapterState
  mbxAdapter: SimAdapterState
}

/** A frozen block as data, for another process ({@link exportBlock}): its store's files stay where they are. */
interface BlockData extends Omit<FrozenBlock, 'boxes' | 'notifications' | 'random' | 'owned' | 'exportFile'> {
  boxes: BoxData[]
}

/**
 * Writes a frozen LevelDB block to `file`, for another process to fork runs from ({@link importBlock}): its mailboxes'
 * remotes, adapters and model, the store's caches and the start's counters. The store's files are read where they
 * are, so they must outlive every process that imported the block. (Notifications must be off: none are sent.)
 */
export async function exportBlock(block: FrozenBlock, file: string): Promise<void> {
  if (!('dir' in block.storage)) throw new SimulatorError('Internal', 'only a LevelDB block can go to another process')
  const { boxes, notifications: _n, random: _r, owned: _o, exportFile: _f, caches, ...rest } = block
  const data: BlockData = {
    ...rest,
    caches: storeCachesToData(caches),
    // (a frozen world's boxes still hold their pairs: not data)
    boxes: boxes.map(({ pair: _pair, ...b }: Omit<Box, 'pair'> & { pair?: unknown }) => ({ ...b, crm: b.crm.exportState(), mbx: b.mbx.exportState(), crmAdapter: b.crmAdapter.exportState(), mbxAdapter: b.mbxAdapter.exportState() })),
  }
  await writeFile(file, serialize(data))
}

/** A block another process exported ({@link exportBlock}) to `file`, for this process to fork runs from. */
export async function importBlock(file: string, options: WorldOptions): Promise<FrozenBlock> {
  const data = deserialize(await readFile(file)) as BlockData
  // (a template never runs: its forks take their own clocks; the closure holds the time, not `data`, which holds the file)
  const now = data.now
  const templateClock = () => SIM_EPOCH + now
  const boxes = data.boxes.map((b) => {
    const crm = SimRemote.fromState(b.crm, templateClock)
    const mbx = SimRemote.fromState(b.mbx, templateClock)
    return { ...b, crm, mbx, crmAdapter: SimAdapter.fromState(b.crmAdapter, crm, templateClock), mbxAdapter: SimAdapter.fromState(b.mbxAdapter, mbx, templateClock) }
  })
  // (v8.deserialize makes a typed array a view on the whole file's buffer: copied, so that the buffer can go)
  const warmCounted = data.warmCounted.slice()
  return { ...data, warmCounted, boxes, caches: storeCachesFromData(data.caches), notifications: new TimedHeap(), random: seededRandom(mixSeed(options.seed, 0xbeef)), owned: false }
}

/** What of a block is on disk, and whether this process built it (and deletes it). */
type BlockFiles = Pick<FrozenBlock, 'storage' | 'owned' | 'exportFile'>

/** A block's files, without the block (which holds a start's data). */
const filesOf = ({ storage, owned, exportFile }: FrozenBlock): BlockFiles => ({ storage, owned, exportFile })

/** Deletes the files of a block this process built (its store, its export). */
async function disposeBlock(block: BlockFiles): Promise<void> {
  if (!block.owned) return
  await removeStorage(block.storage)
  if (block.exportFile) await rm(block.exportFile, { force: true })
}

/** A template's box for a fork to change independently (see {@link SimWorld.fork}). */
function clonedBox(box: Omit<Box, 'pair'>, clock: () => number): Omit<Box, 'pair'> {
  const crm = box.crm.clone(clock)
  const mbx = box.mbx.clone(clock)
  return {
    ...box,
    items: new Map([...box.items].map(([key, item]) => [key, cloneItem(item)])),
    dirty: new Set(box.dirty),
    pending: box.pending.slice(),
    crm,
    mbx,
    crmAdapter: box.crmAdapter.clone(crm, clock),
    mbxAdapter: box.mbxAdapter.clone(mbx, clock),
  }
}

function freezeModelItem(item: ItemState): void {
  deepFreeze(item.base)
  deepFreeze(item.sides.crm)
  deepFreeze(item.sides.mailbox)
}

/**
 * A model item to change independently: its records copied, or shared when frozen (copied on write); their
 * values are shared (the model replaces values, it never changes one in place).
 */
function cloneItem(item: ItemState): ItemState {
  return {
    ...item,
    present: { ...item.present },
    base: sharedOrCopy(item.base),
    sides: { crm: sharedOrCopy(item.sides.crm), mailbox: sharedOrCopy(item.sides.mailbox) },
    touched: { ...item.touched },
    modifiedAt: { ...item.modifiedAt },
    kept: item.kept && new Set(item.kept),
  }
}

/** The blocks a start is built in, across processes (see {@link RunPrefixes}). */
export interface BlockPlan {
  /** A partition of the mailboxes into ranges, in order. */
  ranges: MailboxShard[]
  /** Blocks other processes built and exported: `blockKey(range)` → file ({@link exportBlock}). */
  available: Record<string, string>
}

export const blockKey = (range: MailboxShard): string => `${range.from}-${range.to}`

/** A block exported by this process (to tell the others). */
export interface ExportedBlock {
  key: string
  file: string
}

/**
 * The start every policy run of a simulation shares ({@link SimWorld.prefix}): built once per process and forked for
 * each run. Runs share it when `identity` (the workload, merge and model objects) is the same and so are the seed,
 * store, warm-up, notification and limit settings; otherwise the last one is replaced. With a {@link BlockPlan} the
 * start is built in blocks of mailboxes: a run forks only the blocks its mailboxes are in, a block another process
 * built and exported is read instead of built, and a block this process builds is exported for the others
 * ({@link takeExports}). `close()` deletes its store files.
 */
export class RunPrefixes {
  private current: { identity: readonly unknown[]; settings: string; blocks: Map<string, Promise<FrozenBlock>> } | undefined
  /** Files of the exported blocks of a replaced start (not their data), kept until `close()`: other processes may still read them. */
  private kept: BlockFiles[] = []
  private exported: ExportedBlock[] = []

  async fork(options: WorldOptions, identity: readonly unknown[], only?: MailboxShard, plan?: BlockPlan): Promise<SimWorld> {
    const settings = JSON.stringify([options.seed, options.store, options.notifications, options.notificationLoss, options.warmupMs, options.limits ?? null])
    let c = this.current
    if (!c || c.settings !== settings || c.identity.length !== identity.length || c.identity.some((x, i) => x !== identity[i])) {
      this.current = undefined
      if (c) await this.release(c.blocks.values(), true)
      c = this.current = { identity, settings, blocks: new Map() }
    }
    const ranges = plan?.ranges ?? [{ from: 0, to: options.workload.mailboxes.length }]
    const needed = ranges.filter((r) => !only || (r.from < only.to && only.from < r.to))
    const blocks = await Promise.all(needed.map((range) => this.block(c.blocks, range, options, plan)))
    return SimWorld.fork(options, blocks, only)
  }

  private block(blocks: Map<string, Promise<FrozenBlock>>, range: MailboxShard, options: WorldOptions, plan: BlockPlan | undefined): Promise<FrozenBlock> {
    const key = blockKey(range)
    let block = blocks.get(key)
    if (block) return block
    const file = plan?.available[key]
    block = file
      ? importBlock(file, options)
      : SimWorld.prefix(options, range)
          .then((world) => world.freeze(range))
          .then(async (frozen) => {
            if (plan && 'dir' in frozen.storage) {
              frozen.exportFile = `${frozen.storage.dir}.block`
              await exportBlock(frozen, frozen.exportFile)
              this.exported.push({ key, file: frozen.exportFile })
            }
            return frozen
          })
    blocks.set(key, block)
    return block
  }

  /** The blocks this process exported since the last call. */
  takeExports(): ExportedBlock[] {
    const out = this.exported
    this.exported = []
    return out
  }

  async close(): Promise<void> {
    const blocks = this.current?.blocks.values() ?? []
    this.current = undefined
    await this.release(blocks, false)
    const kept = this.kept
    this.kept = []
    for (const block of kept) await disposeBlock(block)
  }

  /** Disposes of `blocks`, but keeps the files of those it exported when `keepExported` (until `close()`). */
  private async release(blocks: Iterable<Promise<FrozenBlock>>, keepExported: boolean): Promise<void> {
    for (const pending of blocks) {
      const block = await pending.catch(() => undefined)
      if (!block) continue
      if (keepExported && block.exportFile) this.kept.push(filesOf(block))
      else await disposeBlock(block)
    }
  }
}
