import { randomUUID } from 'node:crypto'
import {
  checkNotExpired,
  collectChanges,
  countChanges,
  CT_REJECTED_OPTIONS,
  formatDeltaToken,
  parseDeltaToken,
  rejectedOptionError,
  startCursor,
  type TrackingCursor,
} from './change-tracking.js'
import { isoNow, type Caller, type EmulatorContext } from './context.js'
import { badRequest, DataverseError, notFound, payloadInvalid, privilegeDenied, queryInvalid } from './errors.js'
import { buildMetadata } from './metadata.js'
import { parseFilter } from './odata/filter-parser.js'
import {
  annotationMatcher,
  compileFilter,
  etagOf,
  parseExpand,
  parseOrderBy,
  parsePrefer,
  parseSelect,
  projectRow,
  sortRows,
  type ExpandItem,
} from './odata/query.js'
import {
  applyComputed,
  checkAlternateKeys,
  findByKey,
  GUID_RE,
  keyText,
  parseKey,
  parsePayload,
  partiesOf,
  resolveReference,
  validateRow,
  writeParties,
  type KeySpec,
  type ParsedPayload,
} from './records.js'
import { isReadOnly, ORGANIZATION_ID, ROOT_BUSINESS_UNIT_ID, TABLES_BY_NAME, TABLES_BY_SET, tableByName, type TableDef } from './schema.js'
import { guidFromName, SPECIAL_PRIVILEGES, SYSADMIN_FIELD_PROFILE_ID, SYSTEM_ADMINISTRATOR, SYSTEM_ADMINISTRATOR_ROLE_TEMPLATE_ID, tablePrivilege, type ShareAccess } from './security.js'
import type { LookupRef, Row } from './store/store.js'

export interface ApiRequest {
  method: string
  /** Path after /api/data/v9.2/ (not decoded), e.g. "contacts(…)". */
  path: string
  query: URLSearchParams
  /** Lower-cased header names. */
  headers: Record<string, string | undefined>
  body: string
}

export interface ApiResponse {
  status: number
  headers: Record<string, string>
  body?: unknown
  /** Raw text body (e.g. $metadata XML or $count). */
  text?: string
}

export const MAX_PAGE_SIZE = 5000
/** The many-to-many relationship between fieldsecurityprofile and systemuser (column-level-security.md). */
const PROFILE_ASSOCIATION = 'systemuserprofiles_association'
/** The many-to-many relationship between systemuser and role (read-only here). */
const ROLE_ASSOCIATION = 'systemuserroles_association'
const ROLE_PROPERTIES = ['roleid', 'name', '_roletemplateid_value', '_businessunitid_value'] as const
const OPPORTUNITY_CLOSED: Record<number, string> = { 1: 'won', 2: 'lost' }

const json = (status: number, body: unknown, headers: Record<string, string> = {}): ApiResponse => ({ status, headers, body })

function parseBody(req: ApiRequest): unknown {
  if (req.body.trim() === '') return {}
  try {
    return JSON.parse(req.body) as unknown
  } catch (err) {
    throw payloadInvalid(`The request body is not valid JSON: ${(err as Error).message}`, err)
  }
}

/** A JSON object body, or a 400 naming what was expected. */
function objectBody(req: ApiRequest, what: string): Record<string, unknown> {
  const b = parseBody(req)
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw payloadInvalid(`${what}: the request body must be a JSON object.`)
  return b as Record<string, unknown>
}

interface ParsedPath {
  set: string
  key: string | null
  rest: string | null
}

function parsePath(path: string): ParsedPath {
  let p: string
  try {
    p = decodeURIComponent(path)
  } catch {
    throw badRequest(`The request path '${path}' is not validly URL-encoded.`)
  }
  const m = /^([A-Za-z_][A-Za-z0-9_.]*)(?:\((.*?)\))?(?:\/(.*))?$/s.exec(p)
  if (!m) throw badRequest(`Resource not found for the segment '${p}'.`)
  // keys may contain ')' inside quotes: re-split on the last ')' before the first '/' after the key
  if (m[2] !== undefined && p.includes("'")) {
    const open = p.indexOf('(')
    let i = open + 1
    let quoted = false
    for (; i < p.length; i++) {
      const ch = p[i]
      if (ch === "'") quoted = !quoted
      else if (ch === ')' && !quoted) break
    }
    const rest = p.slice(i + 1)
    return { set: p.slice(0, open), key: p.slice(open + 1, i), rest: rest.startsWith('/') ? rest.slice(1) : rest === '' ? null : rest }
  }
  return { set: m[1] as string, key: m[2] ?? null, rest: m[3] ?? null }
}

const KNOWN_OPTIONS = new Set(['$select', '$filter', '$orderby', '$top', '$expand', '$count', '$skiptoken', '$deltatoken', '$format'])

interface Cookie {
  page: number
  tracking: boolean
  value: string
}

function encodeCookie(c: Cookie): string {
  return `<cookie pagenumber="${c.page}" pagingcookie="${encodeURIComponent(c.value)}" istracking="${c.tracking ? 'True' : 'False'}" />`
}

function decodeCookie(raw: string): Cookie {
  const m = /^<cookie pagenumber="(\d{1,9})" pagingcookie="([^"]*)" istracking="(True|False)" \/>$/.exec(raw)
  if (!m) throw queryInvalid(`The $skiptoken '${raw.slice(0, 200)}' is not a valid paging cookie.`)
  let value: string
  try {
    value = decodeURIComponent(m[2] as string)
  } catch {
    throw queryInvalid('The $skiptoken paging cookie is not validly encoded.')
  }
  return { page: Number(m[1]), tracking: m[3] === 'True', value }
}

function buildQueryString(params: Array<[string, string]>): string {
  if (params.length === 0) return ''
  return `?${params.map(([k, v]) => `${k}=${encodeURIComponent(v).replace(/%2C/g, ',').replace(/!/g, '%21')}`).join('&')}`
}

/** The Web API request handler. Independent of the HTTP framework so $batch can call it. */
export class WebApi {
  constructor(private readonly ctx: EmulatorContext) {}

  private get store() {
    return this.ctx.store
  }

  private get security() {
    return this.ctx.security
  }

  handle(req: ApiRequest, caller: Caller): ApiResponse {
    const method = req.method.toUpperCase()
    const path = req.path.replace(/^\/+/, '')
    for (const k of req.query.keys()) {
      if (k.startsWith('$') && !KNOWN_OPTIONS.has(k)) {
        if (k === '$skip') throw queryInvalid('The query parameter $skip is not supported.')
        throw queryInvalid(`The query parameter ${k} is not supported.`)
      }
    }
    if (path === '' || path === '/') {
      return json(200, {
        '@odata.context': `${this.ctx.apiBase}/$metadata`,
        value: [...TABLES_BY_SET.keys()].map((name) => ({ name, kind: 'EntitySet', url: name })),
      })
    }
    if (path === '$metadata') {
      return { status: 200, headers: { 'Content-Type': 'application/xml' }, text: buildMetadata(req.query.get('annotations') === 'true') }
    }
    if (path === 'WhoAmI' || path === 'WhoAmI()') {
      if (method !== 'GET') throw new DataverseError('MethodNotAllowed', 405, 'WhoAmI is a function; use GET.')
      return json(200, {
        '@odata.context': `${this.ctx.apiBase}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse`,
        BusinessUnitId: ROOT_BUSINESS_UNIT_ID,
        UserId: caller.userId,
        OrganizationId: ORGANIZATION_ID,
      })
    }
    if (path.startsWith('EntityDefinitions')) return this.entityDefinitions(path, method, req, caller)
    if (path === 'WinOpportunity' || path === 'LoseOpportunity') {
      if (method !== 'POST') throw new DataverseError('MethodNotAllowed', 405, `${path} is an action; use POST.`)
      return this.closeOpportunity(path, parseBody(req), caller)
    }
    if (path === 'GrantAccess' || path === 'ModifyAccess' || path === 'RevokeAccess') {
      if (method !== 'POST') throw new DataverseError('MethodNotAllowed', 405, `${path} is an action; use POST.`)
      return this.sharingAction(path, parseBody(req), caller)
    }
    const parsed = parsePath(path)
    const table = TABLES_BY_SET.get(parsed.set)
    if (!table) throw new DataverseError('NotFound', 404, `Resource not found for the segment '${parsed.set}'.`)

    if (parsed.key === null) {
      if (parsed.rest === '$count') {
        if (method !== 'GET') throw new DataverseError('MethodNotAllowed', 405, '$count supports GET only.')
        return this.count(table, req, caller)
      }
      if (parsed.rest !== null) throw new DataverseError('NotFound', 404, `Resource not found for the segment '${parsed.rest}'.`)
      if (method === 'GET') return this.list(table, req, caller)
      if (method === 'POST' && !table.virtualOf) return this.create(table, req, caller)
      throw new DataverseError('MethodNotAllowed', 405, `The HTTP method '${method}' is not allowed on the entity set '${table.entitySet}'.`)
    }
    if (table.virtualOf && method !== 'GET') {
      throw new DataverseError('MethodNotAllowed', 405, `'${table.entitySet}' is read-only here; write to ${table.virtualOf.map((n) => tableByName(n).entitySet).join(', ')}.`)
    }
    const key = parseKey(table, parsed.key)
    if (parsed.rest) return this.subResource(table, key, parsed.rest, method, req, caller)
    switch (method) {
      case 'GET':
        return this.retrieve(table, key, req, caller)
      case 'PATCH':
        return this.upsert(table, key, req, caller)
      case 'DELETE':
        return this.remove(table, key, req, caller)
      default:
        throw new DataverseError('MethodNotAllowed', 405, `The HTTP method '${method}' is not allowed on an entity.`)
    }
  }

  // ---------- reads ----------

  private annotations(req: ApiRequest): { match: (n: string) => boolean; prefer: Map<string, string> } {
    const prefer = parsePrefer(req.headers.prefer)
    return { match: annotationMatcher(prefer.get('odata.include-annotations')), prefer }
  }

  private displayName = (ref: LookupRef): string | null => {
    const row = this.store.get(ref.table, ref.id)
    if (!row) return null
    const def = tableByName(ref.table)
    const v = def.primaryName === def.primaryKey ? row.id : row.values[def.primaryName]
    return v === null || v === undefined ? null : String(v)
  }

  private projector(table: TableDef, caller: Caller, select: string[] | null, match: (n: string) => boolean, expand: ExpandItem[]) {
    const canRead = this.security.readCheck(caller.userId, table.logicalName)
    return (row: Row): Record<string, unknown> => {
      const out = projectRow(table, row, { select, annotations: match, canRead, displayName: this.displayName })
      for (const e of expand) out[e.nav] = this.expandValue(table, row, e, caller, match)
      return out
    }
  }

  private expandValue(table: TableDef, row: Row, e: ExpandItem, caller: Caller, match: (n: string) => boolean): unknown {
    if (e.kind === 'parties') {
      const partyTable = tableByName('activityparty')
      const canRead = this.security.readCheck(caller.userId, 'activityparty')
      return partiesOf(this.ctx, row.id).map((p) =>
        projectRow(partyTable, p, { select: e.select, annotations: match, canRead, displayName: this.displayName }),
      )
    }
    const ref = row.lookups[e.column as string]
    if (!ref || ref.table !== e.target) return null
    const target = tableByName(ref.table)
    const targetRow = this.store.get(ref.table, ref.id)
    if (!targetRow) return null
    const depth = this.security.depth(caller.userId, tablePrivilege('Read', target))
    if (!depth || !this.security.rowAllowed(caller.userId, target, targetRow, 'Read', depth)) return null
    const canRead = this.security.readCheck(caller.userId, target.logicalName)
    void table
    return projectRow(target, targetRow, { select: e.select, annotations: match, canRead, displayName: this.displayName })
  }

  private contextUrl(table: TableDef, select: string[] | null, suffix = ''): string {
    return `${this.ctx.apiBase}/$metadata#${table.entitySet}${select ? `(${select.join(',')})` : ''}${suffix}`
  }

  private pageSize(prefer: Map<string, string>): number | null {
    const raw = prefer.get('odata.maxpagesize')
    if (raw === undefined) return null
    if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1) throw badRequest(`The odata.maxpagesize preference value '${raw}' is not a positive integer.`)
    return Math.min(Number(raw), MAX_PAGE_SIZE)
  }

  private list(table: TableDef, req: ApiRequest, caller: Caller): ApiResponse {
    const { match, prefer } = this.annotations(req)
    const q = req.query
    const skiptoken = q.get('$skiptoken')
    const cookie = skiptoken !== null ? decodeCookie(skiptoken) : null
    const tracking = prefer.has('odata.track-changes') || q.has('$deltatoken') || (cookie?.tracking ?? false)
    const select = q.has('$select') ? parseSelect(table, q.get('$select') as string) : null
    const maxPage = this.pageSize(prefer)
    const headers: Record<string, string> = {}
    const applied: string[] = []
    if (prefer.has('odata.include-annotations')) applied.push(`odata.include-annotations="${prefer.get('odata.include-annotations')}"`)
    if (maxPage !== null) applied.push(`odata.maxpagesize=${maxPage}`)

    if (tracking) {
      for (const opt of CT_REJECTED_OPTIONS) if (q.has(opt)) throw rejectedOptionError(opt)
      if (!table.changeTracking) throw badRequest(`Change tracking is not enabled for entity '${table.logicalName}'.`)
      const depth = this.security.requireTable(caller.userId, table, 'Read')
      if (depth !== 'Global') throw privilegeDenied(caller.userId, `${tablePrivilege('Read', table)} (organization level)`, table.logicalName)
      applied.unshift('odata.track-changes')
      headers['Preference-Applied'] = applied.join(',')
      return json(200, this.trackingRound(table, q, cookie, select, maxPage ?? MAX_PAGE_SIZE, caller, match), headers)
    }
    if (applied.length) headers['Preference-Applied'] = applied.join(',')

    const depth = this.security.requireTable(caller.userId, table, 'Read')
    const filter = q.has('$filter') ? compileFilter(table, parseFilter(q.get('$filter') as string)) : null
    const order = q.has('$orderby') ? parseOrderBy(table, q.get('$orderby') as string) : null
    const expand = q.has('$expand') ? parseExpand(table, q.get('$expand') as string, tableByName) : []
    let top: number | null = null
    if (q.has('$top')) {
      const raw = q.get('$top') as string
      if (!/^\d{1,9}$/.test(raw)) throw queryInvalid(`The $top value '${raw}' is not a non-negative integer.`)
      top = Number(raw)
      if (top > MAX_PAGE_SIZE) throw queryInvalid(`The $top value ${top} exceeds the maximum of ${MAX_PAGE_SIZE}.`)
    }
    const countRequested = q.get('$count') === 'true'
    if (q.has('$count') && !['true', 'false'].includes(q.get('$count') as string)) throw queryInvalid("$count must be 'true' or 'false'.")

    const rowAllowed = depth === 'Basic' ? (r: Row) => this.security.rowAllowed(caller.userId, table, r, 'Read', depth) : null
    let rows: Row[] = []
    for (const r of this.rowsOf(table)) {
      if (filter && !filter(r)) continue
      if (rowAllowed && !rowAllowed(r)) continue
      rows.push(r)
    }
    if (order) rows = sortRows(table, rows, order)
    const total = rows.length
    let offset = 0
    if (cookie) {
      const m = /^offset:(\d{1,9})$/.exec(cookie.value)
      if (!m) throw queryInvalid('The $skiptoken paging cookie is not valid for this query.')
      offset = Number(m[1])
    }
    let size: number
    if (maxPage !== null) size = maxPage
    else if (top !== null) size = top
    else size = MAX_PAGE_SIZE
    const page = rows.slice(offset, offset + size)
    const project = this.projector(table, caller, select, match, expand)
    const body: Record<string, unknown> = { '@odata.context': this.contextUrl(table, select) }
    if (countRequested) body['@odata.count'] = total
    body.value = page.map(project)
    const more = offset + size < total && !(maxPage === null && top !== null)
    if (more) {
      const params: Array<[string, string]> = []
      for (const [k, v] of q) if (k !== '$skiptoken') params.push([k, v])
      params.push(['$skiptoken', encodeCookie({ page: (cookie?.page ?? 1) + 1, tracking: false, value: `offset:${offset + size}` })])
      body['@odata.nextLink'] = `${this.ctx.apiBase}/${table.entitySet}${buildQueryString(params)}`
    }
    return json(200, body, headers)
  }

  private trackingRound(
    table: TableDef,
    q: URLSearchParams,
    cookie: { value: string; page: number } | null,
    select: string[] | null,
    pageSize: number,
    caller: Caller,
    match: (n: string) => boolean,
  ): Record<string, unknown> {
    const t = this.store.table(table.logicalName)
    let cursor: TrackingCursor
    if (cookie) {
      const m = /^(u|d):(\d{1,12}):(-1|\d{1,15}):(\d{1,15})$/.exec(cookie.value)
      if (!m) throw queryInvalid('The $skiptoken paging cookie is not valid for this change-tracking query.')
      cursor = { phase: m[1] as 'u' | 'd', pos: Number(m[2]), since: Number(m[3]), upto: Number(m[4]), page: cookie.page }
      if (cursor.since >= 0 && cursor.since < this.store.minValidVersion) {
        checkNotExpired({ version: cursor.since, issuedAt: this.ctx.now() }, this.ctx.now(), this.ctx.retentionMs, this.store.minValidVersion, this.store.version)
      }
    } else if (q.has('$deltatoken')) {
      const token = parseDeltaToken(q.get('$deltatoken') as string)
      checkNotExpired(token, this.ctx.now(), this.ctx.retentionMs, this.store.minValidVersion, this.store.version)
      cursor = startCursor(t, token.version, this.store.version)
    } else {
      cursor = startCursor(t, -1, this.store.version)
    }
    const page = collectChanges(t, cursor, pageSize)
    const project = this.projector(table, caller, select, match, [])
    const value: unknown[] = page.upserts.map(project)
    const deletedContext = `${this.ctx.apiBase}/$metadata#${table.entitySet}/$deletedEntity`
    for (const id of page.deletes) value.push({ '@odata.context': deletedContext, id, reason: 'deleted' })
    const isDelta = cursor.since >= 0
    const body: Record<string, unknown> = { '@odata.context': this.contextUrl(table, select, isDelta ? '/$delta' : '') }
    body.value = value
    const base: Array<[string, string]> = select ? [['$select', select.join(',')]] : []
    if (page.next) {
      const n = page.next
      const params: Array<[string, string]> = [
        ...base,
        ['$skiptoken', encodeCookie({ page: n.page, tracking: true, value: `${n.phase}:${n.pos}:${n.since}:${n.upto}` })],
      ]
      body['@odata.nextLink'] = `${this.ctx.apiBase}/${table.entitySet}${buildQueryString(params)}`
    } else {
      const token = formatDeltaToken(cursor.upto, new Date(this.ctx.now()))
      body['@odata.deltaLink'] = `${this.ctx.apiBase}/${table.entitySet}${buildQueryString([...base, ['$deltatoken', token]])}`
    }
    return body
  }

  private count(table: TableDef, req: ApiRequest, caller: Caller): ApiResponse {
    const depth = this.security.requireTable(caller.userId, table, 'Read')
    const q = req.query
    let n: number
    if (q.has('$deltatoken')) {
      if (depth !== 'Global') throw privilegeDenied(caller.userId, `${tablePrivilege('Read', table)} (organization level)`, table.logicalName)
      const token = parseDeltaToken(q.get('$deltatoken') as string)
      checkNotExpired(token, this.ctx.now(), this.ctx.retentionMs, this.store.minValidVersion, this.store.version)
      n = countChanges(this.store.table(table.logicalName), token.version, this.store.version)
    } else {
      const filter = q.has('$filter') ? compileFilter(table, parseFilter(q.get('$filter') as string)) : null
      n = 0
      for (const r of this.rowsOf(table)) {
        if (filter && !filter(r)) continue
        if (depth === 'Basic' && !this.security.rowAllowed(caller.userId, table, r, 'Read', depth)) continue
        n++
      }
    }
    return { status: 200, headers: { 'Content-Type': 'text/plain' }, text: String(n) }
  }

  /** Rows of a table, or of the tables a virtual view (activitypointers) covers. */
  private *rowsOf(table: TableDef): Iterable<Row> {
    if (!table.virtualOf) {
      yield* this.store.table(table.logicalName).rows.values()
      return
    }
    for (const name of table.virtualOf) yield* this.store.table(name).rows.values()
  }

  private getRow(table: TableDef, key: KeySpec): Row {
    const row = findByKey(this.ctx, table, key)
    if (!row) throw notFound(table.logicalName, keyText(key))
    return row
  }

  private retrieve(table: TableDef, key: KeySpec, req: ApiRequest, caller: Caller): ApiResponse {
    const row = this.getRow(table, key)
    this.security.requireRow(caller.userId, table, row, 'Read')
    const { match, prefer } = this.annotations(req)
    const q = req.query
    const select = q.has('$select') ? parseSelect(table, q.get('$select') as string) : null
    const expand = q.has('$expand') ? parseExpand(table, q.get('$expand') as string, tableByName) : []
    const inm = req.headers['if-none-match']
    if (inm && inm !== 'null' && expand.length === 0 && !prefer.has('odata.include-annotations') && inm === etagOf(row)) {
      return { status: 304, headers: { ETag: etagOf(row) } }
    }
    const body = { '@odata.context': this.contextUrl(table, select, '/$entity'), ...this.projector(table, caller, select, match, expand)(row) }
    return json(200, body, { ETag: etagOf(row) })
  }

  private subResource(table: TableDef, key: KeySpec, rest: string, method: string, req: ApiRequest, caller: Caller): ApiResponse {
    const row = this.getRow(table, key)
    const action = rest.replace(/^Microsoft\.Dynamics\.CRM\./, '').replace(/\(\)$/, '')
    if (table.logicalName === 'systemuser' && (action === 'RetrieveUserPrivileges' || action === 'RetrieveUserFieldPermissions')) {
      if (method !== 'GET') throw new DataverseError('MethodNotAllowed', 405, `${action} is a function; use GET.`)
      if (row.id !== caller.userId) this.security.requireTable(caller.userId, table, 'Read')
      if (action === 'RetrieveUserPrivileges') {
        return json(200, {
          '@odata.context': `${this.ctx.apiBase}/$metadata#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse`,
          RolePrivileges: this.security.effectivePrivileges(row.id),
        })
      }
      return json(200, {
        '@odata.context': `${this.ctx.apiBase}/$metadata#Microsoft.Dynamics.CRM.RetrieveUserFieldPermissionsResponse`,
        FieldPermissions: this.security.userFieldPermissions(row.id),
      })
    }
    if (table.logicalName === 'systemuser' && /^RetrievePrincipalAccess\(Target=@(\w+)\)$/.test(action)) {
      if (method !== 'GET') throw new DataverseError('MethodNotAllowed', 405, 'RetrievePrincipalAccess is a function; use GET.')
      const alias = (/^RetrievePrincipalAccess\(Target=@(\w+)\)$/.exec(action) as RegExpExecArray)[1] as string
      if (row.id !== caller.userId) this.security.requireTable(caller.userId, table, 'Read')
      return json(200, {
        '@odata.context': `${this.ctx.apiBase}/$metadata#Microsoft.Dynamics.CRM.RetrievePrincipalAccessResponse`,
        AccessRights: this.principalAccess(row.id, req.query.get(`@${alias}`)),
      })
    }
    if (table.logicalName === 'systemuser' && rest === ROLE_ASSOCIATION) {
      if (method !== 'GET') throw new DataverseError('MethodNotAllowed', 405, `The HTTP method '${method}' is not allowed on '${ROLE_ASSOCIATION}' (roles are assigned through the control API).`)
      return this.userRoles(row, req, caller)
    }
    if (table.logicalName === 'email' && action === 'SendEmail') {
      if (method !== 'POST') throw new DataverseError('MethodNotAllowed', 405, 'SendEmail is an action; use POST.')
      return this.sendEmail(table, row, parseBody(req), caller)
    }
    if ((table.logicalName === 'fieldsecurityprofile' || table.logicalName === 'systemuser') && rest.startsWith(PROFILE_ASSOCIATION)) {
      return this.profileAssociation(table, row, rest.slice(PROFILE_ASSOCIATION.length), method, req, caller)
    }
    const refMatch = /^([A-Za-z_][A-Za-z0-9_]*)\/\$ref$/.exec(rest)
    if (refMatch && method === 'DELETE') {
      const n = [...Object.keys(table.lookups)].find((c) => c === refMatch[1] || (refMatch[1] as string).startsWith(`${c}_`))
      if (!n) throw new DataverseError('NotFound', 404, `Resource not found for the segment '${refMatch[1]}'.`)
      this.security.requireRow(caller.userId, table, row, 'Write')
      this.store.transaction(() => {
        const p: ParsedPayload = { values: {}, lookups: { [n]: null }, parties: null, id: null }
        applyComputed(this.ctx, table, p, row, caller)
        this.store.update(table.logicalName, row.id, p.values, p.lookups)
      })
      return { status: 204, headers: {} }
    }
    if (method !== 'GET') throw new DataverseError('MethodNotAllowed', 405, `The HTTP method '${method}' is not allowed on '${rest}'.`)
    this.security.requireRow(caller.userId, table, row, 'Read')
    const { match } = this.annotations(req)
    if (table.partyCollection && rest === table.partyCollection) {
      const party = tableByName('activityparty')
      const select = req.query.has('$select') ? parseSelect(party, req.query.get('$select') as string) : null
      const canRead = this.security.readCheck(caller.userId, 'activityparty')
      return json(200, {
        '@odata.context': `${this.ctx.apiBase}/$metadata#activityparties${select ? `(${select.join(',')})` : ''}`,
        value: partiesOf(this.ctx, row.id).map((p) => projectRow(party, p, { select, annotations: match, canRead, displayName: this.displayName })),
      })
    }
    const items = parseExpand(table, rest, tableByName)
    if (items.length === 1 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(rest)) {
      return json(200, { '@odata.context': `${this.ctx.apiBase}/$metadata#${rest}/$entity`, ...(this.expandValue(table, row, items[0] as ExpandItem, caller, match) ?? {}) })
    }
    throw new DataverseError('NotFound', 404, `Resource not found for the segment '${rest}'.`)
  }

  /** AccessRights string for RetrievePrincipalAccess, e.g. "ReadAccess, WriteAccess". */
  private principalAccess(userId: string, target: string | null): string {
    let ref: unknown
    try {
      ref = JSON.parse(target ?? '')
    } catch {
      throw badRequest(`RetrievePrincipalAccess: the Target parameter must be JSON like {"@odata.id":"contacts(<id>)"}, got '${target ?? ''}'.`)
    }
    const odataId = (ref as Record<string, unknown> | null)?.['@odata.id']
    if (typeof odataId !== 'string') throw badRequest('RetrievePrincipalAccess: Target needs an "@odata.id" such as "contacts(<id>)".')
    const p = parsePath(odataId.replace(/^.*\/api\/data\/v9\.2\//, '').replace(/^\//, ''))
    const table = TABLES_BY_SET.get(p.set)
    if (!table || p.key === null) throw badRequest(`RetrievePrincipalAccess: '${odataId}' is not an entity reference.`)
    const row = this.getRow(table, parseKey(table, p.key))
    const rights: string[] = []
    for (const access of ['Read', 'Write', 'Append', 'AppendTo', 'Create', 'Delete', 'Share', 'Assign'] as const) {
      const depth = this.security.depth(userId, tablePrivilege(access, table))
      if (depth && (access === 'Create' || this.security.rowAllowed(userId, table, row, access, depth))) rights.push(`${access}Access`)
    }
    return rights.length ? rights.join(', ') : 'None'
  }

  // ---------- writes ----------

  private entityId(table: TableDef, id: string): string {
    return `${this.ctx.apiBase}/${table.entitySet}(${id})`
  }

  private checkFieldSecurity(table: TableDef, p: ParsedPayload, caller: Caller, mode: 'create' | 'update'): void {
    for (const [col, v] of Object.entries(p.values)) {
      if (!this.security.isSecured(table.logicalName, col)) continue
      const perm = this.security.fieldPermission(caller.userId, table.logicalName, col)
      if (mode === 'create' && v !== null && !perm.canCreate) {
        throw new DataverseError(
          'AttributePrivilegeCreateIsMissing',
          403,
          `The user does not have create permissions to a secured field. The requested operation could not be completed. (AttributePrivilegeCreateIsMissing: user ${caller.userId}, attribute '${col}' of entity '${table.logicalName}')`,
        )
      }
      if (mode === 'update' && !perm.canUpdate) {
        throw new DataverseError(
          'AttributePermissionUpdateIsMissingDuringUpdate',
          403,
          `The user doesn't have AttributePrivilegeUpdate and not granted shared access for a secured attribute during update operation (AttributePermissionUpdateIsMissingDuringUpdate: user ${caller.userId}, attribute '${col}' of entity '${table.logicalName}')`,
        )
      }
    }
  }

  /** Create a row (security, computed columns, keys, parties). Must run inside a transaction. */
  createRow(table: TableDef, p: ParsedPayload, caller: Caller, id: string): Row {
    const depth = this.security.requireTable(caller.userId, table, 'Create')
    const owner = p.lookups.ownerid
    if (owner && owner.id !== caller.userId && depth === 'Basic') {
      const assign = this.security.depth(caller.userId, tablePrivilege('Assign', table))
      if (!assign || assign === 'Basic') throw privilegeDenied(caller.userId, tablePrivilege('Assign', table), table.logicalName)
    }
    this.checkFieldSecurity(table, p, caller, 'create')
    if (this.store.get(table.logicalName, id)) throw new DataverseError('DuplicateRecord', 412, 'A record with matching key values already exists.')
    applyComputed(this.ctx, table, p, null, caller)
    this.checkPlatformRules(table, p, null)
    validateRow(table, p.values)
    checkAlternateKeys(this.ctx, table, id, p.values)
    const row = this.store.insert(table.logicalName, { id, values: p.values, lookups: p.lookups })
    if (p.parties) writeParties(this.ctx, table, row.id, p.parties)
    this.afterWrite(table, row, p, caller)
    if (table.logicalName === 'email' && p.parties) this.fillEmailAddresses(table, row.id)
    return this.store.get(table.logicalName, row.id) as Row
  }

  updateRow(table: TableDef, row: Row, p: ParsedPayload, caller: Caller): Row {
    this.security.requireRow(caller.userId, table, row, 'Write')
    if (p.lookups.ownerid !== undefined && p.lookups.ownerid?.id !== row.lookups.ownerid?.id) {
      this.security.requireRow(caller.userId, table, row, 'Assign')
    }
    if (p.id !== null && p.id !== row.id) throw payloadInvalid(`The ${table.primaryKey} in the body does not match the key in the URL.`)
    this.checkFieldSecurity(table, p, caller, 'update')
    applyComputed(this.ctx, table, p, row, caller)
    this.checkPlatformRules(table, p, row)
    validateRow(table, { ...row.values, ...p.values })
    checkAlternateKeys(this.ctx, table, row.id, { ...row.values, ...p.values })
    const next = this.store.update(table.logicalName, row.id, p.values, p.lookups)
    if (p.parties) {
      writeParties(this.ctx, table, row.id, p.parties)
      if (table.logicalName === 'email') this.fillEmailAddresses(table, row.id)
    }
    this.afterWrite(table, next, p, caller)
    return this.store.get(table.logicalName, row.id) as Row
  }

  private fillEmailAddresses(table: TableDef, id: string): void {
    const row = this.store.get(table.logicalName, id) as Row
    const parties = partiesOf(this.ctx, id)
    const from = parties.find((x) => x.values.participationtypemask === 1)?.values.addressused ?? null
    const to = parties.filter((x) => x.values.participationtypemask === 2).map((x) => x.values.addressused).filter(Boolean).join(';')
    const values: Record<string, string | null> = {}
    if (row.values.sender === undefined || row.values.sender === null) values.sender = typeof from === 'string' ? from : null
    if (row.values.torecipients === undefined || row.values.torecipients === null) values.torecipients = to === '' ? null : to
    if (Object.keys(values).length > 0) this.store.update(table.logicalName, id, values, {})
  }

  /** Mailbox "Test & Enable": run when testemailconfigurationscheduled is set to true. */
  private afterWrite(table: TableDef, row: Row, p: ParsedPayload, caller: Caller): void {
    if (table.logicalName !== 'mailbox' || p.values.testemailconfigurationscheduled !== true || this.ctx.testAndEnable === 'external') return
    const v = row.values
    const approved = v.emailrouteraccessapproval === 1 && (!this.ctx.requireO365Approval || v.isemailaddressapprovedbyo365admin === true)
    const result = (configured: boolean): number => (configured ? (approved ? 1 : 2) : 0)
    const incoming = result(v.incomingemaildeliverymethod === 2)
    const outgoing = result(v.outgoingemaildeliverymethod === 2)
    const act = result(v.actdeliverymethod === 1)
    this.store.update('mailbox', row.id, {
      testemailconfigurationscheduled: false,
      incomingemailstatus: incoming,
      outgoingemailstatus: outgoing,
      actstatus: act,
      enabledforincomingemail: incoming === 1,
      enabledforoutgoingemail: outgoing === 1,
      enabledforact: act === 1,
      orgmarkedasprimaryforexchangesync: act === 1 ? true : (v.orgmarkedasprimaryforexchangesync ?? false),
      isactsyncorgflagset: act === 1 ? true : (v.isactsyncorgflagset ?? false),
    }, {})
    const name = String(v.name ?? v.emailaddress ?? row.id)
    let text: string
    let level: number
    if (!approved) {
      level = 3
      text =
        v.emailrouteraccessapproval !== 1
          ? `Email cannot be received or sent because the email address of the mailbox ${name} is not approved. Approve the email address, and then enable the mailbox.`
          : `Email cannot be received or sent because the email address of the mailbox ${name} requires an approval by a Microsoft 365 administrator.`
    } else {
      level = 1
      text = `The mailbox ${name} has been enabled for server-side synchronization.`
    }
    this.store.insert('tracelog', {
      id: randomUUID(),
      values: { text, level, createdon: isoNow(this.ctx), modifiedon: isoNow(this.ctx), errortypecode: approved ? 0 : 1, tracecode: approved ? 0 : 1 },
      lookups: { regardingobjectid: { table: 'mailbox', id: row.id }, createdby: { table: 'systemuser', id: caller.userId }, modifiedby: null },
    })
  }

  private representation(table: TableDef, row: Row, req: ApiRequest, caller: Caller): Record<string, unknown> {
    const { match } = this.annotations(req)
    const select = req.query.has('$select') ? parseSelect(table, req.query.get('$select') as string) : null
    const expand = req.query.has('$expand') ? parseExpand(table, req.query.get('$expand') as string, tableByName) : []
    return { '@odata.context': this.contextUrl(table, select, '/$entity'), ...this.projector(table, caller, select, match, expand)(row) }
  }

  private create(table: TableDef, req: ApiRequest, caller: Caller): ApiResponse {
    const p = parsePayload(this.ctx, table, parseBody(req), 'create')
    const id = p.id ?? randomUUID()
    const row = this.store.transaction(() => this.createRow(table, p, caller, id))
    return this.writeResponse(table, row, req, caller, true)
  }

  private writeResponse(table: TableDef, row: Row, req: ApiRequest, caller: Caller, created: boolean): ApiResponse {
    const prefer = parsePrefer(req.headers.prefer)
    const headers: Record<string, string> = { 'OData-EntityId': this.entityId(table, row.id), ETag: etagOf(row) }
    if (prefer.get('return') === 'representation') {
      headers['Preference-Applied'] = 'return=representation'
      return json(created ? 201 : 200, this.representation(table, row, req, caller), headers)
    }
    return { status: 204, headers }
  }

  private upsert(table: TableDef, key: KeySpec, req: ApiRequest, caller: Caller): ApiResponse {
    const ifMatch = req.headers['if-match']
    const ifNoneMatch = req.headers['if-none-match']
    const body = parseBody(req)
    const existing = findByKey(this.ctx, table, key)
    if (ifMatch === '*' && !existing) throw notFound(table.logicalName, keyText(key))
    if (ifNoneMatch === '*' && existing) throw new DataverseError('DuplicateRecord', 412, 'A record with matching key values already exists.')
    if (ifMatch && ifMatch !== '*' && existing && ifMatch !== etagOf(existing)) {
      throw new DataverseError('ConcurrencyVersionMismatch', 412, "The version of the existing record doesn't match the RowVersion property provided.")
    }
    if (ifMatch && ifMatch !== '*' && !existing) throw notFound(table.logicalName, keyText(key))
    const p = parsePayload(this.ctx, table, body, existing ? 'update' : 'create')
    if (existing) {
      const row = this.store.transaction(() => this.updateRow(table, existing, p, caller))
      return this.writeResponse(table, row, req, caller, false)
    }
    let id: string
    if (key.kind === 'id') {
      if (p.id !== null && p.id !== key.id) throw payloadInvalid(`The ${table.primaryKey} in the body does not match the key in the URL.`)
      id = key.id
    } else {
      id = p.id ?? randomUUID()
      for (const [col, v] of Object.entries(key.values)) {
        if (p.values[col] !== undefined && p.values[col] !== v) throw payloadInvalid(`The value of '${col}' in the body does not match the alternate key.`)
        p.values[col] = v
      }
    }
    const row = this.store.transaction(() => this.createRow(table, p, caller, id))
    return this.writeResponse(table, row, req, caller, true)
  }

  private remove(table: TableDef, key: KeySpec, req: ApiRequest, caller: Caller): ApiResponse {
    const row = this.getRow(table, key)
    const ifMatch = req.headers['if-match']
    if (ifMatch && ifMatch !== '*' && ifMatch !== etagOf(row)) {
      throw new DataverseError('ConcurrencyVersionMismatch', 412, "The version of the existing record doesn't match the RowVersion property provided.")
    }
    this.security.requireRow(caller.userId, table, row, 'Delete')
    this.store.transaction(() => this.deleteRow(table, row))
    return { status: 204, headers: {} }
  }

  deleteRow(table: TableDef, row: Row): void {
    const now = this.ctx.now()
    if (table.logicalName === 'fieldsecurityprofile') {
      if (row.id === SYSADMIN_FIELD_PROFILE_ID) throw new DataverseError('BadRequest', 400, 'The System Administrator field security profile cannot be deleted.')
      for (const id of this.store.table('fieldpermission').lookupIndex('_fieldsecurityprofileid_value', row.id)) this.store.delete('fieldpermission', id, now)
      for (const id of this.store.table('systemuserprofiles').lookupIndex('fieldsecurityprofileid', row.id)) this.store.delete('systemuserprofiles', id, now)
    }
    if (table.partyCollection || table.logicalName === 'task') {
      for (const p of partiesOf(this.ctx, row.id)) this.store.delete('activityparty', p.id, now)
    }
    this.store.delete(table.logicalName, row.id, now)
  }

  // ---------- actions ----------

  /** The SendEmail action (also used by the admin API). */
  sendEmail(table: TableDef, row: Row, body: unknown, caller: Caller): ApiResponse {
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
    if (typeof b.IssueSend !== 'boolean') throw payloadInvalid('SendEmail: IssueSend (Edm.Boolean) is required.')
    if (b.TrackingToken !== undefined && typeof b.TrackingToken !== 'string') throw payloadInvalid('SendEmail: TrackingToken must be a string.')
    this.security.requireRow(caller.userId, table, row, 'Write')
    if (row.values.statecode !== 0) throw new DataverseError('InvalidStateTransition', 400, 'SendEmail: the email must be open (statecode 0) to be sent.')
    const sender = partiesOf(this.ctx, row.id).find((x) => x.values.participationtypemask === 1)?.lookups.partyid
    if (sender && sender.table === 'systemuser' && sender.id !== caller.userId) {
      if (!this.security.depth(caller.userId, 'prvSendAsUser')) throw privilegeDenied(caller.userId, 'prvSendAsUser', 'email')
    }
    let token = typeof b.TrackingToken === 'string' && b.TrackingToken !== '' ? b.TrackingToken : null
    if (token === null) {
      const n = ((this.ctx.trackingCounters.get(caller.userId) ?? 0) % 999) + 1
      this.ctx.trackingCounters.set(caller.userId, n)
      token = `CRM:0001${String(n).padStart(3, '0')}`
    }
    const subject = String(row.values.subject ?? '')
    const newSubject = subject.includes(token) ? subject : `${subject} ${token}`.trim()
    const updated = this.store.transaction(() => {
      const p: ParsedPayload = {
        values: {
          subject: newSubject,
          trackingtoken: token,
          directioncode: true,
          statecode: 1,
          statuscode: b.IssueSend ? 6 : 3,
          ...(b.IssueSend ? {} : { senton: isoNow(this.ctx) }),
        },
        lookups: {},
        parties: null,
        id: null,
      }
      applyComputed(this.ctx, table, p, row, caller)
      return this.store.update(table.logicalName, row.id, p.values, p.lookups)
    })
    return json(200, {
      '@odata.context': `${this.ctx.apiBase}/$metadata#Microsoft.Dynamics.CRM.SendEmailResponse`,
      Subject: updated.values.subject,
    })
  }

  /**
   * Rules the platform enforces on top of the column definitions: an opportunity is closed (Won/Lost) only
   * through WinOpportunity / LoseOpportunity (CannotUseOpportunitySetStateMessage); a field permission
   * needs a secured column (AttributeNotSecured).
   */
  private checkPlatformRules(table: TableDef, p: ParsedPayload, existing: Row | null): void {
    if (table.logicalName === 'opportunity' && !p.closing && 'statecode' in p.values) {
      const state = p.values.statecode as number
      const closed = OPPORTUNITY_CLOSED[state]
      if (closed !== undefined && existing?.values.statecode !== state) {
        const message = closed === 'won' ? 'won' : 'lose'
        throw new DataverseError(
          'CannotUseOpportunitySetStateMessage',
          400,
          `This message can not be used to set the state of opportunity to ${closed}. In order to set state of opportunity to ${closed}, use the ${message} message instead.`,
        )
      }
    }
    if (table.logicalName === 'fieldpermission') {
      const merged = { ...(existing?.values ?? {}), ...p.values }
      const profile = p.lookups.fieldsecurityprofileid !== undefined ? p.lookups.fieldsecurityprofileid : (existing?.lookups.fieldsecurityprofileid ?? null)
      if (!profile) throw payloadInvalid("fieldpermission: 'fieldsecurityprofileid@odata.bind' is required.")
      const entity = typeof merged.entityname === 'string' ? merged.entityname.toLowerCase() : ''
      const column = typeof merged.attributelogicalname === 'string' ? merged.attributelogicalname.toLowerCase() : ''
      const def = TABLES_BY_NAME.get(entity)
      if (!def) throw payloadInvalid(`fieldpermission.entityname '${String(merged.entityname ?? '')}' is not a table.`)
      if (!Object.hasOwn(def.columns, column)) throw payloadInvalid(`fieldpermission.attributelogicalname '${String(merged.attributelogicalname ?? '')}' is not a column of '${entity}'.`)
      if (!this.security.isSecured(entity, column)) {
        throw new DataverseError('AttributeNotSecured', 400, `One or more fields are not enabled for field level security. Field level security is not enabled until you publish the customizations. ('${entity}.${column}')`)
      }
      p.values.entityname = entity
      p.values.attributelogicalname = column
      for (const c of ['canread', 'cancreate', 'canupdate', 'canreadunmasked']) if (!existing && !(c in p.values)) p.values[c] = 0
    }
  }

  /** WinOpportunity / LoseOpportunity: `{ OpportunityClose: { "opportunityid@odata.bind": "/opportunities(<id>)", subject? }, Status }`. */
  private closeOpportunity(name: 'WinOpportunity' | 'LoseOpportunity', body: unknown, caller: Caller): ApiResponse {
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
    const close = b.OpportunityClose as Record<string, unknown> | undefined
    const bind = close?.['opportunityid@odata.bind']
    if (typeof bind !== 'string') throw payloadInvalid(`${name}: OpportunityClose.opportunityid@odata.bind is required, e.g. "/opportunities(<id>)".`)
    const ref = resolveReference(this.ctx, bind, 'opportunity', 'OpportunityClose.opportunityid@odata.bind')
    const table = tableByName('opportunity')
    const row = this.store.get('opportunity', ref.id) as Row
    const won = name === 'WinOpportunity'
    const allowed = won ? [3] : [4, 5]
    const status = b.Status === undefined ? (allowed[0] as number) : b.Status
    if (typeof status !== 'number' || !allowed.includes(status)) throw payloadInvalid(`${name}: Status must be one of ${allowed.join(', ')}, got ${JSON.stringify(b.Status)}.`)
    if (row.values.statecode !== 0) throw new DataverseError('InvalidStateTransition', 400, `${name}: the opportunity is not open.`)
    this.store.transaction(() => {
      const p: ParsedPayload = { values: { statecode: won ? 1 : 2, statuscode: status, actualclosedate: isoNow(this.ctx) }, lookups: {}, parties: null, id: null, closing: true }
      this.updateRow(table, row, p, caller)
    })
    return { status: 204, headers: {} }
  }

  /**
   * GET `systemusers(<id>)/systemuserroles_association[?$select=…]`: the user's security roles as `role`
   * rows (`roleid`, `name`, `_roletemplateid_value` — the System Administrator role template
   * `627090ff-40a3-4053-8790-584edc5be201`, null for custom roles — and `_businessunitid_value`).
   */
  private userRoles(row: Row, req: ApiRequest, caller: Caller): ApiResponse {
    if (row.id !== caller.userId) this.security.requireTable(caller.userId, tableByName('systemuser'), 'Read')
    for (const k of req.query.keys()) if (k !== '$select') throw queryInvalid(`The query parameter ${k} is not supported on ${ROLE_ASSOCIATION}.`)
    const raw = req.query.get('$select')
    const select = raw === null ? [...ROLE_PROPERTIES] : raw.split(',').map((c) => c.trim())
    for (const c of select) {
      if (!(ROLE_PROPERTIES as readonly string[]).includes(c)) throw queryInvalid(`Could not find a property named '${c}' on type 'Microsoft.Dynamics.CRM.role'.`)
    }
    const value = this.security.rolesOf(row.id).map((r) => {
      const all: Record<string, unknown> = {
        roleid: r.roleid,
        name: r.name,
        _roletemplateid_value: r.name === SYSTEM_ADMINISTRATOR ? SYSTEM_ADMINISTRATOR_ROLE_TEMPLATE_ID : null,
        _businessunitid_value: ROOT_BUSINESS_UNIT_ID,
      }
      return Object.fromEntries(select.map((c) => [c, all[c]]))
    })
    return json(200, { '@odata.context': `${this.ctx.apiBase}/$metadata#roles`, value })
  }

  /** GET/POST/DELETE `<profile|user>(<id>)/systemuserprofiles_association[(<other>)][/$ref]`. */
  private profileAssociation(table: TableDef, row: Row, rest: string, method: string, req: ApiRequest, caller: Caller): ApiResponse {
    const profileTable = tableByName('fieldsecurityprofile')
    const other = table.logicalName === 'systemuser' ? profileTable : tableByName('systemuser')
    const links = this.store.table('systemuserprofiles')
    const pair = (otherId: string): { systemuserid: string; fieldsecurityprofileid: string } =>
      table.logicalName === 'systemuser' ? { systemuserid: row.id, fieldsecurityprofileid: otherId } : { systemuserid: otherId, fieldsecurityprofileid: row.id }
    const find = (otherId: string): string | undefined => {
      const k = pair(otherId)
      return links.lookupIndex('systemuserid', k.systemuserid).find((id) => links.rows.get(id)?.values.fieldsecurityprofileid === k.fieldsecurityprofileid)
    }
    const otherIdsOf = (): string[] => {
      const col = table.logicalName === 'systemuser' ? 'systemuserid' : 'fieldsecurityprofileid'
      const want = table.logicalName === 'systemuser' ? 'fieldsecurityprofileid' : 'systemuserid'
      return links.lookupIndex(col, row.id).flatMap((id) => {
        const v = links.rows.get(id)?.values[want]
        return typeof v === 'string' ? [v] : []
      })
    }
    const refOf = (raw: unknown, where: string): string => {
      if (typeof raw !== 'string') throw payloadInvalid(`${where}: "@odata.id" must reference a ${other.logicalName}, e.g. "${other.entitySet}(<id>)".`)
      const target = resolveReference(this.ctx, raw.replace(/^.*\/api\/data\/v9\.2\//, ''), other.logicalName, where)
      return target.id
    }
    if (rest === '' && method === 'GET') {
      this.security.requireTable(caller.userId, profileTable, 'Read')
      const { match } = this.annotations(req)
      const select = req.query.has('$select') ? parseSelect(other, req.query.get('$select') as string) : null
      const canRead = this.security.readCheck(caller.userId, other.logicalName)
      const value = otherIdsOf().flatMap((id) => {
        const r = this.store.get(other.logicalName, id)
        return r ? [projectRow(other, r, { select, annotations: match, canRead, displayName: this.displayName })] : []
      })
      return json(200, { '@odata.context': `${this.ctx.apiBase}/$metadata#${other.entitySet}`, value })
    }
    // Associate / disassociate: the caller needs write access to field security profiles.
    this.security.requireTable(caller.userId, profileTable, 'Write')
    if (rest === '/$ref' && method === 'POST') {
      const body = objectBody(req, `${PROFILE_ASSOCIATION}/$ref`)
      const otherId = refOf(body['@odata.id'], `${PROFILE_ASSOCIATION}/$ref`)
      if (!find(otherId)) this.store.transaction(() => this.store.insert('systemuserprofiles', { id: randomUUID(), values: pair(otherId), lookups: {} }))
      return { status: 204, headers: {} }
    }
    if (method === 'DELETE') {
      let otherId: string
      const keyed = /^\(([0-9a-fA-F-]{36})\)\/\$ref$/.exec(rest)
      if (keyed) otherId = (keyed[1] as string).toLowerCase()
      else if (rest === '/$ref' && req.query.has('$id')) otherId = refOf(req.query.get('$id'), `${PROFILE_ASSOCIATION}/$ref?$id`)
      else throw badRequest(`Disassociate with DELETE ${PROFILE_ASSOCIATION}(<id>)/$ref or ${PROFILE_ASSOCIATION}/$ref?$id=<${other.entitySet}(<id>)>.`)
      const link = find(otherId)
      if (!link) throw new DataverseError('NotFound', 404, `The ${other.logicalName} ${otherId} is not associated through ${PROFILE_ASSOCIATION}.`)
      this.store.transaction(() => this.store.delete('systemuserprofiles', link, this.ctx.now()))
      return { status: 204, headers: {} }
    }
    throw new DataverseError('MethodNotAllowed', 405, `The HTTP method '${method}' is not allowed on '${PROFILE_ASSOCIATION}${rest}'.`)
  }

  /**
   * Column definitions: `EntityDefinitions(LogicalName='<t>')/Attributes(LogicalName='<c>')` (GET, or PUT
   * with `IsSecured`), `…/Attributes` (GET; `$filter=IsSecured eq true|false`), `…/Attributes(…)/<Property>`.
   */
  private entityDefinitions(path: string, method: string, req: ApiRequest, caller: Caller): ApiResponse {
    let decoded: string
    try {
      decoded = decodeURIComponent(path)
    } catch {
      throw badRequest(`The request path '${path}' is not validly URL-encoded.`)
    }
    const m = /^EntityDefinitions\(LogicalName='([a-z_0-9]+)'\)(?:\/Attributes(?:\(LogicalName='([a-z_0-9]+)'\))?(?:\/([A-Za-z]+))?)?$/.exec(decoded)
    if (!m || !decoded.includes('/Attributes')) throw new DataverseError('NotImplemented', 501, `Only EntityDefinitions(LogicalName='<table>')/Attributes[(LogicalName='<column>')] is implemented, not '${decoded}'.`)
    const table = TABLES_BY_NAME.get(m[1] as string)
    if (!table || table.virtualOf) throw new DataverseError('NotFound', 404, `Could not find an entity with LogicalName = '${m[1]}'.`)
    const attribute = (col: string): Record<string, unknown> => {
      const type = col === table.primaryKey ? 'guid' : (table.columns[col] as string)
      const createOnly = table.createOnly?.includes(col) ?? false
      const readOnly = isReadOnly(table, col)
      const canSecure = this.security.canBeSecured(table, col)
      return {
        MetadataId: guidFromName(`attribute:${table.logicalName}.${col}`),
        LogicalName: col,
        EntityLogicalName: table.logicalName,
        AttributeType: ATTRIBUTE_TYPE[type] ?? 'String',
        IsPrimaryId: col === table.primaryKey,
        IsPrimaryName: col === table.primaryName,
        IsValidForRead: true,
        IsValidForCreate: !readOnly,
        IsValidForUpdate: !readOnly && !createOnly && col !== table.primaryKey,
        IsSecured: this.security.isSecured(table.logicalName, col),
        CanBeSecuredForRead: canSecure,
        CanBeSecuredForCreate: canSecure,
        CanBeSecuredForUpdate: canSecure,
      }
    }
    const column = m[2]
    if (column === undefined) {
      if (method !== 'GET') throw new DataverseError('MethodNotAllowed', 405, `The HTTP method '${method}' is not allowed on Attributes.`)
      let value = [table.primaryKey, ...Object.keys(table.columns).filter((c) => c !== table.primaryKey)].map(attribute)
      const f = req.query.get('$filter')
      if (f !== null) {
        const fm = /^\s*IsSecured\s+eq\s+(true|false)\s*$/.exec(f)
        if (!fm) throw queryInvalid(`Only $filter=IsSecured eq true|false is supported on Attributes, got '${f}'.`)
        value = value.filter((a) => a.IsSecured === (fm[1] === 'true'))
      }
      return json(200, { '@odata.context': `${this.ctx.apiBase}/$metadata#EntityDefinitions('${table.logicalName}')/Attributes`, value: value.map((a) => selectProps(a, req.query.get('$select'))) })
    }
    if (column !== table.primaryKey && !Object.hasOwn(table.columns, column)) throw new DataverseError('NotFound', 404, `Could not find attribute '${column}' on entity '${table.logicalName}'.`)
    if (method === 'PUT' || method === 'PATCH') {
      if (m[3] !== undefined) throw new DataverseError('MethodNotAllowed', 405, `Update the whole column definition, not '${m[3]}'.`)
      if (!this.security.isSysAdmin(caller.userId)) throw privilegeDenied(caller.userId, 'prvWriteAttribute', 'attribute')
      const body = objectBody(req, 'The column definition')
      if (body.LogicalName !== undefined && body.LogicalName !== column) throw payloadInvalid(`The LogicalName '${String(body.LogicalName)}' in the body does not match '${column}'.`)
      if (typeof body.IsSecured !== 'boolean') throw payloadInvalid('The column definition needs IsSecured (Edm.Boolean); the emulator only updates IsSecured.')
      this.store.transaction(() => this.security.setSecured(table.logicalName, column, body.IsSecured as boolean))
      this.store.onChange?.()
      return { status: 204, headers: {} }
    }
    if (method !== 'GET') throw new DataverseError('MethodNotAllowed', 405, `The HTTP method '${method}' is not allowed on a column definition.`)
    const def = attribute(column)
    if (m[3] !== undefined) {
      if (!(m[3] in def)) throw new DataverseError('NotFound', 404, `Resource not found for the segment '${m[3]}'.`)
      return json(200, { '@odata.context': `${this.ctx.apiBase}/$metadata#EntityDefinitions('${table.logicalName}')/Attributes('${column}')/${m[3]}`, value: def[m[3]] })
    }
    return json(200, { '@odata.context': `${this.ctx.apiBase}/$metadata#EntityDefinitions('${table.logicalName}')/Attributes/$entity`, ...selectProps(def, req.query.get('$select')) })
  }

  private sharingAction(name: string, body: unknown, caller: Caller): ApiResponse {
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
    const target = b.Target as Record<string, unknown> | undefined
    if (!target || typeof target !== 'object') throw payloadInvalid(`${name}: Target is required.`)
    const type = String(target['@odata.type'] ?? '').replace(/^#?Microsoft\.Dynamics\.CRM\./, '')
    const table = (() => {
      try {
        return tableByName(type)
      } catch {
        throw payloadInvalid(`${name}: Target @odata.type '${String(target['@odata.type'])}' is not a known entity type.`)
      }
    })()
    if (table.virtualOf) throw payloadInvalid(`${name}: Target must be a concrete table, not '${table.logicalName}'.`)
    const id = target[table.primaryKey]
    if (typeof id !== 'string' || !GUID_RE.test(id)) throw payloadInvalid(`${name}: Target.${table.primaryKey} must be a GUID.`)
    const row = this.getRow(table, { kind: 'id', id: id.toLowerCase() })
    this.security.requireRow(caller.userId, table, row, 'Share')
    const principalOf = (p: unknown, field: string): string => {
      const o = p as Record<string, unknown> | undefined
      const uid = o?.systemuserid
      if (typeof uid !== 'string' || !GUID_RE.test(uid)) throw payloadInvalid(`${name}: ${field}.systemuserid must be a GUID (only systemuser principals are supported).`)
      if (!this.store.get('systemuser', uid)) throw notFound('systemuser', uid)
      return uid.toLowerCase()
    }
    if (name === 'RevokeAccess') {
      this.security.revoke(table.logicalName, row.id, principalOf(b.Revokee, 'Revokee'))
    } else {
      const pa = b.PrincipalAccess as Record<string, unknown> | undefined
      const user = principalOf(pa?.Principal, 'PrincipalAccess.Principal')
      const mask = pa?.AccessMask
      if (typeof mask !== 'string') throw payloadInvalid(`${name}: PrincipalAccess.AccessMask is required, e.g. "ReadAccess, WriteAccess".`)
      const rights: ShareAccess[] = []
      for (const part of mask.split(/[\s,]+/).filter(Boolean)) {
        const m = /^(Read|Write|Delete|Append|AppendTo|Assign|Share)Access$/.exec(part)
        if (!m) throw payloadInvalid(`${name}: '${part}' is not a valid AccessRights value.`)
        rights.push(m[1] as ShareAccess)
      }
      if (name === 'ModifyAccess') this.security.revoke(table.logicalName, row.id, user)
      this.security.grant(table.logicalName, row.id, user, rights)
    }
    this.store.onChange?.()
    return { status: 204, headers: {} }
  }
}

const ATTRIBUTE_TYPE: Record<string, string> = { string: 'String', memo: 'Memo', int: 'Integer', decimal: 'Decimal', bool: 'Boolean', datetime: 'DateTime', guid: 'Uniqueidentifier' }

function selectProps(o: Record<string, unknown>, select: string | null): Record<string, unknown> {
  if (select === null) return o
  const out: Record<string, unknown> = {}
  for (const k of select.split(',').map((x) => x.trim()).filter(Boolean)) {
    if (!(k in o)) throw queryInvalid(`Could not find a property named '${k}' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'.`)
    out[k] = o[k]
  }
  return out
}

export { SPECIAL_PRIVILEGES }
