/**
 * Delta query engine.
 *
 * A round walks a container's change log between two mailbox sequence numbers. A token carries the
 * encoded query (kind, container, $select, changeType, calendar window, $top), the round bounds and the
 * position in the log, plus a sync-state id and generation. The server only keeps, per sync state, the
 * newest K generations; an older or unknown generation answers 410 SyncStateNotFound.
 */
import { createHmac, randomUUID } from 'node:crypto'
import { GraphHttpError } from './errors.js'
import { evaluate, objectResolver, parseFilter } from './odata/filter.js'
import { parseExpand } from './odata/query.js'
import { renderItem, renderRemoved } from './store/render.js'
import type { Container, Item, LogEntry, Mailbox } from './store/types.js'
import { expandShape, occurrenceId } from './store/recurrence.js'
import { shapeOf, type Store } from './store/store.js'

export type DeltaKind = Item['kind']

export interface DeltaQuery {
  k: DeltaKind
  c: string
  /** Link path under /v1.0 without query, e.g. `users/a@x/mailfolders('id')/messages/delta`. */
  p: string
  sel?: string[] | undefined
  ct?: 'created' | 'updated' | 'deleted' | undefined
  ws?: string | undefined
  we?: string | undefined
  top?: number | undefined
  /** `$filter` (messages: only `receivedDateTime ge|gt …`). */
  f?: string | undefined
  /** `$expand` of the initial request (extended properties, linkedResources), encoded like every option. */
  x?: string | undefined
}

export interface TokenState {
  v: 1
  sid: string
  g: number
  mb: string
  q: DeltaQuery
  /** Exclusive lower bound of the round (mailbox sequence). */
  from: number
  /** Inclusive upper bound of the round; null in a deltatoken (round not started yet). */
  to: number | null
  pos: number
  n: number
  init: boolean
  /** Duplicate-delivery mode: key of the last item emitted, re-sent at the start of the next page. */
  d?: string | undefined
  /** Rest id of `d` when it was emitted. */
  dr?: string | undefined
  /** Position inside the outputs of the entry at `pos` (a series expands into several occurrences). */
  sub?: number | undefined
}

export interface SyncStateRecord {
  highest: number
  kept: number[]
  /** Generation of the deltaLink that started the round in progress; it stays valid until the round ends. */
  pinned?: number | undefined
}

export class SyncStates {
  readonly states = new Map<string, SyncStateRecord>()
  constructor(
    private readonly keep: number,
    private readonly maxStates: number,
  ) {}

  create(): string {
    const sid = randomUUID()
    this.states.set(sid, { highest: 0, kept: [] })
    if (this.states.size > this.maxStates) {
      const oldest = this.states.keys().next().value
      if (oldest !== undefined) this.states.delete(oldest)
    }
    return sid
  }

  issue(sid: string): number {
    const s = this.states.get(sid)
    if (!s) throw new Error(`sync state ${sid} vanished`)
    const g = ++s.highest
    s.kept.push(g)
    while (s.kept.length > this.keep) s.kept.shift()
    return g
  }

  check(sid: string, g: number): SyncStateRecord | undefined {
    const s = this.states.get(sid)
    if (!s || (!s.kept.includes(g) && s.pinned !== g)) return undefined
    return s
  }

  /** Keeps the round's starting deltaLink usable (restart the round from it) until the round ends. */
  pin(sid: string, g: number | undefined): void {
    const s = this.states.get(sid)
    if (s) s.pinned = g
  }

  describe(sid: string, g: number): string {
    const s = this.states.get(sid)
    const highest = s ? s.highest : -1
    const kept = s ? [...s.kept].reverse().map((x) => `[${x}]`).join('') : ''
    return `The sync state generation is not found; generation=${g};[highest=${highest}]${kept}.`
  }

  clear(): void {
    this.states.clear()
  }
}

export class TokenCodec {
  constructor(private readonly secret: string) {}

  encode(state: TokenState): string {
    const json = Buffer.from(JSON.stringify(state)).toString('base64url')
    return `${json}.${this.sign(json)}`
  }

  decode(token: string): TokenState {
    const dot = token.lastIndexOf('.')
    const bad = (): GraphHttpError =>
      new GraphHttpError(400, 'invalidRequest', `The delta token '${token.slice(0, 64)}' is malformed and cannot be parsed.`)
    if (dot <= 0) throw bad()
    const json = token.slice(0, dot)
    if (this.sign(json) !== token.slice(dot + 1)) throw bad()
    try {
      const s = JSON.parse(Buffer.from(json, 'base64url').toString('utf8')) as TokenState
      if (s.v !== 1 || typeof s.sid !== 'string' || typeof s.g !== 'number') throw bad()
      return s
    } catch {
      throw bad()
    }
  }

  private sign(data: string): string {
    return createHmac('sha256', this.secret).update(data).digest('base64url').slice(0, 22)
  }
}

function lowerBound(log: LogEntry[], seq: number): number {
  let lo = 0
  let hi = log.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((log[mid] as LogEntry).seq <= seq) lo = mid + 1
    else hi = mid
  }
  return lo
}

export interface PageInput {
  mb: Mailbox
  container: Container
  state: TokenState
  pageSize: number
  immutable: boolean
  duplicates: boolean
  emptyPage: boolean
  /** `Prefer: outlook.timezone` of this request (event start/end are expressed in it). */
  timeZone?: { name: string; iana: string } | undefined
  /** Expands series masters into occurrences (calendarView rounds). */
  store: Pick<Store, 'seriesInstances' | 'occurrenceItem'>
}

export interface PageOutput {
  value: Record<string, unknown>[]
  /** State for the next link; `to === null` means a deltaLink. */
  next: TokenState
}

/** Starts a round from a deltatoken state (to === null) or a fresh initial state. */
export function startRound(state: TokenState, mb: Mailbox, container: Container, visibleSeq: number = mb.seq): TokenState {
  return { ...state, to: Math.max(state.from, visibleSeq), pos: lowerBound(container.log, state.from), sub: undefined, n: 0 }
}

/**
 * Processing-delay fault: remembers the mailbox sequence at each delta call so that a round can be cut
 * at the sequence seen `lag` calls ago (changes become visible only after that many calls).
 */
export class VisibilityLag {
  private readonly history = new Map<string, number[]>()
  constructor(public lag = 0) {}

  visibleSeq(mb: Mailbox): number {
    const h = this.history.get(mb.id) ?? []
    h.push(mb.seq)
    while (h.length > this.lag + 1) h.shift()
    this.history.set(mb.id, h)
    return h[0] as number
  }

  reset(): void {
    this.history.clear()
  }
}

type Output = { type: 'item'; item: Item } | { type: 'removed'; id: string }

export function runPage(input: PageInput): PageOutput {
  const { mb, container, state, pageSize, immutable } = input
  const q = state.q
  const to = state.to ?? mb.seq
  const log = container.log
  const ws = q.ws === undefined ? undefined : Date.parse(q.ws)
  const we = q.we === undefined ? undefined : Date.parse(q.we)
  const inWindow = (it: Item): boolean =>
    ws === undefined || we === undefined || ((it.startMs ?? 0) < we && (it.endMs ?? 0) > ws) || (it.startMs === it.endMs && (it.startMs ?? 0) >= ws && (it.startMs ?? 0) < we)
  const windowed = ws !== undefined && we !== undefined

  const filter = q.f === undefined ? undefined : parseFilter(q.f)
  const matches = (it: Item): boolean => filter === undefined || evaluate(filter, objectResolver(it.data))
  const removedId = (key: string, restId: string): string => (immutable ? key : restId)
  const occId = (masterKey: string, masterRest: string, occ: string): string => occurrenceId(removedId(masterKey, masterRest), occ)

  /** What an entry becomes in this round: an item, a removal, or nothing. */
  const classify = (e: LogEntry): 'item' | 'removed' | null => {
    if (container.lastEntry.get(e.key) !== e.seq) {
      // Without immutable ids an item that left and came back (or left again) has a new id: the
      // client may still hold the id it had when it left, so that removal is reported too.
      if (!immutable && e.removed && e.restId !== mb.items.get(e.key)?.restId) return 'removed'
      return null
    }
    let kind: 'item' | 'removed' = 'removed'
    if (!e.removed) {
      const it = mb.items.get(e.key)
      if (it && it.containerId === container.id && (windowed && shapeOf(it) ? true : inWindow(it))) {
        if (!matches(it)) return null
        kind = 'item'
      }
    }
    if (state.init) return kind === 'item' ? 'item' : null
    if (q.ct === 'deleted') return kind === 'removed' ? 'removed' : null
    if (q.ct === 'created' || q.ct === 'updated') {
      if (kind !== 'item') return null
      const it = mb.items.get(e.key) as Item
      const created = it.addedSeq > state.from
      return (q.ct === 'created') === created ? 'item' : null
    }
    return kind
  }

  /**
   * The outputs of one log entry. Outside calendarView (or for events that are not and were not
   * recurring) that is the item or its removal. In a calendarView round a series master stands for its
   * occurrences and exceptions in the window (a series edit changes every one of them), plus removals
   * of occurrences it no longer has; an entry about one occurrence gives that occurrence or its removal.
   */
  const outputsOf = (e: LogEntry): Output[] => {
    if (e.occ !== undefined) {
      if (!windowed) return []
      if (container.lastEntry.get(`${e.key}|${e.occ}`) !== e.seq || (container.lastEntry.get(e.key) ?? 0) > e.seq) return []
      const master = mb.items.get(e.key)
      const occ = master && master.containerId === container.id ? input.store.occurrenceItem(master, e.occ) : undefined
      if (occ && inWindow(occ)) return [{ type: 'item', item: occ }]
      return state.init || (q.ct !== undefined && q.ct !== 'deleted') ? [] : [{ type: 'removed', id: occId(e.key, e.restId, e.occ) }]
    }
    const kind = classify(e)
    if (kind === null) return []
    const it = mb.items.get(e.key)
    const pastShapes = e.removed ? (e.shapes ?? []) : (it?.pastShapes ?? [])
    const master = kind === 'item' && it && windowed ? shapeOf(it) : undefined
    if (!windowed || (!master && pastShapes.length === 0)) {
      if (kind === 'item' && it) return [{ type: 'item', item: it }]
      return [{ type: 'removed', id: immutable ? e.key : e.removed || !it ? e.restId : it.restId }]
    }
    const out: Output[] = []
    const present = new Set<string>()
    if (master && it) {
      for (const occ of input.store.seriesInstances(it, ws as number, we as number)) {
        out.push({ type: 'item', item: occ })
        present.add(occ.occurrence?.key ?? '')
      }
    } else if (kind === 'item' && it) {
      out.push({ type: 'item', item: it })
    }
    if (state.init || q.ct === 'created' || q.ct === 'updated') return out
    const masterRest = e.removed || !it ? e.restId : it.restId
    // The series' own id (the client may hold it from when it was a single event) and its former occurrences.
    if (master || kind === 'removed') out.push({ type: 'removed', id: removedId(e.key, masterRest) })
    const gone = new Set<string>(master && it ? (it.series?.cancelled ?? []) : [])
    for (const shape of pastShapes) for (const inst of expandShape(shape, ws, we as number)) gone.add(inst.key)
    for (const key of gone) if (!present.has(key)) out.push({ type: 'removed', id: occId(e.key, masterRest, key) })
    return out
  }

  const expand = q.x === undefined ? undefined : parseExpand({ $expand: q.x })
  const renderOut = (o: Output): Record<string, unknown> =>
    o.type === 'item'
      ? renderItem(o.item, { immutable, select: q.sel, withType: true, timeZone: input.timeZone, ...(expand ? { expandExt: expand.ext, extFilter: expand.extFilter, expandLinked: expand.linkedResources } : {}) })
      : renderRemoved(q.k, o.id)

  const value: Record<string, unknown>[] = []
  if (input.emptyPage) return { value, next: { ...state, to } }

  if (input.duplicates && state.d !== undefined) {
    const it = mb.items.get(state.d)
    const present = it !== undefined && it.containerId === container.id && inWindow(it)
    value.push(present ? renderOut({ type: 'item', item: it }) : renderRemoved(q.k, immutable ? state.d : (state.dr ?? it?.restId ?? state.d)))
  }
  let pos = state.pos
  let sub = state.sub ?? 0
  let remaining = q.top === undefined ? Number.POSITIVE_INFINITY : q.top - state.n
  let lastKey: string | undefined
  let lastRest: string | undefined
  let emitted = 0
  while (pos < log.length && emitted < pageSize && remaining > 0) {
    const e = log[pos] as LogEntry
    if (e.seq > to) break
    const outs = outputsOf(e)
    while (sub < outs.length && emitted < pageSize && remaining > 0) {
      const o = outs[sub] as Output
      value.push(renderOut(o))
      sub++
      emitted++
      remaining--
      // Duplicate-delivery mode repeats plain items only (an occurrence has no entry of its own).
      if (e.occ === undefined && (o.type === 'removed' || !o.item.occurrence) && outs.length === 1) {
        lastKey = e.key
        lastRest = e.removed ? e.restId : (mb.items.get(e.key)?.restId ?? e.restId)
      }
    }
    if (sub < outs.length) break
    pos++
    sub = 0
  }
  if (sub === 0) while (pos < log.length && (log[pos] as LogEntry).seq <= to && outputsOf(log[pos] as LogEntry).length === 0) pos++
  const more = pos < log.length && (log[pos] as LogEntry).seq <= to
  const d = input.duplicates ? (lastKey ?? state.d) : undefined
  const dr = input.duplicates ? (lastKey !== undefined ? lastRest : state.dr) : undefined
  if (more && (remaining > 0 || emitted > 0)) {
    return { value, next: { ...state, to, pos, sub: sub === 0 ? undefined : sub, n: state.n + emitted, d, dr } }
  }
  const from = more ? (log[pos] as LogEntry).seq - 1 : to
  return {
    value,
    next: { ...state, from, to: null, pos: 0, sub: undefined, n: 0, init: false, d: input.duplicates && d !== undefined ? d : undefined, dr },
  }
}
