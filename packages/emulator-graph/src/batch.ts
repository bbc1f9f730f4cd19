/**
 * JSON batching: at most 20 requests, unique ids (case-insensitive), `dependsOn` sequencing with 424 for
 * dependants of a failed request, at most 4 sub-requests in flight. Each sub-request goes through the
 * full pipeline, so it is authenticated and throttled on its own.
 */
import { z } from 'zod'
import { GraphHttpError, badRequest } from './errors.js'
import type { Pipeline } from './pipeline.js'
import type { GraphRequest, GraphResponse } from './routes/context.js'

export const MAX_BATCH_REQUESTS = 20
const PARALLEL = 4

const batchSchema = z.strictObject({
  requests: z
    .array(
      z.looseObject({
        id: z.string().min(1),
        method: z.enum(['GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'get', 'post', 'patch', 'put', 'delete']),
        url: z.string().min(1),
        headers: z.record(z.string(), z.string()).optional(),
        body: z.unknown().optional(),
        dependsOn: z.array(z.string()).optional(),
      }),
    )
    .min(1, 'a batch needs at least one request'),
})

type SubRequest = z.infer<typeof batchSchema>['requests'][number]

interface BatchResponseItem {
  id: string
  status: number
  headers: Record<string, string>
  body?: unknown
}

function parse(req: GraphRequest): SubRequest[] {
  let raw: unknown = req.body
  if (req.bodyIsRaw) {
    try {
      raw = JSON.parse(typeof req.body === 'string' ? req.body : '')
    } catch (err) {
      throw new GraphHttpError(400, 'BadRequest', `Unable to read JSON request payload: ${(err as Error).message}`, { cause: err })
    }
  }
  const r = batchSchema.safeParse(raw)
  if (!r.success) {
    const issue = r.error.issues[0]
    throw badRequest(`Invalid batch payload: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}.`, 'BadRequest')
  }
  const requests = r.data.requests
  if (requests.length > MAX_BATCH_REQUESTS) {
    throw badRequest(`Invalid batch payload: the number of requests (${requests.length}) exceeds the maximum of ${MAX_BATCH_REQUESTS}.`)
  }
  const ids = new Set<string>()
  for (const s of requests) {
    const k = s.id.toLowerCase()
    if (ids.has(k)) throw badRequest(`Invalid batch payload: duplicate request id '${s.id}'; request ids must be unique.`)
    ids.add(k)
  }
  for (const s of requests) {
    if (s.body !== undefined) {
      const ct = Object.entries(s.headers ?? {}).find(([h]) => h.toLowerCase() === 'content-type')
      if (!ct) throw badRequest(`Invalid batch payload: request '${s.id}' has a body but no Content-Type header.`)
    }
    for (const d of s.dependsOn ?? []) {
      if (!ids.has(d.toLowerCase())) throw badRequest(`Invalid batch payload: request '${s.id}' depends on unknown request '${d}'.`)
      if (d.toLowerCase() === s.id.toLowerCase()) throw badRequest(`Invalid batch payload: request '${s.id}' depends on itself.`)
    }
  }
  // cycle check
  const byId = new Map(requests.map((s) => [s.id.toLowerCase(), s]))
  const state = new Map<string, 1 | 2>()
  const visit = (id: string): void => {
    const st = state.get(id)
    if (st === 2) return
    if (st === 1) throw badRequest(`Invalid batch payload: dependsOn forms a cycle at '${id}'.`)
    state.set(id, 1)
    for (const d of byId.get(id)?.dependsOn ?? []) visit(d.toLowerCase())
    state.set(id, 2)
  }
  for (const id of byId.keys()) visit(id)
  return requests
}

function toGraphRequest(outer: GraphRequest, s: SubRequest): GraphRequest {
  let url = s.url.trim()
  url = url.replace(/^https?:\/\/[^/]+/i, '')
  url = url.replace(/^\/+/, '').replace(/^v1\.0\//i, '')
  const qi = url.indexOf('?')
  const path = qi < 0 ? url : url.slice(0, qi)
  const query: Record<string, string> = {}
  if (qi >= 0) for (const [k, v] of new URLSearchParams(url.slice(qi + 1))) query[k] = v
  const headers: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(s.headers ?? {})) headers[k.toLowerCase()] = v
  headers['authorization'] = outer.headers['authorization']
  return { method: s.method.toUpperCase(), path, query, headers, body: s.body, bodyIsRaw: false, inBatch: true }
}

export async function runBatch(pipeline: Pipeline, req: GraphRequest): Promise<GraphResponse> {
  const requests = parse(req)
  const results = new Map<string, BatchResponseItem>()
  const pending = new Set(requests)
  await new Promise<void>((resolve) => {
    let running = 0
    const pump = (): void => {
      for (const s of [...pending]) {
        if (running >= PARALLEL) break
        const deps = (s.dependsOn ?? []).map((d) => d.toLowerCase())
        if (!deps.every((d) => results.has(d))) continue
        pending.delete(s)
        const failed = deps.find((d) => (results.get(d)?.status ?? 0) >= 400)
        if (failed !== undefined) {
          results.set(s.id.toLowerCase(), {
            id: s.id,
            status: 424,
            headers: { 'content-type': 'application/json' },
            body: { error: { code: 'FailedDependency', message: `The request depends on request '${failed}', which failed.` } },
          })
          continue
        }
        running++
        void pipeline.handle(toGraphRequest(req, s)).then((r) => {
          const headers: Record<string, string> = { ...r.headers }
          if (r.body !== undefined) headers['content-type'] = headers['content-type'] ?? 'application/json'
          const item: BatchResponseItem = { id: s.id, status: r.status, headers }
          if (r.body !== undefined) item.body = r.body
          results.set(s.id.toLowerCase(), item)
          running--
          pump()
        })
      }
      if (pending.size === 0 && running === 0) resolve()
      else if (running === 0 && pending.size > 0) pump()
    }
    pump()
  })
  const responses = requests.map((s) => results.get(s.id.toLowerCase()) as BatchResponseItem)
  return { status: 200, headers: {}, body: { responses } }
}
