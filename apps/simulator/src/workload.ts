import type { Fields, ItemKind } from '@concord/engine'
import { TimedHeap } from './heap.js'
import { exponential, mixSeed, mulberry32, normal, poisson } from './rng.js'

export const MIN = 60_000
export const HOUR = 60 * MIN
export const DAY = 24 * HOUR
/** Virtual time 0 of every simulation: Monday 2026-11-23 00:00 UTC. */
export const SIM_EPOCH = Date.UTC(2026, 10, 23)

export type WorkloadSide = 'mailbox' | 'crm'
export type WorkloadOp = 'create' | 'update' | 'delete' | 'move'

/**
 * One change made by a person (not by Concord) to one side of one mailbox's pair.
 * `item` names the item within the mailbox; `t` is ms since the start of the simulation.
 */
export interface WorkloadEvent {
  t: number
  mailbox: string
  side: WorkloadSide
  op: WorkloadOp
  kind: ItemKind
  item: string
  fields?: Fields | undefined
  /** Pre-existing data: created before the initial sync and not measured. */
  initial?: boolean | undefined
}

export interface Workload {
  /** Mailbox ids in a stable order. */
  mailboxes: string[]
  /**
   * Events sorted by `t` (stable), initial ones first. Empty when the generator was asked for columns only
   * (`GeneratorOptions.eventsAs`): then {@link Workload.columns} holds them.
   */
  events: WorkloadEvent[]
  /** Simulated length in ms. */
  durationMs: number
  /** The events as columns, when generated that way (see {@link eventColumns}). */
  columns?: EventColumns | undefined
}

/**
 * A workload's events as columns in event order: when, which mailbox and which side — all the stub engine
 * and the oracle read. A few typed arrays instead of millions of objects: cheap to build and to hold (the
 * garbage collector never walks them).
 */
export interface EventColumns {
  t: Float64Array
  /** Index into `Workload.mailboxes`; -1 for initial data and for mailboxes the list does not name. */
  box: Int32Array
  /** 1 for a CRM-side change, 0 for a mailbox-side one. */
  crm: Uint8Array
  /** The first `initial` events are the initial data (the rest are not). */
  initial: number
}

/** Per-user weekday volumes (performance.md §5) and the shape of the generated traffic. */
export interface GeneratorOptions {
  mailboxes: number
  days: number
  seed: number
  /** Lognormal shape of per-mailbox activity (busy vs idle mailboxes). Default 1. */
  sigma?: number
  receivedPerDay?: number
  sentPerDay?: number
  meetingsPerDay?: number
  contactEditsPerDay?: number
  taskEditsPerDay?: number
  /** Edits of the user's CRM records by other CRM users, per day. */
  crmEditsPerDay?: number
  /** Probability that a mailbox-side contact/task edit draws a CRM-side edit of the same field within 10 min. */
  conflictReaction?: number
  /** Mean follow-up messages spawned by each message (self-exciting bursts). Default 0.3. */
  burstBranching?: number
  seedContacts?: number
  seedTasks?: number
  /**
   * Build the e-mail and meeting field payloads (default true). The stub engine never reads them; at
   * 10,000 mailboxes they are most of the workload's memory. Times, items and every random draw are
   * the same either way.
   */
  withFields?: boolean
  /**
   * 'objects' (default): `events` holds a {@link WorkloadEvent} per event. 'columns': `events` stays empty and
   * `columns` holds when, where and which side (no payloads, items or ops): what the stub engine reads, at
   * a fraction of the time and memory. Same events and random draws either way.
   */
  eventsAs?: 'objects' | 'columns'
}

const WEEKDAY_RAW = (h: number): number => (h >= 8 && h < 18 ? Math.max(0.03, Math.sin((Math.PI * (h - 8)) / 10)) : 0.03)
const WEEKDAY_MEAN = (() => {
  let sum = 0
  for (let k = 0; k < 1440; k++) sum += WEEKDAY_RAW((k + 0.5) / 60)
  return sum / 1440
})()

/** Diurnal × weekday profile: 08–18 half-sine with a 3 % night floor (mean 1 on weekdays), weekends at 10 %. */
export function activityProfile(t: number): number {
  const day = Math.floor(t / DAY)
  const weekend = ((day % 7) + 7) % 7 >= 5 // day 0 is a Monday
  const h = (((t % DAY) + DAY) % DAY) / HOUR
  return (WEEKDAY_RAW(h) / WEEKDAY_MEAN) * (weekend ? 0.1 : 1)
}
const PROFILE_MAX = 1 / WEEKDAY_MEAN

/** Arrival times of a non-homogeneous Poisson process with rate perDay·profile(t)/DAY on [0, end). */
function arrivals(random: () => number, perDay: number, end: number): number[] {
  const out: number[] = []
  if (perDay <= 0) return out
  const lamMax = (perDay * PROFILE_MAX) / DAY
  let t = 0
  for (;;) {
    t += exponential(random, 1 / lamMax)
    if (t >= end) return out
    if (random() * PROFILE_MAX <= activityProfile(t)) out.push(t)
  }
}

const pad = (n: number) => String(n).padStart(2, '0')
const iso = (t: number) => new Date(SIM_EPOCH + t).toISOString()
const local = (t: number) => {
  const d = new Date(SIM_EPOCH + t)
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:00`
}

const TITLES = ['Buyer', 'Engineer', 'Director', 'Analyst', 'Consultant', 'Manager', 'Architect', 'Lead']
const DEPTS = ['Sales', 'Purchasing', 'IT', 'Finance', 'Operations', 'Legal']
const STATUSES = ['notStarted', 'inProgress', 'completed', 'waitingOnOthers', 'deferred'] as const
const PRIORITIES = ['low', 'normal', 'high'] as const

/** Item names: `<prefix>-<number>` per kind (meetings are appointments). */
const ITEM_PREFIX: Record<ItemKind, string> = { email: 'email', appointment: 'meeting', contact: 'contact', task: 'task' }

/** Receives the generated events in generation order (one mailbox after the other, unsorted). */
interface EventSink {
  /** Whether the generator should build payloads (`fields`) beyond the edits' (which cost random draws). */
  readonly payloads: boolean
  add(t: number, box: number, side: WorkloadSide, op: WorkloadOp, kind: ItemKind, item: number, fields: Fields | undefined, initial: boolean): void
}

/** Builds a {@link WorkloadEvent} per event. */
class ObjectSink implements EventSink {
  readonly payloads = true
  readonly events: WorkloadEvent[] = []
  constructor(private readonly mailboxes: string[]) {}
  add(t: number, box: number, side: WorkloadSide, op: WorkloadOp, kind: ItemKind, item: number, fields: Fields | undefined, initial: boolean): void {
    this.events.push({ t, mailbox: this.mailboxes[box]!, side, op, kind, item: `${ITEM_PREFIX[kind]}-${item}`, fields, initial: initial || undefined })
  }
}

/** Appends time, mailbox and side to growing typed arrays. */
class ColumnSink implements EventSink {
  readonly payloads = false
  t = new Float64Array(1 << 16)
  box = new Int32Array(1 << 16)
  crm = new Uint8Array(1 << 16)
  n = 0
  initial = 0
  add(t: number, box: number, side: WorkloadSide, _op: WorkloadOp, _kind: ItemKind, _item: number, _fields: Fields | undefined, initial: boolean): void {
    if (this.n === this.t.length) {
      const cap = this.n * 2
      this.t = grow(this.t, new Float64Array(cap))
      this.box = grow(this.box, new Int32Array(cap))
      this.crm = grow(this.crm, new Uint8Array(cap))
    }
    const i = this.n++
    this.t[i] = initial ? 0 : t
    this.box[i] = initial ? -1 : box
    this.crm[i] = side === 'crm' ? 1 : 0
    if (initial) this.initial++
  }
}

const grow = <A extends Float64Array | Int32Array | Uint8Array>(from: A, to: A): A => (to.set(from), to)

/** Generates a seeded synthetic workload (performance.md §5): same options → identical events. */
export function generateWorkload(options: GeneratorOptions): Workload {
  const o = generatorSettings(options)
  if (o.eventsAs === 'columns') return columnsWorkload(options, generateColumns(options, 0, o.mailboxes))
  const mailboxes = mailboxNames(o.mailboxes)
  const sink = new ObjectSink(mailboxes)
  generateEvents(o, sink, 0, o.mailboxes)
  sortEvents(sink.events)
  return { mailboxes, events: sink.events, durationMs: o.days * DAY }
}

/**
 * The event columns of mailboxes [from, to) of the workload `options` generate, in event order: each mailbox's
 * events depend on its own seed only, so parts generated apart (in parallel) and joined with {@link mergeColumns}
 * equal the whole workload's columns.
 */
export function generateColumns(options: GeneratorOptions, from: number, to: number): EventColumns {
  const sink = new ColumnSink()
  generateEvents(generatorSettings(options), sink, from, to)
  return sortColumns(sink)
}

/** The workload of `options` (generated as columns) holding `columns`. */
export function columnsWorkload(options: GeneratorOptions, columns: EventColumns): Workload {
  return { mailboxes: mailboxNames(options.mailboxes), events: [], durationMs: options.days * DAY, columns }
}

/**
 * Joins the columns of two consecutive mailbox ranges, `a` the lower one, in event order: initial data first,
 * then by time, ties to `a` (its events come first in generation order) — the order of generating both at once.
 */
export function mergeColumns(a: EventColumns, b: EventColumns): EventColumns {
  const na = a.t.length
  const nb = b.t.length
  const n = na + nb
  const out: EventColumns = { t: new Float64Array(n), box: new Int32Array(n), crm: new Uint8Array(n), initial: a.initial + b.initial }
  const take = (from: EventColumns, i: number, k: number) => {
    out.t[k] = from.t[i]!
    out.box[k] = from.box[i]!
    out.crm[k] = from.crm[i]!
  }
  let i = 0
  let j = 0
  let k = 0
  for (; i < a.initial; i++) take(a, i, k++)
  for (; j < b.initial; j++) take(b, j, k++)
  while (i < na && j < nb) {
    if (b.t[j]! < a.t[i]!) take(b, j++, k++)
    else take(a, i++, k++)
  }
  for (; i < na; i++) take(a, i, k++)
  for (; j < nb; j++) take(b, j, k++)
  return out
}

function generatorSettings(options: GeneratorOptions): Required<GeneratorOptions> {
  return {
    sigma: 1,
    receivedPerDay: 70,
    sentPerDay: 25,
    meetingsPerDay: 3,
    contactEditsPerDay: 3,
    taskEditsPerDay: 2,
    crmEditsPerDay: 4,
    conflictReaction: 0.3,
    burstBranching: 0.3,
    seedContacts: 8,
    seedTasks: 4,
    withFields: true,
    eventsAs: 'objects',
    ...options,
  }
}

const mailboxNames = (n: number): string[] => Array.from({ length: n }, (_, i) => `mbx-${String(i).padStart(String(n - 1).length, '0')}`)

/** The generator proper: the events of mailboxes [from, to), in generation order, into `sink`. */
function generateEvents(o: Required<Omit<GeneratorOptions, 'eventsAs'>>, sink: EventSink, from: number, to: number): void {
  const end = o.days * DAY
  const payloads = sink.payloads
  for (let index = from; index < to; index++) {
    const random = mulberry32(mixSeed(o.seed, index))
    const activity = Math.exp(o.sigma * normal(random) - (o.sigma * o.sigma) / 2)
    const push = (t: number, side: WorkloadSide, op: WorkloadOp, kind: ItemKind, item: number, fields?: Fields, initial = false) => {
      if (t < end) sink.add(t, index, side, op, kind, item, fields, initial)
    }
    const user = `user${index}@contoso.test`
    // Pre-existing CRM records of this user, synced to the mailbox by the initial sync.
    for (let c = 0; c < o.seedContacts; c++) {
      push(0, 'crm', 'create', 'contact', c, !payloads ? undefined : { givenName: `Given${c}`, surname: `Family${index}x${c}`, email1: `person${c}.${index}@fabrikam.test`, jobTitle: TITLES[c % TITLES.length], businessPhone: `+49 30 ${1000 + c}`, department: DEPTS[c % DEPTS.length] }, true)
    }
    for (let k = 0; k < o.seedTasks; k++) {
      push(0, 'crm', 'create', 'task', k, !payloads ? undefined : { subject: `Follow up ${k} for ${user}`, status: 'notStarted', priority: 'normal', percentComplete: 0 }, true)
    }
    // Messages: roots of a cascading Poisson process, each spawning Poisson(b) follow-ups minutes later.
    const emailsPerDay = (o.receivedPerDay + o.sentPerDay) * activity
    const roots = arrivals(random, emailsPerDay * (1 - o.burstBranching), end)
    let msg = 0
    const queue = new TimedHeap<number>()
    for (const t of roots) queue.push(t, -1)
    while (queue.size > 0) {
      const t = queue.peekTime()
      const thread = queue.pop()!
      const n = msg++
      const conv = thread < 0 ? n : thread
      const outgoing = random() < o.sentPerDay / (o.receivedPerDay + o.sentPerDay)
      let fields: Fields | undefined
      if (payloads && o.withFields) {
        const peer = { name: `Peer ${n % 97}`, address: `peer${n % 97}@fabrikam.test` }
        const me = { address: user }
        fields = { subject: `${thread < 0 ? '' : 'RE: '}Topic ${conv} of ${index}`, body: `Message ${n}`, from: outgoing ? me : peer, to: [outgoing ? peer : me], direction: outgoing ? 'outgoing' : 'incoming', internetMessageId: `<m${n}.${index}@sim.test>`, conversationId: `conv-${index}-${conv}`, [outgoing ? 'sentAt' : 'receivedAt']: iso(t) }
      }
      push(t, 'mailbox', 'create', 'email', n, fields)
      const deleteAt = random() < 0.02 ? t + exponential(random, HOUR) : Infinity
      if (random() < 0.15) {
        const at = t + exponential(random, 10 * MIN)
        if (at < deleteAt) push(at, 'mailbox', 'update', 'email', n, payloads && o.withFields ? { categories: ['Tracked to Dynamics 365'] } : undefined)
      }
      if (random() < 0.03) {
        const at = t + exponential(random, 30 * MIN)
        if (at < deleteAt) push(at, 'mailbox', 'move', 'email', n)
      }
      if (deleteAt < Infinity) push(deleteAt, 'mailbox', 'delete', 'email', n)
      for (let c = poisson(random, o.burstBranching); c > 0; c--) {
        const at = t + exponential(random, 3 * MIN)
        if (at < end) queue.push(at, conv)
      }
    }
    // Meetings the user creates in Outlook, later moved or re-located.
    const meetings = arrivals(random, o.meetingsPerDay * activity, end)
    for (let m = 0; m < meetings.length; m++) {
      const t = meetings[m]!
      const start = Math.ceil((t + DAY) / HOUR) * HOUR
      push(t, 'mailbox', 'create', 'appointment', m, !(payloads && o.withFields) ? undefined : { subject: `Meeting ${m} of ${index}`, start: { dateTime: local(start), timeZone: 'UTC' }, end: { dateTime: local(start + HOUR), timeZone: 'UTC' }, location: `Room ${m % 20}`, showAs: 'busy', organizer: { address: user } })
      for (let u = poisson(random, 0.7); u > 0; u--) {
        const at = t + exponential(random, 2 * HOUR)
        const room = Math.floor(random() * 40)
        push(at, 'mailbox', 'update', 'appointment', m, payloads && o.withFields ? { location: `Room ${room}` } : undefined)
      }
    }
    // Contact and task edits in Outlook; other CRM users sometimes edit the same field right after.
    // (The edits' fields cost random draws, so they are drawn even when the sink keeps no payloads.)
    const editFields = (kind: 'contact' | 'task'): Fields => {
      const r = Math.floor(random() * 4)
      const v = Math.floor(random() * 1e6)
      if (kind === 'contact') return r === 0 ? { jobTitle: TITLES[v % TITLES.length]! + ` ${v % 100}` } : r === 1 ? { businessPhone: `+49 30 ${v}` } : r === 2 ? { mobilePhone: `+49 170 ${v}` } : { department: DEPTS[v % DEPTS.length]! + ` ${v % 10}` }
      return r === 0 ? { status: STATUSES[v % STATUSES.length]! } : r === 1 ? { priority: PRIORITIES[v % PRIORITIES.length]! } : r === 2 ? { percentComplete: v % 101 } : { description: `Note ${v}` }
    }
    const editStream = (perDay: number, side: WorkloadSide, react: number) => {
      for (const t of arrivals(random, perDay * activity, end)) {
        const kind = random() < 0.6 ? 'contact' : 'task'
        const item = Math.floor(random() * (kind === 'contact' ? o.seedContacts : o.seedTasks))
        if ((kind === 'contact' && o.seedContacts === 0) || (kind === 'task' && o.seedTasks === 0)) continue
        const fields = editFields(kind)
        push(t, side, 'update', kind, item, fields)
        if (random() < react) {
          const other = editFields(kind)
          const name = Object.keys(fields)[0]!
          const value = Object.values(editFields(kind))[0]
          const sameField = Object.keys(other)[0] === name ? other : { [name]: value }
          push(t + random() * 10 * MIN, side === 'mailbox' ? 'crm' : 'mailbox', 'update', kind, item, sameField)
        }
      }
    }
    editStream(o.contactEditsPerDay + o.taskEditsPerDay, 'mailbox', o.conflictReaction)
    editStream(o.crmEditsPerDay, 'crm', 0)
  }
}

/** The sink's columns in event order: initial data first, then by time, ties in generation order (as {@link sortEvents}). */
function sortColumns(sink: ColumnSink): EventColumns {
  const n = sink.n
  const keys = new Float64Array(n)
  for (let i = 0; i < n; i++) keys[i] = sink.box[i]! < 0 ? -1 : sink.t[i]!
  const order = stableOrder(keys)
  const t = new Float64Array(n)
  const box = new Int32Array(n)
  const crm = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    const k = order[i]!
    t[i] = sink.t[k]!
    box[i] = sink.box[k]!
    crm[i] = sink.crm[k]!
  }
  return { t, box, crm, initial: sink.initial }
}

/** Sorts events by time (initial ones first), stable. A bucket (counting) sort by second, then by time within a bucket: O(n) for workloads. */
export function sortEvents(events: WorkloadEvent[]): void {
  const n = events.length
  if (n < 2) return
  const keys = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    const e = events[i]!
    const k = e.initial ? -1 : e.t
    if (!(k >= -1)) {
      // NaN or below: keep the general comparator's behaviour for odd input
      const indexed = events.map((ev, j) => ({ ev, j, k: ev.initial ? -1 : ev.t }))
      indexed.sort((a, b) => a.k - b.k || a.j - b.j)
      for (let j = 0; j < n; j++) events[j] = indexed[j]!.ev
      return
    }
    keys[i] = k
  }
  const order = stableOrder(keys)
  const copy = events.slice()
  for (let i = 0; i < n; i++) events[i] = copy[order[i]!]!
}

/** The indexes of `keys` (each ≥ -1, -1 = initial) sorted by key, ties by index: a bucket sort, then insertion sort within a bucket. */
function stableOrder(keys: Float64Array): Uint32Array {
  const n = keys.length
  let max = 0
  for (let i = 0; i < n; i++) if (keys[i]! > max) max = keys[i]!
  // bucket 0 holds the initial events (key -1); bucket b ≥ 1 holds keys in [(b-1)·w, b·w)
  const buckets = Math.min(n + 1, 1 << 22)
  const width = max / (buckets - 2) || 1
  const bucketOf = (k: number) => (k < 0 ? 0 : 1 + Math.min(buckets - 2, Math.floor(k / width)))
  const counts = new Uint32Array(buckets + 1)
  for (let i = 0; i < n; i++) counts[bucketOf(keys[i]!) + 1]!++
  for (let b = 1; b <= buckets; b++) counts[b]! += counts[b - 1]!
  const starts = counts.slice(0, buckets)
  const order = new Uint32Array(n)
  for (let i = 0; i < n; i++) order[starts[bucketOf(keys[i]!)]!++] = i // stable: ascending index within a bucket
  // within a bucket: insertion sort by (key, index) — buckets hold about one event each
  for (let b = 0; b < buckets; b++) {
    const lo = counts[b]!
    const hi = counts[b + 1]!
    for (let i = lo + 1; i < hi; i++) {
      const x = order[i]!
      const kx = keys[x]!
      let j = i - 1
      while (j >= lo && (keys[order[j]!]! > kx || (keys[order[j]!]! === kx && order[j]! > x))) {
        order[j + 1] = order[j]!
        j--
      }
      order[j + 1] = x
    }
  }
  return order
}

const derivedColumns = new WeakMap<Workload, EventColumns>()

/** The workload's events as columns: `workload.columns`, or derived once per workload from its event objects. */
export function eventColumns(workload: Workload): EventColumns {
  if (workload.columns) return workload.columns
  let c = derivedColumns.get(workload)
  if (c) return c
  const { events } = workload
  const n = events.length
  const index = new Map<string, number>()
  workload.mailboxes.forEach((id, i) => index.set(id, i))
  c = { t: new Float64Array(n), box: new Int32Array(n), crm: new Uint8Array(n), initial: 0 }
  for (let i = 0; i < n; i++) {
    const e = events[i]!
    c.t[i] = e.t
    c.box[i] = e.initial ? -1 : (index.get(e.mailbox) ?? -1)
    c.crm[i] = e.side === 'crm' ? 1 : 0
  }
  while (c.initial < n && events[c.initial]!.initial) c.initial++
  derivedColumns.set(workload, c)
  return c
}

/**
 * The workload as columns in `SharedArrayBuffer`s, without event objects: posted to worker threads, the
 * columns' memory is shared instead of copied (what the stub engine and the oracle read).
 */
export function sharedColumnsWorkload(workload: Workload): Workload {
  const c = eventColumns(workload)
  const share = <A extends Float64Array | Int32Array | Uint8Array>(a: A, make: (buffer: SharedArrayBuffer) => A): A => {
    const shared = make(new SharedArrayBuffer(a.byteLength))
    shared.set(a)
    return shared
  }
  const columns: EventColumns = {
    t: share(c.t, (b) => new Float64Array(b)),
    box: share(c.box, (b) => new Int32Array(b)),
    crm: share(c.crm, (b) => new Uint8Array(b)),
    initial: c.initial,
  }
  return { mailboxes: workload.mailboxes, durationMs: workload.durationMs, events: [], columns }
}

/** How many events the workload holds (as objects or as columns). */
export const eventCount = (workload: Workload): number => (workload.columns ? workload.columns.t.length : workload.events.length)

/** {@link trueRateFunction}'s rates are constant on each hour from 0 (its bins). */
export const TRUE_RATE_STEP_MS = HOUR

/** The true change rate per mailbox (of one side, when given) in hourly bins (what the oracle policy knows): changes per ms. */
export function trueRateFunction(workload: Workload, side?: WorkloadSide): (mailboxId: string, t: number) => number {
  const bins = Math.max(1, Math.ceil(workload.durationMs / HOUR))
  const { t: time, box, crm } = eventColumns(workload)
  const sideFlag = side === undefined ? -1 : side === 'crm' ? 1 : 0
  const counts = new Float64Array(workload.mailboxes.length * bins)
  for (let i = 0; i < box.length; i++) {
    const b = box[i]!
    const h = Math.floor(time[i]! / HOUR)
    if (b >= 0 && h >= 0 && (sideFlag < 0 || crm[i] === sideFlag)) counts[b * bins + Math.min(bins - 1, h)]!++
  }
  const index = new Map<string, number>()
  workload.mailboxes.forEach((id, i) => index.set(id, i))
  let lastId: string | undefined
  let base = -1
  return (id, t) => {
    // the oracle asks for every mailbox in turn, often for the same one twice: remember the last lookup
    if (id !== lastId) {
      lastId = id
      const b = index.get(id)
      base = b === undefined ? -1 : b * bins
    }
    if (base < 0) return 0
    const b = Math.min(bins - 1, Math.max(0, Math.floor(t / HOUR)))
    // a floor keeps idle hours from being treated as never changing
    return Math.max(counts[base + b]!, 0.05) / HOUR
  }
}
