/**
 * An HTTP proxy in front of an emulator that records, in arrival order, each request's method, path,
 * fencing token header, change-tracking preference and status — "what the far side observes" for
 * cluster tests. Links in JSON bodies are rewritten to the proxy, so followed links are observed too.
 */
import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ObservedRequest {
  seq: number
  method: string
  path: string
  /** `X-Concord-Fence` value (`shard-3:17`), if any. */
  fence: string | undefined
  prefer: string | undefined
  /** The emulator's answer (0 until it comes). */
  status: number
}

export interface RecordingProxy {
  url: string
  log: ObservedRequest[]
  /** Rewrites an emulator URL to go through the proxy. */
  via(url: string): string
  close(): Promise<void>
}

export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const t = new URL(target)
  const log: ObservedRequest[] = []
  let seq = 0
  let url = ''
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const header = (name: string) => {
      const v = req.headers[name]
      return Array.isArray(v) ? v[0] : v
    }
    const entry: ObservedRequest = { seq: seq++, method: req.method ?? 'GET', path: req.url ?? '/', fence: header('x-concord-fence'), prefer: header('prefer'), status: 0 }
    log.push(entry)
    const upstream = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } }, (up) => {
      entry.status = up.statusCode ?? 502
      if (!String(up.headers['content-type'] ?? '').includes('json')) {
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
        return
      }
      // Links in bodies (@odata.nextLink, @odata.deltaLink) name the emulator: point them at the proxy,
      // so that following them is observed too.
      const chunks: Buffer[] = []
      up.on('data', (c: Buffer) => chunks.push(c))
      up.on('end', () => {
        const body = Buffer.from(Buffer.concat(chunks).toString('utf8').split(t.origin).join(url))
        const { 'transfer-encoding': _chunked, ...headers } = up.headers
        res.writeHead(up.statusCode ?? 502, { ...headers, 'content-length': String(body.length) })
        res.end(body)
      })
    })
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
    req.pipe(upstream)
  })
  server.keepAliveTimeout = 1_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    log,
    via: (u) => u.replace(t.origin, url),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/**
 * Fencing violations: a request carrying a shard token lower than one the far side already saw for that
 * shard means two owners acted on the shard at once.
 */
export function fenceViolations(log: readonly ObservedRequest[]): string[] {
  const highest = new Map<string, number>()
  const out: string[] = []
  for (const r of log) {
    if (!r.fence) continue
    const [shard, token] = r.fence.split(':')
    const t = Number(token)
    const seen = highest.get(shard!) ?? 0
    if (t < seen) out.push(`#${r.seq} ${r.method} ${r.path} with ${r.fence} after token ${seen}`)
    else highest.set(shard!, t)
  }
  return out
}
