/** What a route handler receives and returns. */
import type { z } from 'zod'
import { GraphHttpError, IRRESOLVABLE_CONFLICT_MESSAGE, badRequest } from '../errors.js'
import type { Core } from '../core.js'
import type { Prefer } from '../odata/query.js'
import type { Params } from '../router.js'
import { READ_ONLY } from '../store/schemas.js'
import type { Mailbox } from '../store/types.js'

export interface GraphRequest {
  method: string
  /** Path under `/v1.0/`, without query string. */
  path: string
  query: Record<string, string>
  /** Lower-case header names. */
  headers: Record<string, string | undefined>
  /** Raw body text (HTTP) or an already-parsed JSON value (batch). */
  body: unknown
  bodyIsRaw: boolean
  inBatch: boolean
}

export interface GraphResponse {
  status: number
  headers: Record<string, string>
  body: unknown
}

export interface Ctx {
  core: Core
  req: GraphRequest
  params: Params
  appId: string
  prefer: Prefer
  immutable: boolean
  mailbox: Mailbox | undefined
}

export type Handler = (ctx: Ctx) => GraphResponse | Promise<GraphResponse>

export function ok(body: unknown, status = 200, headers: Record<string, string> = {}): GraphResponse {
  return { status, headers, body }
}

export function noContent(): GraphResponse {
  return { status: 204, headers: {}, body: undefined }
}

export function mailboxOf(ctx: Ctx): Mailbox {
  if (!ctx.mailbox) throw badRequest('A mailbox (users/{id}) is required for this request.')
  return ctx.mailbox
}

export function parseJsonBody(ctx: Ctx): unknown {
  const { body, bodyIsRaw } = ctx.req
  if (!bodyIsRaw) return body
  const text = typeof body === 'string' ? body : ''
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new GraphHttpError(400, 'BadRequest', `Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format. (${(err as Error).message})`, { cause: err })
  }
}

function describe(v: unknown): string {
  const s = JSON.stringify(v)
  return s === undefined ? 'undefined' : s.length > 80 ? `${s.slice(0, 80)}…` : s
}

/** Validates a request body against a resource schema; read-only and `@odata.*` members are dropped. */
export function readBody<S extends z.ZodType>(ctx: Ctx, schema: S, typeName: string, opts?: { required?: boolean }): z.output<S> {
  const raw = parseJsonBody(ctx)
  if (raw === undefined && opts?.required !== false) {
    throw badRequest(`Empty payload, JSON content expected for type 'microsoft.graph.${typeName}'.`, 'BadRequest')
  }
  const input = raw ?? {}
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new GraphHttpError(400, 'RequestBodyRead', `Invalid request body: expected a JSON object for type 'microsoft.graph.${typeName}', got ${describe(input)}.`)
  }
  const clean: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(input as Record<string, unknown>)) {
    if (k.startsWith('@odata.') || k.includes('@odata.') || READ_ONLY.has(k)) continue
    clean[k] = v
  }
  const r = schema.safeParse(clean)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  if (issue?.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? ''
    throw new GraphHttpError(400, 'RequestBodyRead', `Invalid request body: The property '${key}' does not exist on type 'microsoft.graph.${typeName}'. Make sure to only use property names that are defined by the type.`)
  }
  const path = issue?.path.join('.') ?? ''
  let value: unknown = clean
  for (const p of issue?.path ?? []) value = (value as Record<PropertyKey, unknown> | undefined)?.[p as PropertyKey]
  throw new GraphHttpError(400, 'RequestBodyRead', `Invalid request body: invalid value ${describe(value)} for property '${path}' of type 'microsoft.graph.${typeName}': ${issue?.message ?? 'invalid'}.`)
}

/** Stale If-Match → 412 ErrorIrresolvableConflict. */
export function checkIfMatch(ctx: Ctx, changeKey: string): void {
  const h = ctx.req.headers['if-match']
  if (h === undefined || h.trim() === '*') return
  const tags = h.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/^"|"$/g, ''))
  if (!tags.includes(changeKey)) {
    throw new GraphHttpError(412, 'ErrorIrresolvableConflict', IRRESOLVABLE_CONFLICT_MESSAGE)
  }
}
