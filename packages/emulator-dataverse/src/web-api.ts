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
  validateRow,
  writeParties,
  type KeySpec,
  type ParsedPayload,
} from './records.js'
import { ORGANIZATION_ID, ROOT_BUSINESS_UNIT_ID, TABLES_BY_SET, tableByName, type TableDef } from './schema.js'
import { SPECIAL_PRIVILEGES, tablePrivilege, type ShareAccess } from './security.js'
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

const json = (status: number, body: unknown, headers: Record<string, string> = {}): ApiResponse => ({ status, headers, body })

function parseBody(req: ApiRequest): unknown {
  if (req.body.trim() === '') return {}
  try {
    return JSON.parse(req.body) as unknown
  } catch (err) {
    throw payloadInvalid(`The request body is not valid JSON: ${(err as Error).message}`, err)
  }
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
    if (table.logicalName === 'email' && action === 'SendEmail') {
      if (method !== 'POST') throw new DataverseError('MethodNotAllowed', 405, 'SendEmail is an action; use POST.')
      return this.sendEmail(table, row, parseBody(req), caller)
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
          `AttributePrivilegeCreateIsMissing: the user (Id=${caller.userId}) does not have create permission on the secured attribute '${col}' of entity '${table.logicalName}'.`,
        )
      }
      if (mode === 'update' && !perm.canUpdate) {
        throw new DataverseError(
          'AttributePermissionUpdateIsMissingDuringUpdate',
          403,
          `AttributePermissionUpdateIsMissingDuringUpdate: the user (Id=${caller.userId}) does not have update permission on the secured attribute '${col}' of entity '${table.logicalName}'.`,
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

export { SPECIAL_PRIVILEGES }
