import { randomUUID } from 'node:crypto'
import { DataverseError, payloadInvalid, toDataverseError } from './errors.js'
import type { Store } from './store/store.js'
import type { ApiRequest, ApiResponse } from './web-api.js'

export const MAX_BATCH_OPERATIONS = 1000

interface Part {
  headers: Record<string, string>
  body: string
}

interface InnerRequest {
  contentId: string | null
  method: string
  url: string
  headers: Record<string, string>
  body: string
}

type Item = { kind: 'request'; req: InnerRequest } | { kind: 'changeset'; reqs: InnerRequest[] }

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  304: 'Not Modified',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  410: 'Gone',
  412: 'Precondition Failed',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

export function boundaryOf(contentType: string | undefined): string {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '')
  const b = m?.[1] ?? m?.[2]
  if (!contentType?.toLowerCase().startsWith('multipart/mixed') || !b) {
    throw payloadInvalid(`A $batch request needs Content-Type: multipart/mixed; boundary=...; got '${contentType ?? ''}'.`)
  }
  return b
}

function splitHeaders(block: string): { headers: Record<string, string>; rest: string } {
  const norm = block.replace(/^(\r?\n)+/, '')
  const m = /\r?\n\r?\n/.exec(norm)
  const head = m ? norm.slice(0, m.index) : norm
  const rest = m ? norm.slice(m.index + m[0].length) : ''
  const headers: Record<string, string> = {}
  for (const line of head.split(/\r?\n/)) {
    if (!line.trim()) continue
    const i = line.indexOf(':')
    if (i <= 0) throw payloadInvalid(`Malformed header line in $batch part: '${line.slice(0, 100)}'.`)
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
  }
  return { headers, rest }
}

function splitParts(body: string, boundary: string): Part[] {
  const delim = `--${boundary}`
  const segments = body.split(delim)
  if (segments.length < 2) throw payloadInvalid(`The $batch body does not contain the boundary '${boundary}'.`)
  const parts: Part[] = []
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] as string
    if (seg.startsWith('--')) break
    const { headers, rest } = splitHeaders(seg)
    parts.push({ headers, body: rest.replace(/\r?\n$/, '') })
  }
  return parts
}

function parseHttp(part: Part): InnerRequest {
  const ct = (part.headers['content-type'] ?? '').toLowerCase()
  if (!ct.startsWith('application/http')) throw payloadInvalid(`A $batch part must have Content-Type application/http; got '${ct}'.`)
  const text = part.body.replace(/^(\r?\n)+/, '')
  const nl = /\r?\n/.exec(text)
  const first = nl ? text.slice(0, nl.index) : text
  const m = /^(GET|POST|PATCH|PUT|DELETE)\s+(.+?)(?:\s+HTTP\/1\.[01])?$/i.exec(first.trim())
  if (!m) throw payloadInvalid(`Malformed request line in $batch part: '${first.slice(0, 200)}'.`)
  const { headers, rest } = splitHeaders(nl ? text.slice(nl.index + nl[0].length) : '')
  return { contentId: part.headers['content-id'] ?? null, method: (m[1] as string).toUpperCase(), url: m[2] as string, headers, body: rest.replace(/\r?\n$/, '') }
}

export function parseBatch(contentType: string | undefined, body: string): Item[] {
  const boundary = boundaryOf(contentType)
  const items: Item[] = []
  let count = 0
  for (const part of splitParts(body, boundary)) {
    const ct = part.headers['content-type'] ?? ''
    if (ct.toLowerCase().startsWith('multipart/mixed')) {
      const reqs = splitParts(part.body, boundaryOf(ct)).map(parseHttp)
      for (const r of reqs) if (r.method === 'GET') throw payloadInvalid('A change set cannot contain GET requests.')
      count += reqs.length
      items.push({ kind: 'changeset', reqs })
    } else {
      count++
      items.push({ kind: 'request', req: parseHttp(part) })
    }
    if (count > MAX_BATCH_OPERATIONS) {
      throw new DataverseError('BatchTooLarge', 400, `Number of requests in the batch exceeded the limit of ${MAX_BATCH_OPERATIONS}.`)
    }
  }
  return items
}

function toApiRequest(r: InnerRequest, refs: Map<string, string>): ApiRequest {
  let url = r.url
  let body = r.body
  const ref = /^\$(\w+)(.*)$/.exec(url)
  if (ref) {
    const target = refs.get(ref[1] as string)
    if (!target) throw payloadInvalid(`The $batch reference '$${ref[1]}' does not name an earlier request in the change set.`)
    url = target + (ref[2] ?? '')
  }
  if (refs.size > 0 && body.includes('"$')) {
    body = body.replace(/"\$(\w+)"/g, (whole, id: string) => {
      const target = refs.get(id)
      return target === undefined ? whole : JSON.stringify(target)
    })
  }
  let u: URL
  try {
    u = new URL(url, 'http://batch.invalid/api/data/v9.2/')
  } catch {
    throw payloadInvalid(`The $batch request URL '${url}' is not valid.`)
  }
  const idx = u.pathname.indexOf('/api/data/v9.2/')
  const path = idx >= 0 ? u.pathname.slice(idx + '/api/data/v9.2/'.length) : u.pathname.replace(/^\//, '')
  return { method: r.method, path, query: u.searchParams, headers: r.headers, body }
}

function renderResponse(res: ApiResponse, contentId: string | null): string {
  const lines = ['Content-Type: application/http', 'Content-Transfer-Encoding: binary']
  if (contentId) lines.push(`Content-ID: ${contentId}`)
  lines.push('', `HTTP/1.1 ${res.status} ${STATUS_TEXT[res.status] ?? ''}`.trimEnd())
  lines.push('OData-Version: 4.0')
  const headers = { ...res.headers }
  if (headers['OData-EntityId'] && !headers.Location) headers.Location = headers['OData-EntityId']
  let body = ''
  if (res.body !== undefined) {
    headers['Content-Type'] = 'application/json; odata.metadata=minimal'
    body = JSON.stringify(res.body)
  } else if (res.text !== undefined) {
    body = res.text
  }
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`)
  lines.push('', body)
  return lines.join('\r\n')
}

class ChangeSetFailed extends Error {
  constructor(
    readonly response: ApiResponse,
    readonly contentId: string | null,
  ) {
    super('change set failed')
  }
}

export function errorResponse(err: unknown): ApiResponse {
  const e = toDataverseError(err)
  return { status: e.status, headers: { ...e.headers }, body: e.toBody() }
}

/**
 * Execute a parsed batch. Change sets run inside one store transaction: the first failure rolls
 * back the whole change set and only that failure is reported for it.
 */
export function runBatch(items: Item[], exec: (r: ApiRequest) => ApiResponse, store: Store, continueOnError: boolean): { boundary: string; body: string } {
  const boundary = `batchresponse_${randomUUID()}`
  const chunks: string[] = []
  const safe = (r: ApiRequest): ApiResponse => {
    try {
      return exec(r)
    } catch (err) {
      return errorResponse(err)
    }
  }
  for (const item of items) {
    let failed = false
    if (item.kind === 'request') {
      let res: ApiResponse
      try {
        res = safe(toApiRequest(item.req, new Map()))
      } catch (err) {
        res = errorResponse(err)
      }
      chunks.push(renderResponse(res, item.req.contentId))
      failed = res.status >= 400
    } else {
      const csBoundary = `changesetresponse_${randomUUID()}`
      try {
        const rendered = store.transaction(() => {
          const refs = new Map<string, string>()
          const out: string[] = []
          for (const r of item.reqs) {
            let res: ApiResponse
            try {
              res = safe(toApiRequest(r, refs))
            } catch (err) {
              res = errorResponse(err)
            }
            if (res.status >= 400) throw new ChangeSetFailed(res, r.contentId)
            if (r.contentId && res.headers['OData-EntityId']) refs.set(r.contentId, res.headers['OData-EntityId'])
            out.push(renderResponse(res, r.contentId))
          }
          return out
        })
        const inner = rendered.map((p) => `--${csBoundary}\r\n${p}\r\n`).join('') + `--${csBoundary}--`
        chunks.push(`Content-Type: multipart/mixed; boundary=${csBoundary}\r\n\r\n${inner}`)
      } catch (err) {
        if (!(err instanceof ChangeSetFailed)) throw err
        chunks.push(renderResponse(err.response, err.contentId))
        failed = true
      }
    }
    if (failed && !continueOnError) break
  }
  const body = chunks.map((c) => `--${boundary}\r\n${c}\r\n`).join('') + `--${boundary}--\r\n`
  return { boundary, body }
}
