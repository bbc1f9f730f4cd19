/**
 * In-memory mailbox store. Every write appends an entry to the owning container's change log under a
 * per-mailbox sequence number; delta rounds walk that log instead of copying state per token.
 */
import { EmulatorError, GraphHttpError, notFound } from '../errors.js'
import { newChangeKey, newContainerId, newGuid, newImmutableId, newRestId } from '../ids.js'
import type { Clock } from '../clock.js'
import { normaliseExtId } from './ext-props.js'
import { requireTimeZone, utcToZoned, zonedToUtc } from '../timezones.js'
import type {
  Category,
  ChangeEvent,
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
    if (!item) return undefined
    if (kind !== undefined && item.kind !== kind) return undefined
    return item
  }

  requireItem(mb: Mailbox, id: string, kind: ItemKind, container?: Container): Item {
    const item = this.findItem(mb, id, kind)
    if (!item || (container !== undefined && item.containerId !== container.id)) throw notFound()
    return item
  }

  private appendLog(mb: Mailbox, c: Container, item: Item, removed: boolean): number {
    const seq = ++mb.seq
    const entry: LogEntry = { seq, key: item.immutableId, removed, restId: item.restId }
    c.log.push(entry)
    c.lastEntry.set(item.immutableId, seq)
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
    if (
      item.kind === 'event' &&
      input.fields['transactionId'] !== undefined &&
      item.data['transactionId'] != null &&
      input.fields['transactionId'] !== item.data['transactionId']
    ) {
      throw new GraphHttpError(400, 'ErrorInvalidRequest', 'The transactionId of an event cannot be changed once set.')
    }
    this.applyFields(mb, item, input, false)
    item.changeKey = newChangeKey()
    item.lastModifiedDateTime = this.clock.iso()
    const c = mb.containers.get(item.containerId)
    if (c) this.appendLog(mb, c, item, false)
    this.emit({ mailbox: mb, item, containerId: item.containerId, changeType: 'updated', restId: item.restId })
    return item
  }

  deleteItem(mb: Mailbox, item: Item): void {
    const c = mb.containers.get(item.containerId)
    mb.items.delete(item.immutableId)
    mb.restIndex.delete(item.restId)
    const tx = item.data['transactionId']
    if (typeof tx === 'string' && mb.transactionIds.get(tx) === item.immutableId) mb.transactionIds.delete(tx)
    if (c) {
      c.members.delete(item.immutableId)
      this.appendLog(mb, c, item, true)
    }
    this.emit({ mailbox: mb, item, containerId: item.containerId, changeType: 'deleted', restId: item.restId })
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
    for (const [k, v] of Object.entries(f)) {
      if (v === undefined || k === 'singleValueExtendedProperties' || k === 'linkedResources') continue
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
      if (f['recurrence'] !== undefined) item.data['type'] = f['recurrence'] ? 'seriesMaster' : 'singleInstance'
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
