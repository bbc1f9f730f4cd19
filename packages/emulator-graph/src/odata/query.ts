/** Query-string and `Prefer` header helpers shared by the routes. */
import { badRequest } from '../errors.js'
import { normaliseExtId } from '../store/ext-props.js'
import { parseFilter, type FilterNode } from './filter.js'
import { requireTimeZone } from '../timezones.js'

export interface Prefer {
  maxPageSize: number | undefined
  immutableId: boolean
  bodyText: boolean
  trackChanges: boolean
  /** `outlook.timezone="…"`: the name as sent and its IANA zone (unknown names → 400). */
  timeZone: { name: string; iana: string } | undefined
  raw: string[]
}

export function parsePrefer(header: string | string[] | undefined): Prefer {
  const out: Prefer = { maxPageSize: undefined, immutableId: false, bodyText: false, trackChanges: false, timeZone: undefined, raw: [] }
  if (header === undefined) return out
  const parts = (Array.isArray(header) ? header.join(',') : header).split(',')
  for (const p0 of parts) {
    const p = p0.trim()
    if (!p) continue
    out.raw.push(p)
    const lower = p.toLowerCase()
    if (lower.startsWith('odata.maxpagesize=')) {
      const n = Number.parseInt(p.slice('odata.maxpagesize='.length), 10)
      if (Number.isFinite(n) && n > 0) out.maxPageSize = n
    } else if (lower.replace(/\s/g, '') === 'idtype="immutableid"') {
      out.immutableId = true
    } else if (lower.replace(/\s/g, '') === 'outlook.body-content-type="text"') {
      out.bodyText = true
    } else if (lower === 'odata.track-changes') {
      out.trackChanges = true
    } else if (lower.startsWith('outlook.timezone=')) {
      const raw = p.slice('outlook.timezone='.length).trim()
      const name = raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2 ? raw.slice(1, -1) : raw
      out.timeZone = { name, iana: requireTimeZone(name) }
    }
  }
  return out
}

/** Case-insensitive access to `$`-options (`$skipToken` vs `$skiptoken`). */
export function getOption(query: Record<string, string>, name: string): string | undefined {
  const direct = query[name]
  if (direct !== undefined) return direct
  const lower = name.toLowerCase()
  for (const [k, v] of Object.entries(query)) if (k.toLowerCase() === lower) return v
  return undefined
}

export function parseSelect(query: Record<string, string>): string[] | undefined {
  const s = getOption(query, '$select')
  if (s === undefined || s.trim() === '') return undefined
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
}

export function parseIntOption(query: Record<string, string>, name: string, max?: number): number | undefined {
  const v = getOption(query, name)
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v)) throw badRequest(`Invalid value '${v}' for query option '${name}': expected a non-negative integer.`)
  const n = Number(v)
  if (max !== undefined && n > max) throw badRequest(`Invalid value '${v}' for query option '${name}': the maximum is ${max}.`)
  return n
}

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = []
  let depth = 0
  let cur = ''
  for (const ch of s) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      out.push(cur)
      cur = ''
    } else cur += ch
  }
  if (cur.trim()) out.push(cur)
  return out.map((x) => x.trim())
}

export interface Expand {
  /** Normalised ids requested through `singleValueExtendedProperties($filter=...)`, or undefined. */
  extFilter: FilterNode | undefined
  ext: boolean
  linkedResources: boolean
}

export function parseExpand(query: Record<string, string>): Expand {
  const out: Expand = { extFilter: undefined, ext: false, linkedResources: false }
  const e = getOption(query, '$expand')
  if (e === undefined) return out
  for (const part of splitTop(e)) {
    const m = /^([A-Za-z]+)(?:\((.*)\))?$/s.exec(part)
    if (!m) throw badRequest(`Invalid $expand clause '${part}'.`)
    const name = (m[1] ?? '').toLowerCase()
    if (name === 'singlevalueextendedproperties') {
      out.ext = true
      const inner = m[2]
      if (inner !== undefined) {
        const fm = /^\$filter=(.*)$/is.exec(inner.trim())
        if (!fm) throw badRequest(`Invalid $expand clause '${part}': expected ($filter=id eq '...').`)
        out.extFilter = rewriteExtIds(parseFilter(fm[1] ?? ''), undefined)
      }
    } else if (name === 'linkedresources') {
      out.linkedResources = true
    } else if (name === 'attachments' || name === 'extensions' || name === 'multivalueextendedproperties') {
      // accepted; the emulator stores none of these
    } else {
      throw badRequest(`Could not find a property named '${m[1]}' on type 'microsoft.graph.outlookItem'.`)
    }
  }
  return out
}

/**
 * Extended-property ids compare with a case-sensitive name part: rewrite `id eq '…'` comparisons
 * (inside an `Any` over singleValueExtendedProperties, or at the top of an $expand filter) to exact
 * comparisons on the normalised id.
 */
export function rewriteExtIds(node: FilterNode, lambdaVar: string | undefined): FilterNode {
  switch (node.k) {
    case 'and':
    case 'or':
      return { ...node, a: rewriteExtIds(node.a, lambdaVar), b: rewriteExtIds(node.b, lambdaVar) }
    case 'not':
      return { ...node, a: rewriteExtIds(node.a, lambdaVar) }
    case 'lambda': {
      const last = node.path[node.path.length - 1]?.toLowerCase()
      if (last === 'singlevalueextendedproperties') return { ...node, body: rewriteExtIds(node.body, node.v) }
      return node
    }
    case 'cmp': {
      const isId = (p: string[]): boolean =>
        lambdaVar === undefined
          ? p.length === 1 && p[0]?.toLowerCase() === 'id'
          : p.length === 2 && p[0] === lambdaVar && p[1]?.toLowerCase() === 'id'
      if (node.left.k === 'path' && isId(node.left.path) && node.right.k === 'lit' && typeof node.right.v === 'string') {
        return { ...node, op: node.op === 'eq' ? 'eqx' : node.op, right: { k: 'lit', v: normaliseExtId(node.right.v) } }
      }
      return node
    }
    default:
      return node
  }
}

export function parseFilterOption(query: Record<string, string>): FilterNode | undefined {
  const f = getOption(query, '$filter')
  if (f === undefined || f.trim() === '') return undefined
  return rewriteExtIds(parseFilter(f), '\0')
}
