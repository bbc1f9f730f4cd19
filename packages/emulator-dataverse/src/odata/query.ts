import { queryInvalid } from '../errors.js'
import { canonicalNavName, navigation, type ColumnType, type TableDef } from '../schema.js'
import type { LookupRef, Primitive, Row } from '../store/store.js'
import { filterProperties, type FilterExpr, type Literal, type Operand } from './filter-parser.js'

export type RowPredicate = (row: Row) => boolean

/** Column type of a property name as used in queries (lookup values are `_x_value`). */
export function propertyType(table: TableDef, prop: string): ColumnType | undefined {
  if (prop === table.primaryKey) return 'guid'
  if (prop.startsWith('_') && prop.endsWith('_value')) {
    return Object.hasOwn(table.lookups, prop.slice(1, -6)) ? 'guid' : undefined
  }
  return Object.hasOwn(table.columns, prop) ? table.columns[prop] : undefined
}

export function readProperty(table: TableDef, row: Row, prop: string): Primitive {
  if (prop === table.primaryKey) return row.id
  if (prop === 'versionnumber') return row.version
  if (prop.charCodeAt(0) === 95 /* _ */ && prop.endsWith('_value')) {
    const ref = row.lookups[prop.slice(1, -6)]
    return ref ? ref.id : null
  }
  const v = row.values[prop]
  return v === undefined ? null : v
}

function unknownProperty(table: TableDef, prop: string): never {
  throw queryInvalid(`Could not find a property named '${prop}' on type 'Microsoft.Dynamics.CRM.${table.logicalName}'.`)
}

function edmName(t: ColumnType | 'literal-string' | Literal['kind']): string {
  switch (t) {
    case 'string':
    case 'memo':
    case 'literal-string':
      return 'Edm.String'
    case 'int':
      return 'Edm.Int32'
    case 'decimal':
    case 'number':
      return 'Edm.Decimal'
    case 'bool':
      return 'Edm.Boolean'
    case 'datetime':
      return 'Edm.DateTimeOffset'
    case 'guid':
      return 'Edm.Guid'
    case 'null':
      return 'null'
  }
}

function literalCompatible(col: ColumnType, lit: Literal): boolean {
  switch (lit.kind) {
    case 'null':
      return true
    case 'string':
      return col === 'string' || col === 'memo' || col === 'guid' || col === 'datetime'
    case 'number':
      return col === 'int' || col === 'decimal'
    case 'bool':
      return col === 'bool'
    case 'guid':
      return col === 'guid' || col === 'string' || col === 'memo'
    case 'datetime':
      return col === 'datetime'
  }
}

type Norm = string | number | boolean | null

function normalizer(type: ColumnType): (v: Primitive) => Norm {
  switch (type) {
    case 'string':
    case 'memo':
    case 'guid':
      return (v) => (v === null ? null : String(v).toLowerCase())
    case 'datetime':
      return (v) => {
        if (v === null) return null
        const n = Date.parse(String(v))
        return Number.isNaN(n) ? null : n
      }
    default:
      return (v) => v
  }
}

function literalValue(lit: Literal): Primitive {
  switch (lit.kind) {
    case 'null':
      return null
    case 'string':
    case 'guid':
    case 'datetime':
      return lit.value
    case 'number':
      return lit.value
    case 'bool':
      return lit.value
  }
}

function compileOperand(table: TableDef, op: Operand, type: ColumnType): (row: Row) => Norm {
  const norm = normalizer(type)
  if (op.kind === 'lit') {
    const v = norm(literalValue(op.lit))
    if (op.lit.kind === 'datetime' && v === null) throw queryInvalid(`The date literal '${literalValue(op.lit)}' is not valid.`)
    return () => v
  }
  const name = op.name
  return (row) => norm(readProperty(table, row, name))
}

/** Compile a $filter expression for a table into a predicate, validating property names and types. */
export function compileFilter(table: TableDef, expr: FilterExpr): RowPredicate {
  for (const p of filterProperties(expr)) if (!propertyType(table, p)) unknownProperty(table, p)
  return compile(table, expr)
}

function compile(table: TableDef, e: FilterExpr): RowPredicate {
  switch (e.kind) {
    case 'and': {
      const l = compile(table, e.left)
      const r = compile(table, e.right)
      return (row) => l(row) && r(row)
    }
    case 'or': {
      const l = compile(table, e.left)
      const r = compile(table, e.right)
      return (row) => l(row) || r(row)
    }
    case 'not': {
      const inner = compile(table, e.expr)
      return (row) => !inner(row)
    }
    case 'call': {
      const type = propertyType(table, e.prop) as ColumnType
      if (type !== 'string' && type !== 'memo') {
        throw queryInvalid(`The '${e.fn}' function requires a string property; '${e.prop}' is ${edmName(type)}.`)
      }
      const needle = e.value.toLowerCase()
      const prop = e.prop
      const test =
        e.fn === 'contains'
          ? (s: string) => s.includes(needle)
          : e.fn === 'startswith'
            ? (s: string) => s.startsWith(needle)
            : (s: string) => s.endsWith(needle)
      return (row) => {
        const v = readProperty(table, row, prop)
        return v !== null && test(String(v).toLowerCase())
      }
    }
    case 'in': {
      const type = propertyType(table, e.prop) as ColumnType
      const norm = normalizer(type)
      const set = new Set<Norm>()
      for (const raw of e.values) {
        let v: Primitive = raw
        if (type === 'int' || type === 'decimal') {
          v = Number(raw)
          if (!Number.isFinite(v)) throw queryInvalid(`The value '${raw}' in PropertyValues is not a number for '${e.prop}'.`)
        } else if (type === 'bool') {
          if (raw !== 'true' && raw !== 'false') throw queryInvalid(`The value '${raw}' in PropertyValues is not a boolean for '${e.prop}'.`)
          v = raw === 'true'
        }
        set.add(norm(v))
      }
      const prop = e.prop
      const negate = e.negate
      return (row) => {
        const v = norm(readProperty(table, row, prop))
        const hit = v !== null && set.has(v)
        return negate ? !hit && v !== null : hit
      }
    }
    case 'compare': {
      const { left, right, op } = e
      let type: ColumnType
      if (left.kind === 'prop' && right.kind === 'prop') {
        type = propertyType(table, left.name) as ColumnType
      } else if (left.kind === 'prop' || right.kind === 'prop') {
        const prop = (left.kind === 'prop' ? left : right) as { kind: 'prop'; name: string }
        const lit = (left.kind === 'lit' ? left : right) as { kind: 'lit'; lit: Literal }
        type = propertyType(table, prop.name) as ColumnType
        if (!literalCompatible(type, lit.lit)) {
          throw queryInvalid(
            `A binary operator with incompatible types was detected. Found operand types '${edmName(type)}' and '${edmName(lit.lit.kind)}' for operator kind '${op}'.`,
          )
        }
      } else {
        throw queryInvalid('A comparison must reference at least one property.')
      }
      const l = compileOperand(table, left, type)
      const r = compileOperand(table, right, type)
      switch (op) {
        case 'eq':
          return (row) => l(row) === r(row)
        case 'ne':
          return (row) => l(row) !== r(row)
        case 'gt':
          return (row) => cmp(l(row), r(row), (a, b) => a > b)
        case 'ge':
          return (row) => cmp(l(row), r(row), (a, b) => a >= b)
        case 'lt':
          return (row) => cmp(l(row), r(row), (a, b) => a < b)
        case 'le':
          return (row) => cmp(l(row), r(row), (a, b) => a <= b)
      }
    }
  }
}

function cmp(a: Norm, b: Norm, f: (a: string | number | boolean, b: string | number | boolean) => boolean): boolean {
  if (a === null || b === null) return false
  return f(a, b)
}

export interface OrderBy {
  prop: string
  desc: boolean
}

export function parseOrderBy(table: TableDef, src: string): OrderBy[] {
  const out: OrderBy[] = []
  for (const part of src.split(',')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s+(asc|desc))?\s*$/i.exec(part)
    if (!m) throw queryInvalid(`Syntax error in $orderby: '${part.trim()}'.`)
    const prop = m[1] as string
    if (!propertyType(table, prop)) unknownProperty(table, prop)
    out.push({ prop, desc: (m[2] ?? 'asc').toLowerCase() === 'desc' })
  }
  return out
}

export function sortRows(table: TableDef, rows: Row[], order: OrderBy[]): Row[] {
  const norms = order.map((o) => normalizer(propertyType(table, o.prop) as ColumnType))
  return rows.sort((a, b) => {
    for (let i = 0; i < order.length; i++) {
      const o = order[i] as OrderBy
      const n = norms[i] as (v: Primitive) => Norm
      const va = n(readProperty(table, a, o.prop))
      const vb = n(readProperty(table, b, o.prop))
      if (va === vb) continue
      // nulls sort first ascending (SQL Server semantics)
      let c: number
      if (va === null) c = -1
      else if (vb === null) c = 1
      else c = va < vb ? -1 : 1
      return o.desc ? -c : c
    }
    return 0
  })
}

export function parseSelect(table: TableDef, src: string): string[] {
  const out: string[] = []
  for (const raw of src.split(',')) {
    const p = raw.trim()
    if (!p) throw queryInvalid(`Syntax error in $select: '${src}'.`)
    if (!propertyType(table, p)) unknownProperty(table, p)
    if (!out.includes(p)) out.push(p)
  }
  return out
}

export interface ExpandItem {
  nav: string
  select: string[] | null
  /** Single-valued lookup navigation, or the activity party collection. */
  kind: 'lookup' | 'parties'
  column?: string
  target?: string
}

function splitTopLevel(src: string): string[] {
  const parts: string[] = []
  let depth = 0
  let cur = ''
  for (const ch of src) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (depth < 0) throw queryInvalid(`Syntax error in $expand: unbalanced parentheses in '${src}'.`)
    if (ch === ',' && depth === 0) {
      parts.push(cur)
      cur = ''
    } else cur += ch
  }
  if (depth !== 0) throw queryInvalid(`Syntax error in $expand: unbalanced parentheses in '${src}'.`)
  parts.push(cur)
  return parts
}

export function parseExpand(table: TableDef, src: string, tableOf: (name: string) => TableDef): ExpandItem[] {
  const out: ExpandItem[] = []
  for (const raw of splitTopLevel(src)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$/s.exec(raw)
    if (!m) throw queryInvalid(`Syntax error in $expand: '${raw.trim()}'.`)
    const nav = m[1] as string
    const opts = m[2]
    let target: TableDef
    let item: ExpandItem
    if (table.partyCollection && nav === table.partyCollection) {
      target = tableOf('activityparty')
      item = { nav, select: null, kind: 'parties' }
    } else {
      const n = navigation(table).get(nav)
      if (!n) throw queryInvalid(`Could not find a property named '${nav}' on type 'Microsoft.Dynamics.CRM.${table.logicalName}'.`)
      target = tableOf(n.target)
      item = { nav, select: null, kind: 'lookup', column: n.column, target: n.target }
    }
    if (opts !== undefined && opts.trim() !== '') {
      for (const opt of opts.split(';')) {
        const eq = opt.indexOf('=')
        const key = opt.slice(0, eq).trim().toLowerCase()
        const value = opt.slice(eq + 1)
        if (eq < 0 || key !== '$select') {
          throw queryInvalid(`Only $select is supported inside $expand (single-level expansion); got '${opt.trim()}'.`)
        }
        item.select = parseSelect(target, value)
      }
    }
    out.push(item)
  }
  return out
}

export interface ProjectOptions {
  select: string[] | null
  annotations: (name: string) => boolean
  /** False when column security hides the column from the caller. */
  canRead: (column: string) => boolean
  displayName: (ref: LookupRef) => string | null
}

const FORMATTED = 'OData.Community.Display.V1.FormattedValue'
const LOOKUP_NAME = 'Microsoft.Dynamics.CRM.lookuplogicalname'
const ASSOC_NAV = 'Microsoft.Dynamics.CRM.associatednavigationproperty'

export function etagOf(row: Row): string {
  return `W/"${row.version}"`
}

/** Project a row to its Web API JSON shape. */
export function projectRow(table: TableDef, row: Row, opts: ProjectOptions): Record<string, unknown> {
  const out: Record<string, unknown> = { '@odata.etag': etagOf(row) }
  const props = opts.select ?? defaultProps(table)
  for (const p of props) {
    if (p.startsWith('_') && p.endsWith('_value') && p !== table.primaryKey) {
      const col = p.slice(1, -6)
      const ref = row.lookups[col] ?? null
      if (ref) {
        if (opts.annotations(FORMATTED)) out[`${p}@${FORMATTED}`] = opts.displayName(ref)
        if (opts.annotations(ASSOC_NAV)) out[`${p}@${ASSOC_NAV}`] = canonicalNavName(table, col, ref.table)
        if (opts.annotations(LOOKUP_NAME)) out[`${p}@${LOOKUP_NAME}`] = ref.table
      }
      out[p] = ref ? ref.id : null
      continue
    }
    const v = readProperty(table, row, p)
    out[p] = opts.canRead(p) ? v : null
  }
  if (!(table.primaryKey in out)) out[table.primaryKey] = row.id
  return out
}

const defaultPropsCache = new Map<string, string[]>()
export function defaultProps(table: TableDef): string[] {
  let p = defaultPropsCache.get(table.logicalName)
  if (!p) {
    p = [...Object.keys(table.columns), ...Object.keys(table.lookups).map((c) => `_${c}_value`)]
    if (!p.includes(table.primaryKey)) p.unshift(table.primaryKey)
    defaultPropsCache.set(table.logicalName, p)
  }
  return p
}

/** Parse a Prefer header into a map of lower-cased preference → value ('' when valueless). */
export function parsePrefer(headers: string | string[] | undefined): Map<string, string> {
  const out = new Map<string, string>()
  const list = Array.isArray(headers) ? headers : headers ? [headers] : []
  for (const h of list) {
    for (const part of splitOutsideQuotes(h)) {
      const eq = part.indexOf('=')
      const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase()
      if (!key) continue
      const value = eq < 0 ? '' : part.slice(eq + 1).trim().replace(/^"|"$/g, '')
      out.set(key, value)
    }
  }
  return out
}

/** Build an annotation matcher from odata.include-annotations ("*", lists, "Prefix.*", "-x"). */
export function annotationMatcher(pref: string | undefined): (name: string) => boolean {
  if (pref === undefined || pref === '') return () => false
  const items = pref.split(/[\s,]+/).filter(Boolean)
  return (name) => {
    let ok = false
    for (const it of items) {
      const neg = it.startsWith('-')
      const pat = neg ? it.slice(1) : it
      const match = pat === '*' || pat === name || (pat.endsWith('.*') && name.startsWith(pat.slice(0, -1)))
      if (match) ok = !neg
    }
    return ok
  }
}

function splitOutsideQuotes(s: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (const ch of s) {
    if (ch === '"') quoted = !quoted
    if (ch === ',' && !quoted) {
      out.push(cur)
      cur = ''
    } else cur += ch
  }
  out.push(cur)
  return out
}
