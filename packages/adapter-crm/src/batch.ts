import { randomUUID } from 'node:crypto'
import { SyncError } from '@concord/engine'

/** One write inside an OData `$batch`; each goes into its own change set (atomic alone). */
export interface BatchRequest {
  method: 'POST' | 'PATCH' | 'DELETE' | 'GET'
  /** Absolute URL or a path under the Web API base. */
  url: string
  headers?: Record<string, string> | undefined
  body?: string | undefined
}

export interface BatchResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * Builds a `multipart/mixed` `$batch` body: every write in its own change set (so one 412 rolls
 * back only its own operation), GETs as plain parts. Returns the content type and the body.
 */
export function buildBatch(requests: readonly BatchRequest[], apiBase: string): { contentType: string; body: string } {
  const boundary = `batch_${randomUUID()}`
  const lines: string[] = []
  requests.forEach((req, i) => {
    const url = req.url.startsWith('http') ? req.url : `${apiBase}/${req.url.replace(/^\/+/, '')}`
    const http = [`${req.method} ${url} HTTP/1.1`]
    const headers: Record<string, string> = { Accept: 'application/json', ...req.headers }
    if (req.body !== undefined) headers['Content-Type'] ??= 'application/json; type=entry'
    for (const [k, v] of Object.entries(headers)) http.push(`${k}: ${v}`)
    http.push('', req.body ?? '')
    if (req.method === 'GET') {
      lines.push(`--${boundary}`, 'Content-Type: application/http', 'Content-Transfer-Encoding: binary', '', ...http)
    } else {
      const cs = `changeset_${randomUUID()}`
      lines.push(`--${boundary}`, `Content-Type: multipart/mixed; boundary=${cs}`, '')
      lines.push(`--${cs}`, 'Content-Type: application/http', 'Content-Transfer-Encoding: binary', `Content-ID: ${i + 1}`, '', ...http)
      lines.push(`--${cs}--`)
    }
  })
  lines.push(`--${boundary}--`, '')
  return { contentType: `multipart/mixed; boundary=${boundary}`, body: lines.join('\r\n') }
}

function boundaryOf(contentType: string): string {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType)
  const b = m?.[1] ?? m?.[2]
  if (!b) throw new SyncError('InvalidRemoteData', `$batch response without a multipart boundary (Content-Type '${contentType}')`)
  return b
}

function splitHead(block: string): { headers: Record<string, string>; rest: string } {
  const text = block.replace(/^(\r?\n)+/, '')
  const m = /\r?\n\r?\n/.exec(text)
  const head = m ? text.slice(0, m.index) : text
  const rest = m ? text.slice(m.index + m[0].length) : ''
  const headers: Record<string, string> = {}
  for (const line of head.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
  }
  return { headers, rest }
}

function parts(body: string, boundary: string): string[] {
  const out: string[] = []
  const segments = body.split(`--${boundary}`)
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] as string
    if (seg.startsWith('--')) break
    out.push(seg)
  }
  return out
}

function parseHttpPart(rest: string): BatchResponse {
  const text = rest.replace(/^(\r?\n)+/, '')
  const nl = /\r?\n/.exec(text)
  const statusLine = nl ? text.slice(0, nl.index) : text
  const m = /^HTTP\/1\.[01]\s+(\d{3})/.exec(statusLine)
  if (!m) throw new SyncError('InvalidRemoteData', `Malformed $batch response status line '${statusLine.slice(0, 100)}'`)
  const { headers, rest: body } = splitHead(nl ? text.slice(nl.index + nl[0].length) : '')
  return { status: Number(m[1]), headers, body: body.replace(/\r?\n$/, '') }
}

/**
 * Parses a `$batch` response into one response per top-level part, in order: a change set that
 * succeeded yields its (single) inner response; a failed change set yields its error response.
 */
export function parseBatchResponse(contentType: string, body: string): BatchResponse[] {
  const out: BatchResponse[] = []
  for (const part of parts(body, boundaryOf(contentType))) {
    const { headers, rest } = splitHead(part)
    const ct = headers['content-type'] ?? ''
    if (ct.toLowerCase().startsWith('multipart/mixed')) {
      const inner = parts(rest, boundaryOf(ct)).map((p) => parseHttpPart(splitHead(p).rest))
      const first = inner[0]
      if (!first) throw new SyncError('InvalidRemoteData', 'Empty change set in a $batch response')
      out.push(first)
    } else {
      out.push(parseHttpPart(rest))
    }
  }
  return out
}
