import { SyncError, type Address, type DateTimeTz, type Fields, type PostalAddress, type Regarding } from '@concord/engine'
import { z } from 'zod'
import type { CrmKind } from './options.js'
import { fromUtcInstant, toUtcInstant } from './time.js'

/** Dataverse table facts per synced kind (protocols.md §4.2). */
export interface TableInfo {
  kind: CrmKind
  logicalName: string
  entitySet: string
  primaryKey: string
  /** Collection-valued navigation that holds the activity parties. */
  partyCollection?: string | undefined
}

export const TABLES: Record<CrmKind, TableInfo> = {
  contact: { kind: 'contact', logicalName: 'contact', entitySet: 'contacts', primaryKey: 'contactid' },
  appointment: { kind: 'appointment', logicalName: 'appointment', entitySet: 'appointments', primaryKey: 'activityid', partyCollection: 'appointment_activity_parties' },
  task: { kind: 'task', logicalName: 'task', entitySet: 'tasks', primaryKey: 'activityid' },
  email: { kind: 'email', logicalName: 'email', entitySet: 'emails', primaryKey: 'activityid', partyCollection: 'email_activity_parties' },
}

/** Entity sets of the records an activity can be regarding. */
export const REGARDING_SETS: Record<string, string> = { contact: 'contacts', account: 'accounts', opportunity: 'opportunities', lead: 'leads', incident: 'incidents' }

/** The Concord link column (with an alternate key of the same name) stamped on every row Concord creates. */
export const LINK_COLUMN = 'concord_linkid'

/** Activity party participation types (§4.2). */
export const PARTY = { from: 1, to: 2, cc: 3, bcc: 4, required: 5, optional: 6, organizer: 7 } as const

const LOOKUP_NAME = '@Microsoft.Dynamics.CRM.lookuplogicalname'
const FORMATTED = '@OData.Community.Display.V1.FormattedValue'

const str = z.string().nullable().optional()
const num = z.number().nullable().optional()
const bool = z.boolean().nullable().optional()

/** Every row is validated at the edge; unknown extra properties are allowed (the server may add columns). */
export const RowSchema = z
  .object({
    '@odata.etag': z.string().min(1),
    createdon: str,
    modifiedon: str,
    [LINK_COLUMN]: str,
    _ownerid_value: str,
    _regardingobjectid_value: str,
    [`_regardingobjectid_value${LOOKUP_NAME}`]: str,
    [`_regardingobjectid_value${FORMATTED}`]: str,
    statecode: num,
    statuscode: num,
    prioritycode: num,
    percentcomplete: num,
    isalldayevent: bool,
    directioncode: bool,
  })
  .loose()
export type Row = z.infer<typeof RowSchema>

/** One activity party as read from `activityparties`. */
export const PartyRowSchema = z
  .object({
    participationtypemask: z.number().int(),
    addressused: str,
    _activityid_value: z.string(),
    _partyid_value: str,
    [`_partyid_value${LOOKUP_NAME}`]: str,
    [`_partyid_value${FORMATTED}`]: str,
  })
  .loose()
export type PartyRow = z.infer<typeof PartyRowSchema>

/** A party to write: resolved to a record (`partyid`) or kept as a plain address. */
export interface PartyWrite {
  mask: number
  address: string
  party?: { table: string; id: string } | undefined
}

export interface MapContext {
  /** False for a secured column the mailbox owner cannot read: the field is reported absent. */
  readable(column: string): boolean
  contactAddresses: 'mailing' | 'all'
}

export interface WriteContext {
  /** False for a secured column the mailbox owner cannot create/update: the field is not written. */
  writable(column: string): boolean
  contactAddresses: 'mailing' | 'all'
  create: boolean
}

interface FieldSpec {
  field: string
  columns: readonly string[]
  read(row: Row, parties: readonly PartyRow[]): unknown
  /** Writes `value` into `body` (columns) and/or `parties`. Absent = read-only field. */
  write?: ((value: unknown, body: Record<string, unknown>, parties: PartyWrite[], ctx: WriteContext) => void) | undefined
  createOnly?: boolean
}

function getStr(row: Row, col: string): string | null {
  const v = row[col]
  if (v === undefined || v === null) return null
  if (typeof v !== 'string') throw new SyncError('InvalidRemoteData', `Dataverse column '${col}' is not a string: ${JSON.stringify(v).slice(0, 80)}`)
  return v
}

const emptyToNull = (v: string | null): string | null => (v === '' ? null : v)

const text = (field: string, column: string, opts: { createOnly?: boolean; readOnly?: boolean } = {}): FieldSpec => ({
  field,
  columns: [column],
  read: (row) => emptyToNull(getStr(row, column)),
  write: opts.readOnly ? undefined : (v, body) => (body[column] = v ?? null),
  createOnly: opts.createOnly ?? false,
})

const dateTime = (field: string, column: string): FieldSpec => ({
  field,
  columns: [column],
  read: (row) => {
    const v = getStr(row, column)
    return v === null ? null : fromUtcInstant(v)
  },
  write: (v, body) => (body[column] = v === null ? null : toUtcInstant(v as DateTimeTz)),
})

const ADDRESS_PARTS: Array<[keyof PostalAddress, string]> = [
  ['city', 'city'],
  ['state', 'stateorprovince'],
  ['postalCode', 'postalcode'],
  ['countryOrRegion', 'country'],
]

const postalAddress = (field: string, n: 1 | 2 | 3): FieldSpec => {
  const p = `address${n}_`
  const columns = [`${p}line1`, `${p}line2`, `${p}line3`, ...ADDRESS_PARTS.map(([, c]) => `${p}${c}`)]
  return {
    field,
    columns,
    read: (row) => {
      const out: PostalAddress = {}
      const lines = [1, 2, 3].map((i) => emptyToNull(getStr(row, `${p}line${i}`))).filter((l): l is string => l !== null)
      if (lines.length > 0) out.street = lines.join('\n')
      for (const [key, col] of ADDRESS_PARTS) {
        const v = emptyToNull(getStr(row, `${p}${col}`))
        if (v !== null) out[key] = v
      }
      return Object.keys(out).length === 0 ? null : out
    },
    write: (v, body) => {
      const a = (v ?? {}) as PostalAddress
      const lines = a.street ? a.street.split(/\r?\n/) : []
      body[`${p}line1`] = lines[0] ?? null
      body[`${p}line2`] = lines[1] ?? null
      body[`${p}line3`] = lines.length > 3 ? lines.slice(2).join(', ') : (lines[2] ?? null)
      for (const [key, col] of ADDRESS_PARTS) body[`${p}${col}`] = a[key] ?? null
    },
  }
}

const priority = (field: string): FieldSpec => ({
  field,
  columns: ['prioritycode'],
  read: (row) => (row.prioritycode === 0 ? 'low' : row.prioritycode === 2 ? 'high' : row.prioritycode === 1 ? 'normal' : null),
  write: (v, body) => (body.prioritycode = v === 'low' ? 0 : v === 'high' ? 2 : 1),
})

const regarding: FieldSpec = {
  field: 'regarding',
  columns: ['regardingobjectid'],
  read: (row) => {
    const id = row._regardingobjectid_value
    if (!id) return null
    const table = row[`_regardingobjectid_value${LOOKUP_NAME}`]
    if (typeof table !== 'string' || table === '') throw new SyncError('InvalidRemoteData', `regardingobjectid ${id} without its lookuplogicalname annotation`)
    const name = row[`_regardingobjectid_value${FORMATTED}`]
    const out: Regarding = { table, id }
    if (typeof name === 'string' && name !== '') out.name = name
    return out
  },
}

function regardingWriter(logicalName: string): FieldSpec['write'] {
  return (v, body) => {
    if (v === null) {
      body[`regardingobjectid_contact_${logicalName}@odata.bind`] = null
      return
    }
    const r = v as Regarding
    const set = REGARDING_SETS[r.table]
    if (!set) throw new SyncError('Validation', `regarding.table '${r.table}' is not a table an activity can be regarding (${Object.keys(REGARDING_SETS).join(', ')})`)
    body[`regardingobjectid_${r.table}_${logicalName}@odata.bind`] = `/${set}(${r.id})`
  }
}

function partyAddress(p: PartyRow): Address | null {
  const address = p.addressused
  if (!address) return null
  const name = p[`_partyid_value${FORMATTED}`]
  return typeof name === 'string' && name !== '' && name !== address ? { name, address } : { address }
}

const partyList = (field: string, mask: number): FieldSpec => ({
  field,
  columns: [],
  read: (_row, parties) => {
    // One address resolved to several records yields several parties: report the address once.
    const seen = new Set<string>()
    return parties
      .filter((p) => p.participationtypemask === mask)
      .map(partyAddress)
      .filter((a): a is Address => a !== null && !seen.has(a.address.toLowerCase()) && seen.add(a.address.toLowerCase()) !== undefined)
  },
  write: (v, _body, parties) => {
    for (const a of (v ?? []) as Address[]) parties.push({ mask, address: a.address })
  },
})

const singleParty = (field: string, mask: number): FieldSpec => ({
  field,
  columns: [],
  read: (_row, parties) => {
    const p = parties.find((x) => x.participationtypemask === mask)
    return p ? partyAddress(p) : null
  },
  write: (v, _body, parties) => {
    if (v) parties.push({ mask, address: (v as Address).address })
  },
})

const SHOW_AS_READ: Record<number, string> = { 1: 'free', 2: 'tentative', 3: 'free', 4: 'free', 5: 'busy', 6: 'oof' }
const SHOW_AS_WRITE: Record<string, [number, number]> = { free: [0, 1], tentative: [0, 2], busy: [3, 5], oof: [3, 6], workingElsewhere: [0, 1] }
const TASK_STATUS_READ: Record<number, string> = { 2: 'notStarted', 3: 'inProgress', 4: 'waitingOnOthers', 7: 'deferred', 5: 'completed', 6: 'completed' }
const TASK_STATUS_WRITE: Record<string, [number, number]> = { notStarted: [0, 2], inProgress: [0, 3], waitingOnOthers: [0, 4], deferred: [0, 7], completed: [1, 5] }

function contactSpecs(addresses: 'mailing' | 'all'): FieldSpec[] {
  const specs: FieldSpec[] = [
    text('givenName', 'firstname'),
    text('middleName', 'middlename'),
    text('surname', 'lastname'),
    text('displayName', 'fullname', { readOnly: true }),
    text('email1', 'emailaddress1'),
    text('email2', 'emailaddress2'),
    text('email3', 'emailaddress3'),
    text('businessPhone', 'telephone1'),
    text('homePhone', 'telephone2'),
    text('mobilePhone', 'mobilephone'),
    text('jobTitle', 'jobtitle'),
    text('department', 'department'),
    postalAddress('businessAddress', 1),
    {
      field: 'birthday',
      columns: ['birthdate'],
      read: (row) => getStr(row, 'birthdate')?.slice(0, 10) ?? null,
      write: (v, body) => (body.birthdate = v ?? null),
    },
    text('notes', 'description'),
  ]
  if (addresses === 'all') specs.push(postalAddress('homeAddress', 2), postalAddress('otherAddress', 3))
  return specs
}

const APPOINTMENT_SPECS: FieldSpec[] = [
  text('subject', 'subject'),
  text('body', 'description'),
  dateTime('start', 'scheduledstart'),
  dateTime('end', 'scheduledend'),
  text('location', 'location'),
  { field: 'isAllDay', columns: ['isalldayevent'], read: (row) => row.isalldayevent ?? null, write: (v, body) => (body.isalldayevent = v ?? false) },
  {
    field: 'showAs',
    columns: ['statecode', 'statuscode'],
    read: (row) => (row.statuscode == null ? null : (SHOW_AS_READ[row.statuscode] ?? 'unknown')),
    write: (v, body) => {
      const sc = SHOW_AS_WRITE[String(v)]
      if (sc) [body.statecode, body.statuscode] = sc
    },
  },
  priority('importance'),
  singleParty('organizer', PARTY.organizer),
  partyList('requiredAttendees', PARTY.required),
  partyList('optionalAttendees', PARTY.optional),
  { ...regarding, write: regardingWriter('appointment') },
]

const TASK_SPECS: FieldSpec[] = [
  text('subject', 'subject'),
  text('description', 'description'),
  dateTime('due', 'scheduledend'),
  dateTime('start', 'scheduledstart'),
  {
    field: 'status',
    columns: ['statecode', 'statuscode'],
    read: (row) => (row.statuscode == null ? null : (TASK_STATUS_READ[row.statuscode] ?? null)),
    write: (v, body) => {
      const sc = TASK_STATUS_WRITE[String(v)]
      if (sc) [body.statecode, body.statuscode] = sc
    },
  },
  priority('priority'),
  { field: 'percentComplete', columns: ['percentcomplete'], read: (row) => row.percentcomplete ?? null, write: (v, body) => (body.percentcomplete = v ?? null) },
  { ...regarding, write: regardingWriter('task') },
]

const EMAIL_SPECS: FieldSpec[] = [
  text('subject', 'subject'),
  text('body', 'description'),
  singleParty('from', PARTY.from),
  partyList('to', PARTY.to),
  partyList('cc', PARTY.cc),
  partyList('bcc', PARTY.bcc),
  {
    field: 'sentAt',
    columns: ['senton'],
    read: (row) => {
      const v = getStr(row, 'senton')
      return v === null ? null : new Date(Date.parse(v)).toISOString()
    },
  },
  text('internetMessageId', 'messageid', { createOnly: true }),
  text('inReplyTo', 'inreplyto', { createOnly: true }),
  text('conversationId', 'conversationindex', { createOnly: true }),
  {
    field: 'direction',
    columns: ['directioncode'],
    read: (row) => (row.directioncode == null ? null : row.directioncode ? 'outgoing' : 'incoming'),
    write: (v, body) => (body.directioncode = v === 'outgoing'),
  },
  { ...regarding, write: regardingWriter('email') },
]

const CONTACT_SPECS = { mailing: contactSpecs('mailing'), all: contactSpecs('all') }

export function fieldSpecs(kind: CrmKind, addresses: 'mailing' | 'all'): FieldSpec[] {
  switch (kind) {
    case 'contact':
      return CONTACT_SPECS[addresses]
    case 'appointment':
      return APPOINTMENT_SPECS
    case 'task':
      return TASK_SPECS
    case 'email':
      return EMAIL_SPECS
  }
}

/** The Dataverse columns of each canonical field (to translate column security into field masks). */
export function columnsOfField(kind: CrmKind, addresses: 'mailing' | 'all'): Map<string, readonly string[]> {
  return new Map(fieldSpecs(kind, addresses).map((s) => [s.field, s.columns]))
}

/** `$select` of a tracked query for `kind`. */
export function selectColumns(kind: CrmKind, addresses: 'mailing' | 'all'): string[] {
  const cols = new Set<string>([TABLES[kind].primaryKey, LINK_COLUMN, '_ownerid_value', 'modifiedon', 'statecode'])
  for (const s of fieldSpecs(kind, addresses)) for (const c of s.columns) cols.add(c === 'regardingobjectid' ? '_regardingobjectid_value' : c)
  if (kind === 'email') for (const c of ['trackingtoken', 'correlationmethod', 'sender', 'torecipients']) cols.add(c)
  return [...cols]
}

/**
 * A Dataverse row (plus its activity parties) → canonical fields. A field whose column the mailbox
 * owner cannot read is left **absent** (unknown), never null: Dataverse answers null for a secured
 * column, which must not be mistaken for "cleared".
 */
export function rowToFields(kind: CrmKind, row: Row, parties: readonly PartyRow[], ctx: MapContext): Fields {
  const out: Fields = {}
  for (const spec of fieldSpecs(kind, ctx.contactAddresses)) {
    if (!spec.columns.every((c) => ctx.readable(c))) continue
    const value = spec.read(row, parties)
    // A read-only field (fullname, senton) that is empty in the CRM is unknown, not "cleared":
    // Concord cannot write it, so null would only wipe the mailbox's value.
    if (value === null && !spec.write) continue
    out[spec.field] = value
  }
  return out
}

export interface WritePayload {
  body: Record<string, unknown>
  /** Undefined = leave the parties alone; an array replaces them. */
  parties: PartyWrite[] | undefined
  /** Canonical fields not written because the owner lacks the field permission (column security). */
  dropped: string[]
}

/** Canonical fields → a Web API body. Read-only fields are ignored; secured fields the owner cannot write are dropped. */
export function fieldsToPayload(kind: CrmKind, fields: Fields, ctx: WriteContext): WritePayload {
  const body: Record<string, unknown> = {}
  const parties: PartyWrite[] = []
  let touchesParties = false
  const dropped: string[] = []
  for (const spec of fieldSpecs(kind, ctx.contactAddresses)) {
    if (!(spec.field in fields) || fields[spec.field] === undefined) continue
    if (!spec.write || (spec.createOnly && !ctx.create)) continue
    if (!spec.columns.every((c) => ctx.writable(c))) {
      dropped.push(spec.field)
      continue
    }
    if (spec.columns.length === 0) touchesParties = true
    spec.write(fields[spec.field], body, parties, ctx)
  }
  return { body, parties: touchesParties ? parties : undefined, dropped }
}

/** Wire shape of parties for `*_activity_parties`. */
export function partiesToWire(parties: readonly PartyWrite[]): Array<Record<string, unknown>> {
  return parties.map((p) => {
    const out: Record<string, unknown> = { participationtypemask: p.mask, addressused: p.address }
    if (p.party) out[`partyid_${p.party.table}@odata.bind`] = `/${REGARDING_SETS[p.party.table] ?? `${p.party.table}s`}(${p.party.id})`
    return out
  })
}
