import { randomUUID } from 'node:crypto'
import { z } from 'zod'
import { isoNow, type Caller, type EmulatorContext } from './context.js'
import { DataverseError, notFound, payloadInvalid } from './errors.js'
import { parseFilter } from './odata/filter-parser.js'
import { compileFilter } from './odata/query.js'
import { DERIVED_COLUMNS, isReadOnly, navigation, TABLES_BY_NAME, TABLES_BY_SET, tableByName, type ColumnType, type TableDef } from './schema.js'
import type { LookupRef, Primitive, Row } from './store/store.js'

export const GUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const MAX_STRING = 1_048_576

export interface PartyInput {
  partyid: LookupRef | null
  participationtypemask: number
  addressused: string | null
  exchangeentryid: string | null
}

export interface ParsedPayload {
  values: Record<string, Primitive>
  lookups: Record<string, LookupRef | null>
  parties: PartyInput[] | null
  id: string | null
  /** Set by WinOpportunity / LoseOpportunity: closing an opportunity is allowed on this write. */
  closing?: boolean
}

const edm: Record<ColumnType, string> = {
  string: 'Edm.String',
  memo: 'Edm.String',
  int: 'Edm.Int32',
  decimal: 'Edm.Decimal',
  bool: 'Edm.Boolean',
  datetime: 'Edm.DateTimeOffset',
  guid: 'Edm.Guid',
}

function convert(table: TableDef, col: string, type: ColumnType, v: unknown): Primitive {
  if (v === null) return null
  const bad = (): never => {
    throw payloadInvalid(`Cannot convert the literal '${typeof v === 'string' ? v : JSON.stringify(v)}' to the expected type '${edm[type]}' for property '${col}' on '${table.logicalName}'.`)
  }
  switch (type) {
    case 'string':
    case 'memo':
      if (typeof v !== 'string') return bad()
      if (v.length > MAX_STRING) throw payloadInvalid(`The value of '${col}' is longer than ${MAX_STRING} characters.`)
      return v
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v) || Math.abs(v) > 2_147_483_647) return bad()
      return v
    case 'decimal':
      if (typeof v !== 'number' || !Number.isFinite(v)) return bad()
      return v
    case 'bool':
      if (typeof v !== 'boolean') return bad()
      return v
    case 'guid':
      if (typeof v !== 'string' || !GUID_RE.test(v)) return bad()
      return v.toLowerCase()
    case 'datetime': {
      if (typeof v !== 'string') return bad()
      const ms = Date.parse(v)
      if (Number.isNaN(ms) || !/^\d{4}-\d{2}-\d{2}/.test(v)) return bad()
      return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
    }
  }
}

/** Parse `/contacts(<guid>)`, `contacts(<guid>)`, an absolute URL or an alternate-key reference. */
export function resolveReference(ctx: EmulatorContext, ref: string, expectedTable: string | null, field: string): LookupRef {
  const m = /(?:^|\/)([A-Za-z_]+)\((.+)\)$/.exec(ref.trim())
  if (!m) throw payloadInvalid(`The @odata.bind value '${ref}' for '${field}' is not a valid entity reference such as /contacts(00000000-0000-0000-0000-000000000000).`)
  const table = TABLES_BY_SET.get(m[1] as string)
  if (!table) throw payloadInvalid(`The entity set '${m[1]}' in '${field}' does not exist.`)
  if (expectedTable && table.logicalName !== expectedTable) {
    throw payloadInvalid(`The reference '${ref}' for '${field}' must point at a ${expectedTable}, not a ${table.logicalName}.`)
  }
  const key = parseKey(table, m[2] as string)
  const row = findByKey(ctx, table, key)
  if (!row) throw notFound(table.logicalName, keyText(key))
  return { table: table.logicalName, id: row.id }
}

export type KeySpec = { kind: 'id'; id: string } | { kind: 'alternate'; values: Record<string, string | number> }

export function keyText(k: KeySpec): string {
  return k.kind === 'id' ? k.id : Object.entries(k.values).map(([c, v]) => `${c}:${v}`).join(',')
}

export function parseKey(table: TableDef, src: string): KeySpec {
  const s = src.trim()
  if (GUID_RE.test(s)) return { kind: 'id', id: s.toLowerCase() }
  const values: Record<string, string | number> = {}
  const re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:'((?:[^']|'')*)'|([0-9a-fA-F-]{36})|(-?\d+))\s*(,|$)/y
  let pos = 0
  while (pos < s.length) {
    re.lastIndex = pos
    const m = re.exec(s)
    if (!m) throw new DataverseError('BadRequest', 400, `The key '${src}' is not valid for entity '${table.logicalName}'.`)
    const col = m[1] as string
    if (m[2] !== undefined) values[col] = m[2].replace(/''/g, "'")
    else if (m[3] !== undefined) values[col] = m[3].toLowerCase()
    else values[col] = Number(m[4])
    pos = re.lastIndex
    if (m[5] === '') break
  }
  const cols = Object.keys(values)
  if (cols.length === 1 && cols[0] === table.primaryKey) {
    const id = String(values[table.primaryKey])
    if (!GUID_RE.test(id)) throw new DataverseError('BadRequest', 400, `The key '${src}' is not a valid GUID.`)
    return { kind: 'id', id: id.toLowerCase() }
  }
  const match = Object.values(table.alternateKeys).some((kc) => kc.length === cols.length && kc.every((c) => cols.includes(c)))
  if (!match) {
    throw new DataverseError('BadRequest', 400, `The key '${src}' does not match a defined alternate key of entity '${table.logicalName}'.`)
  }
  return { kind: 'alternate', values }
}

export function findByKey(ctx: EmulatorContext, table: TableDef, key: KeySpec): Row | undefined {
  if (table.virtualOf) {
    if (key.kind !== 'id') return undefined
    for (const name of table.virtualOf) {
      const row = ctx.store.table(name).rows.get(key.id)
      if (row) return row
    }
    return undefined
  }
  const t = ctx.store.table(table.logicalName)
  if (key.kind === 'id') return t.rows.get(key.id)
  let candidates: string[] | null = null
  for (const [col, v] of Object.entries(key.values)) {
    const ids = t.lookupIndex(col, String(v))
    candidates = candidates === null ? ids : candidates.filter((id) => ids.includes(id))
  }
  const id = candidates?.[0]
  return id ? t.rows.get(id) : undefined
}

const partySchema = z.record(z.string(), z.unknown())

/**
 * A column that is not valid for this write (IsValidForCreate / IsValidForUpdate false). Dataverse's own
 * answer is not documented; the emulator refuses so that a client that sends one finds out (README).
 */
export function readOnlyColumnError(table: TableDef, column: string, mode: 'create' | 'update'): DataverseError {
  return new DataverseError(
    'ReadOnlyColumn',
    400,
    `The property '${column}' of '${table.logicalName}' is not valid for ${mode} (IsValidFor${mode === 'create' ? 'Create' : 'Update'} is false); it is set by the platform. Remove it from the request.`,
  )
}

/** Validate and convert a Web API write body into column values and lookups. */
export function parsePayload(ctx: EmulatorContext, table: TableDef, body: unknown, mode: 'create' | 'update'): ParsedPayload {
  if (table.apiReadOnly) {
    throw new DataverseError('MethodNotAllowed', 405, `'${table.entitySet}' is an intersect table; use the relationship's $ref (Associate / Disassociate) instead.`)
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw payloadInvalid(`The request body for '${table.entitySet}' must be a JSON object.`)
  }
  const out: ParsedPayload = { values: {}, lookups: {}, parties: null, id: null }
  const nav = navigation(table)
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (k.endsWith('@odata.bind')) {
      const name = k.slice(0, -'@odata.bind'.length)
      const n = nav.get(name)
      if (!n) {
        throw payloadInvalid(
          `An undeclared property '${name}' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values.`,
        )
      }
      if (isReadOnly(table, n.column)) throw readOnlyColumnError(table, n.column, mode)
      if (v === null) {
        out.lookups[n.column] = null
        continue
      }
      if (typeof v !== 'string') throw payloadInvalid(`The value of '${k}' must be a string entity reference.`)
      out.lookups[n.column] = resolveReference(ctx, v, n.target, k)
      continue
    }
    if (k.startsWith('@') || k.includes('@')) continue
    if (table.partyCollection && k === table.partyCollection) {
      if (!Array.isArray(v)) throw payloadInvalid(`'${k}' must be an array of activity parties.`)
      out.parties = v.map((p, i) => parseParty(ctx, p, `${k}[${i}]`))
      continue
    }
    if (k === table.primaryKey) {
      if (typeof v !== 'string' || !GUID_RE.test(v)) throw payloadInvalid(`'${k}' must be a GUID.`)
      out.id = v.toLowerCase()
      continue
    }
    if (k.startsWith('_') && k.endsWith('_value')) {
      throw payloadInvalid(`The property '${k}' cannot be set directly; use '${k.slice(1, -6)}...@odata.bind'.`)
    }
    const type = Object.hasOwn(table.columns, k) ? table.columns[k] : undefined
    if (!type) {
      throw payloadInvalid(
        `The property '${k}' does not exist on type 'Microsoft.Dynamics.CRM.${table.logicalName}'. Make sure to only use property names that are defined by the type or mark the type as open type.`,
      )
    }
    if (isReadOnly(table, k) || (mode === 'update' && table.createOnly?.includes(k))) throw readOnlyColumnError(table, k, mode)
    const value = convert(table, k, type, v)
    if (DERIVED_COLUMNS.has(k)) continue // writable in Dataverse, recomputed here from the lookup
    out.values[k] = value
  }
  return out
}

function parseParty(ctx: EmulatorContext, raw: unknown, where: string): PartyInput {
  const parsed = partySchema.safeParse(raw)
  if (!parsed.success) throw payloadInvalid(`${where} must be a JSON object.`)
  const party = tableByName('activityparty')
  const nav = navigation(party)
  const out: PartyInput = { partyid: null, participationtypemask: 0, addressused: null, exchangeentryid: null }
  for (const [k, v] of Object.entries(parsed.data)) {
    if (k.endsWith('@odata.bind')) {
      const n = nav.get(k.slice(0, -'@odata.bind'.length))
      if (!n || n.column !== 'partyid') throw payloadInvalid(`${where}: '${k}' is not a navigation property of activityparty (use partyid_<table>@odata.bind).`)
      if (typeof v !== 'string') throw payloadInvalid(`${where}: '${k}' must be a string entity reference.`)
      out.partyid = resolveReference(ctx, v, n.target, `${where}.${k}`)
    } else if (k === 'participationtypemask') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 13) {
        throw payloadInvalid(`${where}: participationtypemask must be an integer 1–13, got ${JSON.stringify(v)}.`)
      }
      out.participationtypemask = v
    } else if (k === 'addressused') {
      if (typeof v !== 'string' && v !== null) throw payloadInvalid(`${where}: addressused must be a string.`)
      out.addressused = v
    } else if (k === 'exchangeentryid') {
      if (typeof v !== 'string' && v !== null) throw payloadInvalid(`${where}: exchangeentryid must be a string.`)
      out.exchangeentryid = v
    } else if (!k.includes('@')) {
      throw payloadInvalid(`${where}: the property '${k}' does not exist on type 'Microsoft.Dynamics.CRM.activityparty'.`)
    }
  }
  if (out.participationtypemask === 0) throw payloadInvalid(`${where}: participationtypemask is required.`)
  if (!out.partyid && !out.addressused) throw payloadInvalid(`${where}: a party needs partyid_<table>@odata.bind or addressused.`)
  return out
}

/** Email address of a party target, used for addressused. */
function emailOf(ctx: EmulatorContext, ref: LookupRef): string | null {
  const row = ctx.store.get(ref.table, ref.id)
  if (!row) return null
  const col = ref.table === 'systemuser' ? 'internalemailaddress' : ref.table === 'queue' || ref.table === 'opportunity' ? 'emailaddress' : 'emailaddress1'
  const v = row.values[col]
  return typeof v === 'string' ? v : null
}

/**
 * Resolve an address to records (§5.8): the sender resolves to the first active match in the order
 * systemuser, contact, account, lead, queue; other parties resolve to every match.
 */
export function resolveAddress(ctx: EmulatorContext, address: string, single: boolean): LookupRef[] {
  const out: LookupRef[] = []
  const probes: Array<[string, string[]]> = [
    ['systemuser', ['internalemailaddress']],
    ['contact', ['emailaddress1', 'emailaddress2', 'emailaddress3']],
    ['account', ['emailaddress1']],
    ['lead', ['emailaddress1', 'emailaddress2', 'emailaddress3']],
    ['queue', ['emailaddress']],
  ]
  for (const [table, cols] of probes) {
    const t = ctx.store.table(table)
    const seen = new Set<string>()
    for (const c of cols) for (const id of t.lookupIndex(c, address)) seen.add(id)
    const ids = [...seen].filter((id) => {
      const row = t.rows.get(id)
      return row !== undefined && (row.values.statecode ?? 0) === 0 && row.values.isdisabled !== true
    })
    for (const id of ids) {
      out.push({ table, id })
      if (single) return out
    }
  }
  return out
}

/** Replace the activity parties of an activity. */
export function writeParties(ctx: EmulatorContext, activity: TableDef, activityId: string, parties: PartyInput[]): void {
  const t = ctx.store.table('activityparty')
  for (const id of t.lookupIndex('_activityid_value', activityId)) ctx.store.delete('activityparty', id, ctx.now())
  for (const p of parties) {
    const make = (ref: LookupRef | null, address: string | null): void => {
      ctx.store.insert('activityparty', {
        id: randomUUID(),
        values: {
          participationtypemask: p.participationtypemask,
          addressused: address,
          exchangeentryid: p.exchangeentryid,
          ispartydeleted: false,
        },
        lookups: { activityid: { table: activity.logicalName, id: activityId }, partyid: ref },
      })
    }
    if (p.partyid) {
      make(p.partyid, p.addressused ?? emailOf(ctx, p.partyid))
      continue
    }
    const address = p.addressused as string
    const matches = resolveAddress(ctx, address, p.participationtypemask === 1)
    if (matches.length === 0) make(null, address)
    else for (const m of matches) make(m, address)
  }
}

export function partiesOf(ctx: EmulatorContext, activityId: string): Row[] {
  const t = ctx.store.table('activityparty')
  return t.lookupIndex('_activityid_value', activityId).flatMap((id) => {
    const r = t.rows.get(id)
    return r ? [r] : []
  })
}

/** Check and complete statecode/statuscode for a write. */
export function applyState(table: TableDef, values: Record<string, Primitive>, existing: Row | null): void {
  if (!table.states) return
  const hasState = 'statecode' in values
  const hasStatus = 'statuscode' in values
  if (!existing && !hasState && !hasStatus) {
    const def = table.defaultState ?? 0
    values.statecode = def
    values.statuscode = (table.states[def] as readonly number[])[0] as number
    return
  }
  if (!hasState && !hasStatus) return
  let state = hasState ? (values.statecode as number | null) : ((existing?.values.statecode as number | undefined) ?? table.defaultState ?? 0)
  const status = hasStatus ? (values.statuscode as number | null) : null
  if (state === null) throw payloadInvalid(`statecode cannot be null on '${table.logicalName}'.`)
  if (!hasState && status !== null) {
    // statuscode alone: infer the state it belongs to
    const found = Object.entries(table.states).find(([, list]) => list.includes(status))
    if (!found) throw new DataverseError('InvalidStateTransition', 400, `${status} is not a valid status code on ${table.logicalName}.`)
    state = Number(found[0])
    values.statecode = state
  }
  const allowed = table.states[state]
  if (!allowed) throw new DataverseError('InvalidStateTransition', 400, `${state} is not a valid state code on ${table.logicalName}.`)
  if (status === null) {
    values.statuscode = allowed[0] as number
  } else if (!allowed.includes(status)) {
    throw new DataverseError('InvalidStateTransition', 400, `${status} is not a valid status code for state code ${table.logicalName}State.${state} on ${table.logicalName}.`)
  }
}

/** Computed columns filled by the platform on every write. */
export function applyComputed(ctx: EmulatorContext, table: TableDef, p: ParsedPayload, existing: Row | null, caller: Caller): void {
  const now = isoNow(ctx)
  const v = p.values
  if (!existing) {
    v.createdon = now
    p.lookups.createdby = { table: 'systemuser', id: caller.userId }
    if (table.ownership === 'user' && p.lookups.ownerid === undefined) p.lookups.ownerid = { table: 'systemuser', id: caller.userId }
    if (table.partyCollection || table.logicalName === 'task') v.activitytypecode = table.logicalName
    if (table.logicalName === 'email' && !('directioncode' in v)) v.directioncode = true
  }
  if ('createdon' in table.columns) v.modifiedon = now
  if ('modifiedby' in table.lookups) p.lookups.modifiedby = { table: 'systemuser', id: caller.userId }
  if ('regardingobjectid' in p.lookups && 'regardingobjecttypecode' in table.columns) {
    v.regardingobjecttypecode = p.lookups.regardingobjectid?.table ?? null
  }
  if (table.logicalName === 'contact' || table.logicalName === 'systemuser' || table.logicalName === 'lead') {
    const first = 'firstname' in v ? v.firstname : (existing?.values.firstname ?? null)
    const last = 'lastname' in v ? v.lastname : (existing?.values.lastname ?? null)
    if ('firstname' in v || 'lastname' in v || !existing) {
      const full = [first, last].filter((x) => typeof x === 'string' && x !== '').join(' ')
      if (table.logicalName !== 'systemuser' || full !== '') v.fullname = full === '' ? null : full
    }
  }
  if (table.logicalName === 'appointment' && !('scheduleddurationminutes' in v) && ('scheduledstart' in v || 'scheduledend' in v)) {
    const start = 'scheduledstart' in v ? v.scheduledstart : (existing?.values.scheduledstart ?? null)
    const end = 'scheduledend' in v ? v.scheduledend : (existing?.values.scheduledend ?? null)
    if (typeof start === 'string' && typeof end === 'string') {
      const mins = Math.round((Date.parse(end) - Date.parse(start)) / 60_000)
      if (mins < 0) throw payloadInvalid('appointment.scheduledend must not be before scheduledstart.')
      v.scheduleddurationminutes = mins
    }
  }
  applyState(table, v, existing)
  // Sent e-mail: the platform stamps senton (read-only for clients) when the e-mail reaches Sent (3).
  if (table.logicalName === 'email' && v.statuscode === 3 && existing?.values.statuscode !== 3 && (existing?.values.senton ?? null) === null && !('senton' in v)) {
    v.senton = now
  }
}

/** Enforce alternate key uniqueness (412 DuplicateRecord). */
export function checkAlternateKeys(ctx: EmulatorContext, table: TableDef, id: string, merged: Record<string, Primitive>): void {
  const t = ctx.store.table(table.logicalName)
  for (const cols of Object.values(table.alternateKeys)) {
    if (cols.length !== 1) continue
    const col = cols[0] as string
    const val = merged[col]
    if (val === null || val === undefined || val === '') continue
    const others = t.lookupIndex(col, String(val)).filter((x) => x !== id)
    if (others.length > 0) {
      throw new DataverseError('DuplicateRecord', 412, 'A record with matching key values already exists.')
    }
  }
}

/** Table-specific validation of the merged row (sync filters must be valid OData filters on a known table). */
/**
 * Option-set (picklist) columns whose values the emulator checks, as Dataverse does: a value outside the
 * choices → 400 "… is outside the valid range". Values from protocols.md §5.2 (mailbox) and the
 * TraceLog table reference (level 1 Information, 2 Warning, 3 Error).
 */
export const OPTION_SETS: Record<string, Record<string, readonly number[]>> = {
  mailbox: {
    emailrouteraccessapproval: [0, 1, 2, 3],
    incomingemailstatus: [0, 1, 2],
    outgoingemailstatus: [0, 1, 2],
    actstatus: [0, 1, 2],
    incomingemaildeliverymethod: [0, 1, 2, 3],
    outgoingemaildeliverymethod: [0, 1, 2],
    actdeliverymethod: [0, 1, 2],
  },
  tracelog: { level: [1, 2, 3] },
  // servertype: 0 Exchange Server, 1 Other (POP3/SMTP), 2 Exchange Server (Hybrid), 3 Exchange Online (Hybrid), 4 IMAP/SMTP.
  emailserverprofile: { servertype: [0, 1, 2, 3, 4] },
  email: { correlationmethod: [0, 1, 2, 3, 4, 5, 6, 7], prioritycode: [0, 1, 2] },
  // field_security_permission_type: 0 Not Allowed, 4 Allowed; canreadunmasked 0 Not Allowed, 1 One Record, 3 All Records.
  fieldpermission: { canread: [0, 4], cancreate: [0, 4], canupdate: [0, 4], canreadunmasked: [0, 1, 3] },
  lead: { leadsourcecode: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
}

export function validateRow(table: TableDef, merged: Record<string, Primitive>): void {
  for (const [col, choices] of Object.entries(OPTION_SETS[table.logicalName] ?? {})) {
    const v = merged[col]
    if (v === null || v === undefined) continue
    if (typeof v !== 'number' || !choices.includes(v)) {
      throw new DataverseError('BadRequest', 400, `A validation error occurred. The value ${JSON.stringify(v)} of '${col}' on record of type '${table.logicalName}' is outside the valid range. Accepted values: ${choices.join(', ')}.`)
    }
  }
  if (table.logicalName === 'tracelog') {
    const code = merged.tracecode
    if (code !== null && code !== undefined && (typeof code !== 'number' || code < 0 || code > 1_000_000_000)) {
      throw new DataverseError('BadRequest', 400, `A validation error occurred. The value ${JSON.stringify(code)} of 'tracecode' on record of type 'tracelog' is outside the valid range (0 to 1000000000).`)
    }
  }
  if (table.logicalName !== 'userquery') return
  const type = merged.returnedtypecode
  if (typeof type !== 'string' || !TABLES_BY_NAME.has(type)) {
    throw payloadInvalid(`userquery.returnedtypecode must name a table (e.g. 'contact'), got ${JSON.stringify(type ?? null)}.`)
  }
  const f = merged.concord_odatafilter
  if (typeof f === 'string' && f.trim() !== '') {
    try {
      compileFilter(tableByName(type), parseFilter(f))
    } catch (err) {
      throw payloadInvalid(`userquery.concord_odatafilter is not a valid $filter for '${type}': ${(err as Error).message}`, err)
    }
  }
}
