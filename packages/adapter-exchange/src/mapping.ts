/**
 * Graph resources ⇄ canonical items. Every Graph payload is zod-parsed here (garbage →
 * `InvalidRemoteData`). A field the payload does not carry stays absent (unknown); an empty value
 * becomes null (cleared). Date-times keep their dateTime + timeZone pair.
 */
import { InstantSchema, asConcordId, asVersion, parseFields } from '@concord/engine'
import type { ConcordId, Fields, ItemKind, Version } from '@concord/engine'
import { z } from 'zod'
import { invalidRemoteData } from './errors.js'
import { CONCORD_APPLICATION, CONCORD_PROPERTY_ID, IN_REPLY_TO_PROPERTY_ID, REGARDING_APPLICATION, TRANSACTION_PREFIX } from './options.js'
import { convertLocal, ianaZoneOf } from './time-zones.js'

// ---------- Graph payload schemas (lenient about extra members, strict about types) ----------

const nstr = z.string().nullable().optional()
const EmailAddress = z.looseObject({ name: nstr, address: nstr })
const Recipient = z.looseObject({ emailAddress: EmailAddress.nullable().optional() })
const ItemBody = z.looseObject({ contentType: nstr, content: nstr })
const DateTimeTimeZone = z.looseObject({ dateTime: z.string(), timeZone: nstr })
const ExtProps = z.array(z.looseObject({ id: z.string(), value: z.string().nullable() })).optional()
const Categories = z.array(z.string()).nullable().optional()
const PhysicalAddress = z.looseObject({ street: nstr, city: nstr, state: nstr, postalCode: nstr, countryOrRegion: nstr }).nullable().optional()
const LinkedResource = z.looseObject({ id: z.string().optional(), applicationName: nstr, displayName: nstr, externalId: nstr, webUrl: nstr })

const Base = {
  id: z.string().min(1),
  '@odata.etag': z.string().optional(),
  changeKey: z.string().optional(),
  lastModifiedDateTime: nstr,
}

export const GraphMessage = z.looseObject({
  ...Base,
  subject: nstr,
  body: ItemBody.nullable().optional(),
  from: Recipient.nullable().optional(),
  toRecipients: z.array(Recipient).nullable().optional(),
  ccRecipients: z.array(Recipient).nullable().optional(),
  bccRecipients: z.array(Recipient).nullable().optional(),
  sentDateTime: nstr,
  receivedDateTime: nstr,
  internetMessageId: nstr,
  conversationId: nstr,
  parentFolderId: nstr,
  categories: Categories,
  singleValueExtendedProperties: ExtProps,
})

const Attendee = z.looseObject({ type: nstr, emailAddress: EmailAddress.nullable().optional() })
const Recurrence = z.looseObject({
  pattern: z.looseObject({
    type: z.string(),
    interval: z.number().int().optional(),
    daysOfWeek: z.array(z.string()).nullable().optional(),
    dayOfMonth: z.number().int().nullable().optional(),
    month: z.number().int().nullable().optional(),
    index: nstr,
    firstDayOfWeek: nstr,
  }),
  range: z.looseObject({ type: z.string(), startDate: nstr, endDate: nstr, numberOfOccurrences: z.number().int().nullable().optional(), recurrenceTimeZone: nstr }),
})

export const GraphEvent = z.looseObject({
  ...Base,
  subject: nstr,
  body: ItemBody.nullable().optional(),
  start: DateTimeTimeZone.nullable().optional(),
  end: DateTimeTimeZone.nullable().optional(),
  originalStartTimeZone: nstr,
  originalEndTimeZone: nstr,
  location: z.looseObject({ displayName: nstr }).nullable().optional(),
  organizer: Recipient.nullable().optional(),
  attendees: z.array(Attendee).nullable().optional(),
  recurrence: Recurrence.nullable().optional(),
  isAllDay: z.boolean().nullable().optional(),
  showAs: nstr,
  importance: nstr,
  categories: Categories,
  transactionId: nstr,
  type: nstr,
  seriesMasterId: nstr,
  singleValueExtendedProperties: ExtProps,
})

export const GraphContact = z.looseObject({
  ...Base,
  givenName: nstr,
  middleName: nstr,
  surname: nstr,
  displayName: nstr,
  emailAddresses: z.array(EmailAddress).nullable().optional(),
  businessPhones: z.array(z.string()).nullable().optional(),
  homePhones: z.array(z.string()).nullable().optional(),
  mobilePhone: nstr,
  companyName: nstr,
  jobTitle: nstr,
  department: nstr,
  businessAddress: PhysicalAddress,
  homeAddress: PhysicalAddress,
  otherAddress: PhysicalAddress,
  birthday: nstr,
  personalNotes: nstr,
  parentFolderId: nstr,
  categories: Categories,
  singleValueExtendedProperties: ExtProps,
})

export const GraphTask = z.looseObject({
  ...Base,
  title: nstr,
  body: ItemBody.nullable().optional(),
  status: nstr,
  importance: nstr,
  dueDateTime: DateTimeTimeZone.nullable().optional(),
  startDateTime: DateTimeTimeZone.nullable().optional(),
  reminderDateTime: DateTimeTimeZone.nullable().optional(),
  completedDateTime: DateTimeTimeZone.nullable().optional(),
  categories: Categories,
  linkedResources: z.array(LinkedResource).nullable().optional(),
})

export const GraphRemoved = z.looseObject({ id: z.string().min(1), '@removed': z.looseObject({ reason: z.string().optional() }) })

export const GRAPH_SCHEMAS = { email: GraphMessage, appointment: GraphEvent, contact: GraphContact, task: GraphTask } as const

type Rec = Record<string, unknown>

/** The Graph representation of one record after parsing, with what the adapter needs around it. */
export interface MappedRecord {
  graphId: string
  version: Version
  fields: Fields
  /** The stamp (extended property / linkedResource / transactionId), when the payload carried it. */
  concordId: ConcordId | undefined
  /** True when the payload said whether a stamp exists (expanded); false = unknown. */
  stampKnown: boolean
  modifiedAt: number | undefined
  parentFolderId: string | undefined
}

// ---------- helpers ----------

const has = (o: Rec, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k)
const text = (v: string | null | undefined): string | null => (v === undefined || v === null || v === '' ? null : v)

function address(r: z.infer<typeof Recipient> | null | undefined): { name?: string; address: string } | null {
  const e = r?.emailAddress
  if (!e || !e.address) return null
  return e.name ? { name: e.name, address: e.address } : { address: e.address }
}

function addresses(list: Array<z.infer<typeof Recipient>> | null | undefined): Array<{ name?: string; address: string }> | null {
  const out = (list ?? []).map(address).filter((a): a is { name?: string; address: string } => a !== null)
  return out.length === 0 ? null : out
}

function toRecipient(a: unknown): Rec | null {
  const x = a as { name?: string; address: string } | null | undefined
  if (!x) return null
  return { emailAddress: x.name === undefined ? { address: x.address } : { name: x.name, address: x.address } }
}

function toRecipients(list: unknown): Rec[] {
  return ((list as unknown[] | null | undefined) ?? []).map((a) => toRecipient(a)!).filter(Boolean)
}

/** Graph date-time `2026-12-01T09:00:00.0000000` → canonical (zero fractions dropped). */
export function normaliseLocalDateTime(v: string): string {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}:\d{2})?$/.exec(v)
  if (!m) return v
  const base = m[1]!.length === 16 ? `${m[1]}:00` : m[1]!
  const frac = m[2] && !/^\.0+$/.test(m[2]) ? m[2].slice(0, 8) : ''
  return `${base}${frac}`
}

/** The wall-clock time in `zone` of a UTC instant, as `YYYY-MM-DDTHH:mm:ss`. */
export function utcToZone(utcLocal: string, zone: string): string {
  const ms = Date.parse(`${normaliseLocalDateTime(utcLocal)}Z`)
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(ms))
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '00'
  return `${get('year')}-${get('month')}-${get('day')}T${get('hour')}:${get('minute')}:${get('second')}`
}

/**
 * A Graph dateTimeTimeZone → canonical. Graph answers in UTC (or the `Prefer: outlook.timezone` zone);
 * when the item remembers the zone it was written in (`originalStartTimeZone`, an IANA or Windows name
 * such as "W. Europe Standard Time"), the value is converted to the wall-clock time of that zone and the
 * pair carries the original name, so what was written comes back unchanged. An unknown zone keeps the
 * pair as answered (same instant).
 */
export function dateTimeTz(v: z.infer<typeof DateTimeTimeZone> | null | undefined, original?: string | null): { dateTime: string; timeZone: string } | null {
  if (!v) return null
  const tz = v.timeZone || 'UTC'
  const dateTime = normaliseLocalDateTime(v.dateTime)
  if (original && original !== tz) {
    const from = ianaZoneOf(tz)
    const to = ianaZoneOf(original)
    if (from !== undefined && to !== undefined) return { dateTime: from === 'Etc/UTC' || from === 'UTC' ? utcToZone(dateTime, to) : convertLocal(dateTime, from, to), timeZone: original }
  }
  return { dateTime, timeZone: tz }
}

function instant(v: string | null | undefined): string | null {
  if (!v) return null
  if (InstantSchema.safeParse(v).success) return v
  const withZ = `${v}Z`
  return InstantSchema.safeParse(withZ).success ? withZ : null
}

function postal(v: z.infer<typeof PhysicalAddress>): Rec | null {
  if (!v) return null
  const out: Rec = {}
  for (const k of ['street', 'city', 'state', 'postalCode', 'countryOrRegion'] as const) if (v[k]) out[k] = v[k]
  return Object.keys(out).length === 0 ? null : out
}

function stampFromExt(props: Array<{ id: string; value: string | null }> | undefined): ConcordId | undefined {
  const want = CONCORD_PROPERTY_ID.toLowerCase()
  const p = props?.find((x) => x.id.toLowerCase() === want || x.id.toLowerCase().endsWith(' name concordid'))
  return p?.value ? asConcordId(p.value) : undefined
}

function inReplyToFromExt(props: Array<{ id: string; value: string | null }> | undefined): string | null {
  const want = IN_REPLY_TO_PROPERTY_ID.toLowerCase()
  return props?.find((x) => x.id.toLowerCase() === want)?.value ?? null
}

/**
 * Graph recurrence → canonical. Members Graph fills with defaults are dropped (zero dayOfMonth/month,
 * index of non-relative patterns, the 0001-01-01 end of a noEnd range, firstDayOfWeek sunday, a
 * recurrenceTimeZone equal to the zone of the start), so a recurrence written without them reads back equal.
 */
function recurrence(r: z.infer<typeof Recurrence> | null | undefined, startZone: string | undefined): Rec | null {
  if (!r) return null
  const p = r.pattern
  const pattern: Rec = { type: p.type, interval: p.interval ?? 1 }
  const relative = p.type === 'relativeMonthly' || p.type === 'relativeYearly' || p.type === 'weekly'
  if (p.daysOfWeek && p.daysOfWeek.length > 0) pattern['daysOfWeek'] = p.daysOfWeek
  if (p.dayOfMonth) pattern['dayOfMonth'] = p.dayOfMonth
  if (p.month) pattern['month'] = p.month
  if (p.index && relative && p.type !== 'weekly') pattern['index'] = p.index
  if (p.type === 'weekly' && p.firstDayOfWeek && p.firstDayOfWeek !== 'sunday') pattern['firstDayOfWeek'] = p.firstDayOfWeek
  const range: Rec = { type: r.range.type, startDate: r.range.startDate }
  if (r.range.endDate && r.range.endDate !== '0001-01-01' && r.range.type === 'endDate') range['endDate'] = r.range.endDate
  if (r.range.numberOfOccurrences && r.range.type === 'numbered') range['numberOfOccurrences'] = r.range.numberOfOccurrences
  const rtz = r.range.recurrenceTimeZone
  if (rtz && rtz !== startZone && !(startZone === undefined && rtz === 'UTC')) range['recurrenceTimeZone'] = rtz
  return { pattern, range }
}

// ---------- Graph → canonical ----------

/**
 * Parses one Graph item of `kind` and maps it. `direction` comes from the folder the message is in.
 * Throws `InvalidRemoteData` when the payload (or the mapped fields) is not valid.
 */
export function fromGraph(
  kind: ItemKind,
  raw: unknown,
  ctx: { direction?: 'incoming' | 'outgoing' | undefined; url?: string | undefined; taskTimeZone?: string | undefined } = {},
): MappedRecord {
  const parsed = GRAPH_SCHEMAS[kind].safeParse(raw)
  if (!parsed.success) throw invalidRemoteData(`${kind} payload`, parsed.error, ctx.url)
  const g = parsed.data as Rec
  const f: Rec = {}
  let concordId: ConcordId | undefined
  let stampKnown = false
  switch (kind) {
    case 'email': {
      const m = parsed.data as z.infer<typeof GraphMessage>
      if (has(g, 'subject')) f['subject'] = text(m.subject)
      if (has(g, 'body')) f['body'] = text(m.body?.content)
      if (has(g, 'from')) f['from'] = address(m.from)
      if (has(g, 'toRecipients')) f['to'] = addresses(m.toRecipients)
      if (has(g, 'ccRecipients')) f['cc'] = addresses(m.ccRecipients)
      if (has(g, 'bccRecipients')) f['bcc'] = addresses(m.bccRecipients)
      if (has(g, 'sentDateTime')) f['sentAt'] = instant(m.sentDateTime)
      if (has(g, 'receivedDateTime')) f['receivedAt'] = instant(m.receivedDateTime)
      if (has(g, 'internetMessageId')) f['internetMessageId'] = text(m.internetMessageId)
      if (has(g, 'conversationId')) f['conversationId'] = text(m.conversationId)
      if (has(g, 'categories')) f['categories'] = m.categories ?? []
      if (ctx.direction) f['direction'] = ctx.direction
      // Known only when the extended properties were expanded (absent there = the message answers nothing).
      if (has(g, 'singleValueExtendedProperties')) f['inReplyTo'] = inReplyToFromExt(m.singleValueExtendedProperties)
      concordId = stampFromExt(m.singleValueExtendedProperties)
      stampKnown = has(g, 'singleValueExtendedProperties')
      break
    }
    case 'appointment': {
      const e = parsed.data as z.infer<typeof GraphEvent>
      if (has(g, 'subject')) f['subject'] = text(e.subject)
      if (has(g, 'body')) f['body'] = text(e.body?.content)
      if (has(g, 'start')) f['start'] = dateTimeTz(e.start, e.originalStartTimeZone)
      if (has(g, 'end')) f['end'] = dateTimeTz(e.end, e.originalEndTimeZone)
      if (has(g, 'location')) f['location'] = text(e.location?.displayName)
      if (has(g, 'organizer')) f['organizer'] = address(e.organizer)
      if (has(g, 'attendees')) {
        const of = (type: string) => addresses((e.attendees ?? []).filter((a) => (a.type ?? 'required').toLowerCase() === type))
        f['requiredAttendees'] = of('required')
        f['optionalAttendees'] = of('optional')
        // Rooms and equipment: their own field, so a round trip keeps them apart from people.
        f['resourceAttendees'] = of('resource')
      }
      if (has(g, 'recurrence')) f['recurrence'] = recurrence(e.recurrence, (f['start'] as { timeZone?: string } | null | undefined)?.timeZone ?? e.originalStartTimeZone ?? undefined)
      if (has(g, 'isAllDay')) f['isAllDay'] = e.isAllDay ?? false
      if (e.showAs) f['showAs'] = e.showAs
      if (e.importance) f['importance'] = e.importance
      if (has(g, 'categories')) f['categories'] = e.categories ?? []
      const tx = e.transactionId
      concordId = stampFromExt(e.singleValueExtendedProperties) ?? (tx?.startsWith(TRANSACTION_PREFIX) ? asConcordId(tx.slice(TRANSACTION_PREFIX.length)) : undefined)
      stampKnown = has(g, 'singleValueExtendedProperties') || concordId !== undefined
      break
    }
    case 'contact': {
      const c = parsed.data as z.infer<typeof GraphContact>
      for (const k of ['givenName', 'middleName', 'surname', 'displayName', 'mobilePhone', 'companyName', 'jobTitle', 'department'] as const) {
        if (has(g, k)) f[k] = text(c[k])
      }
      if (has(g, 'emailAddresses')) {
        const list = (c.emailAddresses ?? []).map((a) => a.address ?? null)
        f['email1'] = text(list[0])
        f['email2'] = text(list[1])
        f['email3'] = text(list[2])
      }
      if (has(g, 'businessPhones')) f['businessPhone'] = text(c.businessPhones?.[0])
      if (has(g, 'homePhones')) f['homePhone'] = text(c.homePhones?.[0])
      for (const k of ['businessAddress', 'homeAddress', 'otherAddress'] as const) if (has(g, k)) f[k] = postal(c[k])
      if (has(g, 'birthday')) f['birthday'] = c.birthday ? c.birthday.slice(0, 10) : null
      if (has(g, 'personalNotes')) f['notes'] = text(c.personalNotes)
      if (has(g, 'categories')) f['categories'] = c.categories ?? []
      concordId = stampFromExt(c.singleValueExtendedProperties)
      stampKnown = has(g, 'singleValueExtendedProperties')
      break
    }
    case 'task': {
      const t = parsed.data as z.infer<typeof GraphTask>
      if (has(g, 'title')) f['subject'] = text(t.title)
      if (has(g, 'body')) f['description'] = text(t.body?.content)
      if (has(g, 'dueDateTime')) f['due'] = dateTimeTz(t.dueDateTime, ctx.taskTimeZone)
      if (has(g, 'startDateTime')) f['start'] = dateTimeTz(t.startDateTime, ctx.taskTimeZone)
      if (has(g, 'reminderDateTime')) f['reminder'] = dateTimeTz(t.reminderDateTime, ctx.taskTimeZone)
      if (has(g, 'completedDateTime')) f['completedOn'] = dateTimeTz(t.completedDateTime, ctx.taskTimeZone)
      if (t.status) f['status'] = t.status
      if (t.importance) f['priority'] = t.importance
      if (has(g, 'categories')) f['categories'] = t.categories ?? []
      if (has(g, 'linkedResources')) {
        stampKnown = true
        const link = t.linkedResources?.find((l) => l.applicationName === CONCORD_APPLICATION && l.externalId)
        if (link?.externalId) concordId = asConcordId(link.externalId)
        const reg = t.linkedResources?.find((l) => l.applicationName === REGARDING_APPLICATION && l.externalId)
        f['regarding'] = reg?.externalId ? regardingFromExternal(reg.externalId, reg.displayName) : null
      }
      break
    }
  }
  let fields: Fields
  try {
    fields = parseFields(kind, f)
  } catch (error) {
    // The Graph payload parsed but maps to values the canonical model rejects (e.g. an unknown status).
    const cause = (error as { cause?: unknown }).cause
    throw invalidRemoteData(`${kind} (mapped fields)`, cause instanceof z.ZodError ? cause : new z.ZodError([]), ctx.url)
  }
  const etag = (g['@odata.etag'] as string | undefined) ?? (g['changeKey'] as string | undefined)
  const modified = typeof g['lastModifiedDateTime'] === 'string' ? Date.parse(g['lastModifiedDateTime'] as string) : Number.NaN
  return {
    graphId: g['id'] as string,
    version: asVersion(etag ?? `lm:${String(g['lastModifiedDateTime'] ?? '')}`),
    fields,
    concordId,
    stampKnown,
    modifiedAt: Number.isNaN(modified) ? undefined : modified,
    parentFolderId: typeof g['parentFolderId'] === 'string' ? (g['parentFolderId'] as string) : undefined,
  }
}

function regardingFromExternal(externalId: string, name: string | null | undefined): Rec | null {
  const i = externalId.indexOf(':')
  if (i <= 0) return null
  const out: Rec = { table: externalId.slice(0, i), id: externalId.slice(i + 1) }
  if (name) out['name'] = name
  return out
}

// ---------- canonical → Graph ----------

/** Body HTML or text, chosen by content. */
function itemBody(v: unknown): Rec {
  const s = typeof v === 'string' ? v : ''
  return { contentType: /<[a-z][\s\S]*>/i.test(s) ? 'html' : 'text', content: s }
}

/**
 * Maps canonical fields (only those present) to a Graph write body. `current` is the record as Graph
 * has it now (for updates of fields that share one Graph array: e-mail addresses, phones, attendees).
 */
export function toGraph(kind: ItemKind, fields: Fields, current?: Fields): Rec {
  const f = fields as Rec
  const out: Rec = {}
  const set = (k: string, g: string, conv: (v: unknown) => unknown = (v) => v) => {
    if (has(f, k)) out[g] = conv(f[k])
  }
  const str = (v: unknown) => (v === null || v === undefined ? '' : v)
  const merged = (k: string) => (has(f, k) ? f[k] : (current as Rec | undefined)?.[k])
  switch (kind) {
    case 'email':
      set('subject', 'subject', str)
      set('body', 'body', itemBody)
      set('from', 'from', toRecipient)
      set('to', 'toRecipients', toRecipients)
      set('cc', 'ccRecipients', toRecipients)
      set('bcc', 'bccRecipients', toRecipients)
      set('sentAt', 'sentDateTime')
      set('receivedAt', 'receivedDateTime')
      set('internetMessageId', 'internetMessageId')
      set('conversationId', 'conversationId')
      set('categories', 'categories', (v) => v ?? [])
      break
    case 'appointment':
      set('subject', 'subject', str)
      set('body', 'body', itemBody)
      set('start', 'start')
      set('end', 'end')
      set('location', 'location', (v) => ({ displayName: str(v) }))
      // Graph cannot clear an organizer (the mailbox owner organizes what it creates): only a real one is sent.
      if (has(f, 'organizer') && f['organizer'] !== null && f['organizer'] !== undefined) set('organizer', 'organizer', toRecipient)
      if (has(f, 'requiredAttendees') || has(f, 'optionalAttendees') || has(f, 'resourceAttendees')) {
        const att = (list: unknown, type: string) => toRecipients(list).map((r) => ({ type, ...r }))
        out['attendees'] = [...att(merged('requiredAttendees'), 'required'), ...att(merged('optionalAttendees'), 'optional'), ...att(merged('resourceAttendees'), 'resource')]
      }
      set('recurrence', 'recurrence')
      set('isAllDay', 'isAllDay', (v) => v ?? false)
      set('showAs', 'showAs', (v) => v ?? 'busy')
      set('importance', 'importance', (v) => v ?? 'normal')
      set('categories', 'categories', (v) => v ?? [])
      break
    case 'contact': {
      for (const k of ['givenName', 'middleName', 'surname', 'displayName', 'mobilePhone', 'companyName', 'jobTitle', 'department'] as const) set(k, k)
      if (has(f, 'email1') || has(f, 'email2') || has(f, 'email3')) {
        out['emailAddresses'] = ['email1', 'email2', 'email3'].map((k) => merged(k)).filter((a): a is string => typeof a === 'string' && a !== '').map((a) => ({ address: a }))
      }
      set('businessPhone', 'businessPhones', (v) => (v ? [v] : []))
      set('homePhone', 'homePhones', (v) => (v ? [v] : []))
      for (const k of ['businessAddress', 'homeAddress', 'otherAddress'] as const) {
        set(k, k, (v) => {
          const a = (v ?? {}) as Rec
          return { street: a['street'] ?? null, city: a['city'] ?? null, state: a['state'] ?? null, postalCode: a['postalCode'] ?? null, countryOrRegion: a['countryOrRegion'] ?? null }
        })
      }
      set('birthday', 'birthday', (v) => (v ? `${v as string}T00:00:00Z` : null))
      set('notes', 'personalNotes', str)
      set('categories', 'categories', (v) => v ?? [])
      break
    }
    case 'task':
      set('subject', 'title', str)
      set('description', 'body', (v) => ({ contentType: 'text', content: str(v) }))
      set('due', 'dueDateTime')
      set('start', 'startDateTime')
      if (has(f, 'reminder')) {
        out['reminderDateTime'] = f['reminder'] ?? null
        out['isReminderOn'] = f['reminder'] !== null && f['reminder'] !== undefined
      }
      set('completedOn', 'completedDateTime')
      set('status', 'status', (v) => v ?? 'notStarted')
      set('priority', 'importance', (v) => v ?? 'normal')
      set('categories', 'categories', (v) => v ?? [])
      break
  }
  return out
}

/** The linkedResource that carries a task's CRM regarding record. */
export function regardingLinkedResource(regarding: unknown): Rec | null {
  const r = regarding as { table: string; id: string; name?: string } | null | undefined
  if (!r) return null
  return { applicationName: REGARDING_APPLICATION, externalId: `${r.table}:${r.id}`, displayName: r.name ?? `${r.table} ${r.id}` }
}

export function stampLinkedResource(concordId: ConcordId): Rec {
  return { applicationName: CONCORD_APPLICATION, externalId: concordId, displayName: 'Concord' }
}

export function stampProperty(concordId: ConcordId): Rec {
  return { id: CONCORD_PROPERTY_ID, value: concordId }
}
