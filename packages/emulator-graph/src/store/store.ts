/**
 * In-memory mailbox store. Every write appends an entry to the owning container's change log under a
 * per-mailbox sequence number; delta rounds walk that log instead of copying state per token.
 */
import { EmulatorError, GraphHttpError, notFound } from '../errors.js'
import { newChangeKey, newContainerId, newGuid, newImmutableId, newRestId } from '../ids.js'
import type { Clock } from '../clock.js'
import { normaliseExtId } from './ext-props.js'
import { requireTimeZone, utcToZoned, zonedToUtc } from '../timezones.js'
import {
  expandShape,
  instanceTimes,
  isPatternKey,
  normaliseRecurrence,
  occurrenceId,
  parseOccurrenceId,
  recurrenceInputSchema,
  type SeriesShape,
} from './recurrence.js'
import type {
  Category,
  ChangeEvent,
  ExceptionRecord,
  Container,
  ContainerKind,
  ExtendedProperty,
  Item,
  ItemKind,
  LinkedResource,
  LogEntry,
  Mailbox,
} from './types.js'

export const WELL_KNOWN_MAIL_FOLDERS: ReadonlyArray<readonly [string, string]> = [
  ['inbox', 'Inbox'],
  ['drafts', 'Drafts'],
  ['sentitems', 'Sent Items'],
  ['deleteditems', 'Deleted Items'],
  ['junkemail', 'Junk Email'],
  ['outbox', 'Outbox'],
  ['archive', 'Archive'],
]

export const CONTAINER_OF: Record<ItemKind, ContainerKind> = {
  message: 'mailFolder',
  event: 'calendar',
  contact: 'contactFolder',
  task: 'todoList',
}

export const DEFAULT_CATEGORIES: ReadonlyArray<readonly [string, string]> = [
  ['Red category', 'preset0'],
  ['Orange category', 'preset1'],
  ['Yellow category', 'preset3'],
  ['Green category', 'preset4'],
  ['Blue category', 'preset7'],
  ['Purple category', 'preset8'],
]

export interface WriteInput {
  fields: Record<string, unknown>
  ext?: ExtendedProperty[] | undefined
  linkedResources?: Array<Omit<LinkedResource, 'id'>> | undefined
}

const DT_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?$/

/**
 * Parses a dateTimeTimeZone value. `timeZone` is an IANA or Windows name (default UTC; unknown → 400
 * `TimeZoneNotSupportedException`). A `dateTime` without offset is a wall-clock time in that zone; one
 * with an offset (`Z`, `+02:00`) is an instant, re-expressed in the zone. `ms` is the true instant.
 */
export function parseDateTimeTz(v: unknown, field: string): { dateTime: string; timeZone: string; ms: number } {
  const o = v as { dateTime?: unknown; timeZone?: unknown } | null
  const dt = typeof o?.dateTime === 'string' ? o.dateTime : ''
  const m = DT_RE.exec(dt)
  const localMs = m ? Date.parse(`${m[1]}${m[2] ?? ''}Z`) : Number.NaN
  if (!m || Number.isNaN(localMs)) {
    throw new GraphHttpError(400, 'RequestBodyRead', `Invalid value for '${field}.dateTime': '${dt}' is not a valid date and time.`)
  }
  const timeZone = typeof o?.timeZone === 'string' && o.timeZone !== '' ? o.timeZone : 'UTC'
  const iana = requireTimeZone(timeZone)
  if (m[3] !== undefined) {
    const ms = Date.parse(`${m[1]}${m[2] ?? ''}${m[3]}`)
    return { dateTime: utcToZoned(ms, iana), timeZone, ms }
  }
  return { dateTime: `${m[1]}.0000000`, timeZone, ms: zonedToUtc(localMs, iana) }
}

function preview(body: unknown): string {
  const content = (body as { content?: unknown } | undefined)?.content
  if (typeof content !== 'string') return ''
  return content
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 255)
}

export type ChangeListener = (event: ChangeEvent) => void

/** To Do task properties of type dateTimeTimeZone. */
export const TASK_DATE_FIELDS = ['dueDateTime', 'reminderDateTime', 'startDateTime', 'completedDateTime'] as const

/** How many earlier recurrence shapes an event remembers (delta reports their occurrences removed). */
const MAX_PAST_SHAPES = 10

/** The recurrence shape of a series master, or undefined for any other event. */
export function shapeOf(item: Item): SeriesShape | undefined {
  const rec = item.data['recurrence'] as SeriesShape['recurrence'] | null | undefined
  if (item.kind !== 'event' || !rec || item.startMs === undefined || item.endMs === undefined) return undefined
  return { recurrence: rec, startMs: item.startMs, endMs: item.endMs }
}

export class Store {
  readonly mailboxes = new Map<string, Mailbox>()
  private readonly byUpn = new Map<string, string>()
  private readonly listeners: ChangeListener[] = []
  /** Bumped on every write; persistence uses it to know when to save. */
  version = 0

  constructor(private readonly clock: Clock) {}

  onChange(listener: ChangeListener): void {
    this.listeners.push(listener)
  }

  private emit(event: ChangeEvent): void {
    for (const l of this.listeners) l(event)
  }

  clear(): void {
    this.mailboxes.clear()
    this.byUpn.clear()
    this.version++
  }

  // ---------- mailboxes ----------

  createMailbox(upn: string, displayName?: string): Mailbox {
    const existing = this.findMailbox(upn)
    if (existing) return existing
    const mb: Mailbox = {
      id: newGuid(),
      upn,
      displayName: displayName ?? upn.split('@')[0] ?? upn,
      seq: 0,
      containers: new Map(),
      wellKnown: new Map(),
      items: new Map(),
      restIndex: new Map(),
      transactionIds: new Map(),
      categories: new Map(),
    }
    this.addMailbox(mb)
    for (const [name, display] of WELL_KNOWN_MAIL_FOLDERS) {
      this.createContainer(mb, 'mailFolder', { displayName: display, isHidden: false }, name)
    }
    this.createContainer(mb, 'calendar', { name: 'Calendar', color: 'auto' }, 'calendar')
    this.createContainer(mb, 'contactFolder', { displayName: 'Contacts' }, 'contacts')
    this.createContainer(mb, 'todoList', { displayName: 'Tasks', wellknownListName: 'defaultList' }, 'defaultlist')
    for (const [name, color] of DEFAULT_CATEGORIES) {
      const id = newGuid()
      mb.categories.set(id, { id, displayName: name, color })
    }
    return mb
  }

  addMailbox(mb: Mailbox): void {
    this.mailboxes.set(mb.id, mb)
    this.byUpn.set(mb.upn.toLowerCase(), mb.id)
    this.version++
  }

  findMailbox(idOrUpn: string): Mailbox | undefined {
    const byId = this.mailboxes.get(idOrUpn) ?? this.mailboxes.get(idOrUpn.toLowerCase())
    if (byId) return byId
    const id = this.byUpn.get(idOrUpn.toLowerCase())
    return id === undefined ? undefined : this.mailboxes.get(id)
  }

  requireMailbox(idOrUpn: string): Mailbox {
    const mb = this.findMailbox(idOrUpn)
    if (!mb) throw new EmulatorError('unknown-mailbox', `unknown mailbox '${idOrUpn}'`)
    return mb
  }

  // ---------- containers ----------

  createContainer(
    mb: Mailbox,
    kind: ContainerKind,
    data: Record<string, unknown>,
    wellKnownName?: string,
    parentId?: string,
  ): Container {
    const c: Container = {
      id: newContainerId(),
      kind,
      wellKnownName,
      parentId,
      changeKey: newChangeKey(),
      data,
      members: new Set(),
      log: [],
      lastEntry: new Map(),
    }
    mb.containers.set(c.id, c)
    if (wellKnownName !== undefined) mb.wellKnown.set(`${kind}:${wellKnownName}`, c.id)
    this.version++
    return c
  }

  /** Finds a container by id or well-known name (`inbox`, `calendar`, `contacts`, `defaultList`...). */
  findContainer(mb: Mailbox, kind: ContainerKind, idOrName: string): Container | undefined {
    const direct = mb.containers.get(idOrName)
    if (direct) return direct.kind === kind ? direct : undefined
    const wk = mb.wellKnown.get(`${kind}:${idOrName.toLowerCase()}`)
    return wk === undefined ? undefined : mb.containers.get(wk)
  }

  requireContainer(mb: Mailbox, kind: ContainerKind, idOrName: string): Container {
    const c = this.findContainer(mb, kind, idOrName)
    if (!c) throw notFound()
    return c
  }

  defaultContainer(mb: Mailbox, kind: ContainerKind): Container {
    const name = { mailFolder: 'drafts', calendar: 'calendar', contactFolder: 'contacts', todoList: 'defaultlist' }[kind]
    return this.requireContainer(mb, kind, name)
  }

  updateContainer(c: Container, data: Record<string, unknown>): void {
    Object.assign(c.data, data)
    c.changeKey = newChangeKey()
    this.version++
  }

  deleteContainer(mb: Mailbox, c: Container): void {
    if (c.wellKnownName !== undefined) {
      throw new GraphHttpError(403, 'ErrorDeleteDistinguishedFolder', 'Distinguished folders cannot be deleted.')
    }
    for (const key of [...c.members]) {
      const item = mb.items.get(key)
      if (item) this.deleteItem(mb, item)
    }
    for (const child of [...mb.containers.values()]) {
      if (child.parentId === c.id) this.deleteContainer(mb, child)
    }
    mb.containers.delete(c.id)
    this.version++
  }

  // ---------- items ----------

  findItem(mb: Mailbox, id: string, kind?: ItemKind): Item | undefined {
    const key = mb.restIndex.get(id) ?? id
    const item = mb.items.get(key)
    if (!item) {
      const occ = parseOccurrenceId(id)
      if (!occ || (kind !== undefined && kind !== 'event')) return undefined
      const master = this.findItem(mb, occ.masterId, 'event')
      return master ? this.occurrenceItem(master, occ.key) : undefined
    }
    if (kind !== undefined && item.kind !== kind) return undefined
    return item
  }

  requireItem(mb: Mailbox, id: string, kind: ItemKind, container?: Container): Item {
    const item = this.findItem(mb, id, kind)
    if (!item || (container !== undefined && item.containerId !== container.id)) throw notFound()
    return item
  }

  private appendLog(mb: Mailbox, c: Container, item: Item, removed: boolean, occ?: string, shapes?: SeriesShape[]): number {
    const seq = ++mb.seq
    const entry: LogEntry = { seq, key: item.immutableId, removed, restId: item.restId }
    if (occ !== undefined) entry.occ = occ
    if (shapes !== undefined && shapes.length > 0) entry.shapes = shapes
    c.log.push(entry)
    c.lastEntry.set(occ === undefined ? item.immutableId : `${item.immutableId}|${occ}`, seq)
    this.version++
    return seq
  }

  createItem(mb: Mailbox, kind: ItemKind, container: Container, input: WriteInput): Item {
    const now = this.clock.iso()
    const data = this.defaults(mb, kind, now)
    const item: Item = {
      kind,
      immutableId: newImmutableId(),
      restId: newRestId(),
      containerId: container.id,
      changeKey: newChangeKey(),
      createdDateTime: now,
      lastModifiedDateTime: now,
      addedSeq: 0,
      data,
      ext: {},
      linkedResources: [],
    }
    this.applyFields(mb, item, input, true)
    mb.items.set(item.immutableId, item)
    mb.restIndex.set(item.restId, item.immutableId)
    container.members.add(item.immutableId)
    item.addedSeq = this.appendLog(mb, container, item, false)
    const tx = item.data['transactionId']
    if (typeof tx === 'string') mb.transactionIds.set(tx, item.immutableId)
    this.emit({ mailbox: mb, item, containerId: container.id, changeType: 'created', restId: item.restId })
    return item
  }

  updateItem(mb: Mailbox, item: Item, input: WriteInput): Item {
    if (item.occurrence) return this.updateOccurrence(mb, item, input)
    if (
      item.kind === 'event' &&
      input.fields['transactionId'] !== undefined &&
      item.data['transactionId'] != null &&
      input.fields['transactionId'] !== item.data['transactionId']
    ) {
      throw new GraphHttpError(400, 'ErrorInvalidRequest', 'The transactionId of an event cannot be changed once set.')
    }
    // A write that fails validation half-way (bad recurrence, end before start) leaves the item as it was.
    const backup = structuredClone({ data: item.data, ext: item.ext, linkedResources: item.linkedResources, startMs: item.startMs, endMs: item.endMs, series: item.series, pastShapes: item.pastShapes, times: item.times })
    try {
      this.applyFields(mb, item, input, false)
    } catch (error) {
      Object.assign(item, backup)
      throw error
    }
    item.changeKey = newChangeKey()
    item.lastModifiedDateTime = this.clock.iso()
    const c = mb.containers.get(item.containerId)
    if (c) this.appendLog(mb, c, item, false)
    this.emit({ mailbox: mb, item, containerId: item.containerId, changeType: 'updated', restId: item.restId })
    return item
  }

  deleteItem(mb: Mailbox, item: Item): void {
    if (item.occurrence) return this.cancelOccurrence(mb, item)
    const c = mb.containers.get(item.containerId)
    mb.items.delete(item.immutableId)
    mb.restIndex.delete(item.restId)
    const tx = item.data['transactionId']
    if (typeof tx === 'string' && mb.transactionIds.get(tx) === item.immutableId) mb.transactionIds.delete(tx)
    if (c) {
      c.members.delete(item.immutableId)
      const shape = shapeOf(item)
      this.appendLog(mb, c, item, true, undefined, [...(item.pastShapes ?? []), ...(shape ? [shape] : [])])
    }
    this.emit({ mailbox: mb, item, containerId: item.containerId, changeType: 'deleted', restId: item.restId })
  }

  // ---------- recurring series ----------

  /**
   * The instances of a series master whose time range overlaps [fromMs, toMs): occurrences and
   * exceptions, without cancelled occurrences, sorted by start.
   */
  seriesInstances(master: Item, fromMs: number, toMs: number): Item[] {
    const shape = shapeOf(master)
    if (!shape) return []
    const series = master.series ?? { exceptions: {}, cancelled: [] }
    const cancelled = new Set(series.cancelled)
    const overlaps = (s: number, e: number) => (s < toMs && e > fromMs) || (s === e && s >= fromMs && s < toMs)
    const out: Item[] = []
    for (const inst of expandShape(shape, undefined, toMs)) {
      if (cancelled.has(inst.key) || series.exceptions[inst.key] !== undefined) continue
      if (overlaps(inst.startMs, inst.endMs)) out.push(this.buildOccurrence(master, inst.key, inst.startMs, inst.endMs, inst.startMs, undefined))
    }
    for (const [key, ex] of Object.entries(series.exceptions)) {
      if (cancelled.has(key) || !overlaps(ex.startMs, ex.endMs)) continue
      out.push(this.buildOccurrence(master, key, ex.startMs, ex.endMs, instanceTimes(shape, key).startMs, ex))
    }
    return out.sort((a, b) => (a.startMs ?? 0) - (b.startMs ?? 0))
  }

  /** The transient item of the occurrence of `master` on date key `key`, or undefined (no such occurrence, or cancelled). */
  occurrenceItem(master: Item, key: string): Item | undefined {
    const shape = shapeOf(master)
    if (!shape) return undefined
    const series = master.series ?? { exceptions: {}, cancelled: [] }
    if (series.cancelled.includes(key)) return undefined
    const ex = series.exceptions[key]
    if (!ex && !isPatternKey(shape, key)) return undefined
    const t = instanceTimes(shape, key)
    return this.buildOccurrence(master, key, ex?.startMs ?? t.startMs, ex?.endMs ?? t.endMs, t.startMs, ex)
  }

  private buildOccurrence(master: Item, key: string, startMs: number, endMs: number, originalStartMs: number, ex: ExceptionRecord | undefined): Item {
    return {
      kind: 'event',
      immutableId: occurrenceId(master.immutableId, key),
      restId: occurrenceId(master.restId, key),
      containerId: master.containerId,
      changeKey: ex?.changeKey ?? master.changeKey,
      createdDateTime: ex?.createdDateTime ?? master.createdDateTime,
      lastModifiedDateTime: ex?.lastModifiedDateTime ?? master.lastModifiedDateTime,
      addedSeq: master.addedSeq,
      data: { ...master.data, transactionId: null, ...(ex?.fields ?? {}), type: ex ? 'exception' : 'occurrence', recurrence: null },
      ext: master.ext,
      linkedResources: [],
      startMs,
      endMs,
      occurrence: { master, key, originalStartMs },
    }
  }

  /** PATCH of an occurrence: it becomes (or stays) an exception with its own change key. */
  private updateOccurrence(mb: Mailbox, occ: Item, input: WriteInput): Item {
    const { master, key } = occ.occurrence as NonNullable<Item['occurrence']>
    const f = input.fields
    if (f['recurrence'] !== undefined) {
      throw new GraphHttpError(400, 'ErrorInvalidRecurrence', "Invalid recurrence: 'recurrence' can only be set on the series master, not on an occurrence.")
    }
    if (f['transactionId'] !== undefined) {
      throw new GraphHttpError(400, 'ErrorInvalidRequest', 'The transactionId of an occurrence cannot be set.')
    }
    const series = (master.series ??= { exceptions: {}, cancelled: [] })
    const now = this.clock.iso()
    const ex: ExceptionRecord = series.exceptions[key] ?? {
      changeKey: '',
      createdDateTime: now,
      lastModifiedDateTime: now,
      fields: {},
      startMs: occ.startMs ?? 0,
      endMs: occ.endMs ?? 0,
    }
    for (const [k, v] of Object.entries(f)) if (v !== undefined) ex.fields[k] = v
    if (f['body'] !== undefined) ex.fields['bodyPreview'] = preview(f['body'])
    if (f['start'] !== undefined || f['end'] !== undefined) {
      const tz = (v: unknown) => ((v as { timeZone?: string } | undefined)?.timeZone ?? 'UTC')
      const start = f['start'] !== undefined ? parseDateTimeTz(f['start'], 'start') : { ms: ex.startMs, dateTime: '', timeZone: '' }
      const end = f['end'] !== undefined ? parseDateTimeTz(f['end'], 'end') : { ms: ex.endMs, dateTime: '', timeZone: '' }
      if (end.ms < start.ms) throw new GraphHttpError(400, 'ErrorInvalidRequest', "The 'end' of an event must not be before its 'start'.")
      ex.startMs = start.ms
      ex.endMs = end.ms
      delete ex.fields['start']
      delete ex.fields['end']
      if (f['start'] !== undefined) ex.fields['originalStartTimeZone'] = tz(f['start'])
      if (f['end'] !== undefined) ex.fields['originalEndTimeZone'] = tz(f['end'])
    }
    ex.changeKey = newChangeKey()
    ex.lastModifiedDateTime = now
    series.exceptions[key] = ex
    const c = mb.containers.get(master.containerId)
    if (c) this.appendLog(mb, c, master, false, key)
    this.emit({ mailbox: mb, item: master, containerId: master.containerId, changeType: 'updated', restId: master.restId })
    return this.occurrenceItem(master, key) as Item
  }

  /** DELETE of an occurrence: it is cancelled (left out of calendarView and instances; delta reports it removed). */
  private cancelOccurrence(mb: Mailbox, occ: Item): void {
    const { master, key } = occ.occurrence as NonNullable<Item['occurrence']>
    const series = (master.series ??= { exceptions: {}, cancelled: [] })
    if (!series.cancelled.includes(key)) series.cancelled.push(key)
    delete series.exceptions[key]
    const c = mb.containers.get(master.containerId)
    if (c) this.appendLog(mb, c, master, true, key)
    this.emit({ mailbox: mb, item: master, containerId: master.containerId, changeType: 'updated', restId: master.restId })
  }

  /** Moves an item to another container of the same kind; the rest id changes, the immutable id stays. */
  moveItem(mb: Mailbox, item: Item, dest: Container): Item {
    const src = mb.containers.get(item.containerId)
    if (src?.id === dest.id) return item
    const oldRestId = item.restId
    if (src) {
      src.members.delete(item.immutableId)
      this.appendLog(mb, src, item, true)
    }
    this.emit({ mailbox: mb, item, containerId: item.containerId, changeType: 'deleted', restId: oldRestId })
    mb.restIndex.delete(oldRestId)
    item.restId = newRestId()
    mb.restIndex.set(item.restId, item.immutableId)
    item.containerId = dest.id
    item.changeKey = newChangeKey()
    item.lastModifiedDateTime = this.clock.iso()
    dest.members.add(item.immutableId)
    item.addedSeq = this.appendLog(mb, dest, item, false)
    this.emit({ mailbox: mb, item, containerId: dest.id, changeType: 'created', restId: item.restId })
    return item
  }

  private defaults(mb: Mailbox, kind: ItemKind, now: string): Record<string, unknown> {
    switch (kind) {
      case 'message':
        return {
          receivedDateTime: now,
          sentDateTime: now,
          hasAttachments: false,
          internetMessageId: `<${newGuid()}@emulator.contoso.test>`,
          subject: '',
          bodyPreview: '',
          importance: 'normal',
          conversationId: `AAQk${newGuid().replace(/-/g, '')}`,
          isDeliveryReceiptRequested: false,
          isReadReceiptRequested: false,
          isRead: false,
          isDraft: false,
          inferenceClassification: 'focused',
          body: { contentType: 'text', content: '' },
          sender: null,
          from: null,
          toRecipients: [],
          ccRecipients: [],
          bccRecipients: [],
          replyTo: [],
          flag: { flagStatus: 'notFlagged' },
          categories: [],
        }
      case 'event':
        return {
          transactionId: null,
          iCalUId: `040000008200E00074C5B7101A82E008${newGuid().replace(/-/g, '').toUpperCase()}`,
          subject: '',
          bodyPreview: '',
          body: { contentType: 'text', content: '' },
          importance: 'normal',
          sensitivity: 'normal',
          isAllDay: false,
          isCancelled: false,
          isOrganizer: true,
          isReminderOn: true,
          reminderMinutesBeforeStart: 15,
          responseRequested: true,
          showAs: 'busy',
          type: 'singleInstance',
          seriesMasterId: null,
          recurrence: null,
          hasAttachments: false,
          isDraft: false,
          isOnlineMeeting: false,
          onlineMeeting: null,
          responseStatus: { response: 'organizer', time: '0001-01-01T00:00:00Z' },
          location: { displayName: '' },
          locations: [],
          attendees: [],
          organizer: { emailAddress: { name: mb.displayName, address: mb.upn } },
          categories: [],
        }
      case 'contact':
        return {
          displayName: '',
          givenName: null,
          surname: null,
          middleName: null,
          nickName: null,
          initials: null,
          title: null,
          generation: null,
          fileAs: '',
          emailAddresses: [],
          imAddresses: [],
          businessPhones: [],
          homePhones: [],
          mobilePhone: null,
          businessAddress: {},
          homeAddress: {},
          otherAddress: {},
          companyName: null,
          department: null,
          jobTitle: null,
          officeLocation: null,
          profession: null,
          manager: null,
          assistantName: null,
          businessHomePage: null,
          birthday: null,
          spouseName: null,
          children: [],
          personalNotes: '',
          categories: [],
        }
      case 'task':
        return {
          title: '',
          body: { content: '', contentType: 'text' },
          status: 'notStarted',
          importance: 'normal',
          isReminderOn: false,
          hasAttachments: false,
          categories: [],
          bodyLastModifiedDateTime: now,
        }
    }
  }

  private applyFields(mb: Mailbox, item: Item, input: WriteInput, creating: boolean): void {
    const f = input.fields
    const before = item.kind === 'event' && !creating ? shapeOf(item) : undefined
    for (const [k, v] of Object.entries(f)) {
      if (v === undefined || k === 'singleValueExtendedProperties' || k === 'linkedResources') continue
      if (item.kind === 'event' && k === 'recurrence') continue
      item.data[k] = v
    }
    if (item.kind === 'message' || item.kind === 'event') {
      if (f['body'] !== undefined) item.data['bodyPreview'] = preview(f['body'])
    }
    if (item.kind === 'message' && creating && f['from'] !== undefined && f['sender'] === undefined) {
      item.data['sender'] = f['from']
    }
    if (item.kind === 'event') {
      const start = parseDateTimeTz(item.data['start'] ?? { dateTime: this.clock.iso() }, 'start')
      const end = parseDateTimeTz(item.data['end'] ?? item.data['start'] ?? { dateTime: this.clock.iso() }, 'end')
      if (end.ms < start.ms) {
        throw new GraphHttpError(400, 'ErrorInvalidRequest', "The 'end' of an event must not be before its 'start'.")
      }
      item.data['start'] = { dateTime: start.dateTime, timeZone: start.timeZone }
      item.data['end'] = { dateTime: end.dateTime, timeZone: end.timeZone }
      if (creating || f['start'] !== undefined) item.data['originalStartTimeZone'] = start.timeZone
      if (creating || f['end'] !== undefined) item.data['originalEndTimeZone'] = end.timeZone
      item.startMs = start.ms
      item.endMs = end.ms
      if (f['recurrence'] !== undefined) {
        if (f['recurrence'] === null) {
          item.data['recurrence'] = null
          item.series = undefined
        } else {
          const parsed = recurrenceInputSchema.safeParse(f['recurrence'])
          if (!parsed.success) {
            const issue = parsed.error.issues[0]
            throw new GraphHttpError(400, 'ErrorInvalidRecurrence', `Invalid recurrence: '${['recurrence', ...(issue?.path ?? [])].join('.')}' ${issue?.message ?? 'is invalid'}.`)
          }
          item.data['recurrence'] = normaliseRecurrence(parsed.data, start.timeZone)
        }
      }
      item.data['type'] = item.data['recurrence'] ? 'seriesMaster' : 'singleInstance'
      const after = shapeOf(item)
      if (after) item.series ??= { exceptions: {}, cancelled: [] }
      if (before && (!after || JSON.stringify(before) !== JSON.stringify(after))) {
        // A new pattern or time of the series: Outlook drops its exceptions; delta reports the old occurrences removed.
        item.pastShapes = [...(item.pastShapes ?? []), before].slice(-MAX_PAST_SHAPES)
        if (after) item.series = { exceptions: {}, cancelled: [] }
      }
    }
    if (item.kind === 'contact') {
      if (f['displayName'] === undefined && (f['givenName'] !== undefined || f['surname'] !== undefined)) {
        const dn = [item.data['givenName'], item.data['surname']].filter((x) => typeof x === 'string' && x).join(' ')
        item.data['displayName'] = dn
      }
      if (item.data['fileAs'] === '' && typeof item.data['displayName'] === 'string') item.data['fileAs'] = item.data['displayName']
    }
    if (item.kind === 'task') {
      if (f['body'] !== undefined) item.data['bodyLastModifiedDateTime'] = this.clock.iso()
      if (f['status'] === 'completed' && f['completedDateTime'] === undefined) {
        item.data['completedDateTime'] = { dateTime: `${this.clock.iso().slice(0, 19)}.0000000`, timeZone: 'UTC' }
        ;(item.times ??= {})['completedDateTime'] = Date.parse(this.clock.iso())
      }
      // dateTimeTimeZone fields keep their instant; reads express it in UTC or the Prefer: outlook.timezone zone.
      for (const k of TASK_DATE_FIELDS) {
        const v = f[k]
        if (v === undefined) continue
        if (v === null) {
          item.data[k] = null
          if (item.times) delete item.times[k]
          continue
        }
        const p = parseDateTimeTz(v, k)
        item.data[k] = { dateTime: p.dateTime, timeZone: p.timeZone }
        ;(item.times ??= {})[k] = p.ms
      }
    }
    for (const p of input.ext ?? []) {
      const key = normaliseExtId(p.id)
      if (p.value === null) delete item.ext[key]
      else item.ext[key] = { id: p.id, value: p.value }
    }
    for (const lr of input.linkedResources ?? []) {
      item.linkedResources.push({ id: newGuid(), ...lr })
    }
    void mb
  }

  touch(mb: Mailbox, item: Item): void {
    item.changeKey = newChangeKey()
    item.lastModifiedDateTime = this.clock.iso()
    const c = mb.containers.get(item.containerId)
    if (c) this.appendLog(mb, c, item, false)
    this.emit({ mailbox: mb, item, containerId: item.containerId, changeType: 'updated', restId: item.restId })
  }

  addCategory(mb: Mailbox, displayName: string, color: string): Category {
    for (const c of mb.categories.values()) {
      if (c.displayName.toLowerCase() === displayName.toLowerCase()) {
        throw new GraphHttpError(409, 'ErrorDuplicateCategory', `A category named '${displayName}' already exists.`)
      }
    }
    const cat = { id: newGuid(), displayName, color }
    mb.categories.set(cat.id, cat)
    this.version++
    return cat
  }

  // ---------- snapshot ----------

  snapshot(): unknown {
    return [...this.mailboxes.values()].map((mb) => ({
      id: mb.id,
      upn: mb.upn,
      displayName: mb.displayName,
      seq: mb.seq,
      containers: [...mb.containers.values()].map((c) => ({
        ...c,
        members: [...c.members],
        lastEntry: [...c.lastEntry],
      })),
      wellKnown: [...mb.wellKnown],
      items: [...mb.items.values()],
      transactionIds: [...mb.transactionIds],
      categories: [...mb.categories.values()],
    }))
  }

  restore(raw: unknown): void {
    this.clear()
    type Snap = Omit<Mailbox, 'containers' | 'wellKnown' | 'items' | 'restIndex' | 'transactionIds' | 'categories'> & {
      containers: Array<Omit<Container, 'members' | 'lastEntry'> & { members: string[]; lastEntry: Array<[string, number]> }>
      wellKnown: Array<[string, string]>
      items: Item[]
      transactionIds: Array<[string, string]>
      categories: Category[]
    }
    for (const s of raw as Snap[]) {
      const mb: Mailbox = {
        id: s.id,
        upn: s.upn,
        displayName: s.displayName,
        seq: s.seq,
        containers: new Map(
          s.containers.map((c) => [c.id, { ...c, members: new Set(c.members), lastEntry: new Map(c.lastEntry) }]),
        ),
        wellKnown: new Map(s.wellKnown),
        items: new Map(s.items.map((i) => [i.immutableId, i])),
        restIndex: new Map(s.items.map((i) => [i.restId, i.immutableId])),
        transactionIds: new Map(s.transactionIds),
        categories: new Map(s.categories.map((c) => [c.id, c])),
      }
      this.addMailbox(mb)
    }
  }
}
