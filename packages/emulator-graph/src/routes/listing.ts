/** Collection responses: $filter, $top/$skip paging with an absolute nextLink, $select, $expand. */
import { evaluate, objectResolver } from '../odata/filter.js'
import { parseExpand, parseFilterOption, parseIntOption, parseSelect } from '../odata/query.js'
import { extForFilter, renderItem } from '../store/render.js'
import type { Item } from '../store/types.js'
import type { Ctx, GraphResponse } from './context.js'
import { ok } from './context.js'

export function queryString(q: Record<string, string>): string {
  const parts = Object.entries(q).map(([k, v]) => `${k}=${encodeURIComponent(v).replace(/%24/g, '$')}`)
  return parts.length ? `?${parts.join('&')}` : ''
}

function pageSize(ctx: Ctx): { size: number; applied: boolean } {
  const top = parseIntOption(ctx.req.query, '$top', ctx.core.options.delta.maxPageSize)
  if (top !== undefined) return { size: Math.max(1, top), applied: false }
  const pref = ctx.prefer.maxPageSize
  if (pref !== undefined) return { size: Math.min(pref, ctx.core.options.delta.maxPageSize), applied: true }
  return { size: ctx.core.options.delta.defaultPageSize, applied: false }
}

export function contextUrl(ctx: Ctx, suffix: string): string {
  return `${ctx.core.graphBase}/$metadata#${suffix}`
}

/** Lists items with the common OData options. `items` is iterated lazily. */
export function listItems(ctx: Ctx, items: Iterable<Item>, contextSuffix: string): GraphResponse {
  const filter = parseFilterOption(ctx.req.query)
  const select = parseSelect(ctx.req.query)
  const expand = parseExpand(ctx.req.query)
  const skip = parseIntOption(ctx.req.query, '$skip') ?? 0
  const { size, applied } = pageSize(ctx)
  const value: Record<string, unknown>[] = []
  let matched = 0
  let more = false
  const renderOpts = {
    immutable: ctx.immutable,
    select,
    expandExt: expand.ext,
    extFilter: expand.extFilter,
    expandLinked: expand.linkedResources,
    bodyText: ctx.prefer.bodyText,
    timeZone: ctx.prefer.timeZone,
  }
  for (const it of items) {
    if (filter) {
      const full = renderItem(it, { immutable: ctx.immutable })
      full['singleValueExtendedProperties'] = extForFilter(it)
      if (it.kind === 'task') full['linkedResources'] = it.linkedResources
      if (!evaluate(filter, objectResolver(full))) continue
    }
    matched++
    if (matched <= skip) continue
    if (value.length >= size) {
      more = true
      break
    }
    value.push(renderItem(it, renderOpts))
  }
  const body: Record<string, unknown> = { '@odata.context': contextUrl(ctx, contextSuffix) }
  if (more) {
    const q = { ...ctx.req.query }
    for (const k of Object.keys(q)) if (k.toLowerCase() === '$skip') delete q[k]
    q['$skip'] = String(skip + size)
    body['@odata.nextLink'] = `${ctx.core.graphBase}/${ctx.req.path}${queryString(q)}`
  }
  body['value'] = value
  return ok(body, 200, applied ? { 'preference-applied': `odata.maxpagesize=${size}` } : {})
}

/** Pages a plain array (containers, categories). */
export function listPlain(ctx: Ctx, rows: Record<string, unknown>[], contextSuffix: string): GraphResponse {
  const skip = parseIntOption(ctx.req.query, '$skip') ?? 0
  const { size } = pageSize(ctx)
  const page = rows.slice(skip, skip + size)
  const body: Record<string, unknown> = { '@odata.context': contextUrl(ctx, contextSuffix) }
  if (skip + size < rows.length) {
    const q = { ...ctx.req.query, $skip: String(skip + size) }
    body['@odata.nextLink'] = `${ctx.core.graphBase}/${ctx.req.path}${queryString(q)}`
  }
  body['value'] = page
  return ok(body)
}
