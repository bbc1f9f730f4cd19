/**
 * Quick throughput figures for the Graph emulator (in-process server, fetch client on loopback).
 * Run: npx tsx packages/emulator-graph/bench/bench.ts
 */
import { Agent, request } from 'node:http'
import { startGraphEmulator } from '../src/index.js'

const agent = new Agent({ keepAlive: true, maxSockets: 8 })
/** Keep-alive GET with node:http (lighter on the client side than fetch). */
function httpGet(url: string, headers: Record<string, string>): Promise<void> {
  const u = new URL(url)
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent }, (res) => {
      res.resume()
      res.on('end', () => resolve())
    })
    r.on('error', reject)
    r.end()
  })
}

const A = 'bench@contoso.test'

async function main(): Promise<void> {
  const em = await startGraphEmulator({ mailboxes: [A], throttle: { requestsPerWindow: 10_000_000, concurrentRequests: 1000 } })
  const tok = (await (
    await fetch(em.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&client_id=bench&client_secret=x&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default',
    })
  ).json()) as { access_token: string }
  const headers = { authorization: `Bearer ${tok.access_token}` }
  const [one] = em.control.seed(A, 'message', [{ subject: 'one' }])
  const url = `${em.graphUrl}/users/${A}/messages/${one?.id}`

  for (let i = 0; i < 500; i++) await (await fetch(url, { headers })).arrayBuffer() // warm-up
  const n = 5000
  let t = performance.now()
  for (let i = 0; i < n; i++) await (await fetch(url, { headers })).arrayBuffer()
  const seqRps = n / ((performance.now() - t) / 1000)

  t = performance.now()
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = 0; i < n / 4; i++) await (await fetch(url, { headers })).arrayBuffer()
    }),
  )
  const parRps = n / ((performance.now() - t) / 1000)

  t = performance.now()
  for (let i = 0; i < n; i++) await httpGet(url, headers)
  const httpSeqRps = n / ((performance.now() - t) / 1000)
  t = performance.now()
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = 0; i < n / 4; i++) await httpGet(url, headers)
    }),
  )
  const httpParRps = n / ((performance.now() - t) / 1000)

  const seedStart = performance.now()
  em.control.seed(A, 'message', Array.from({ length: 10_000 }, (_, i) => ({ subject: `msg ${i}`, body: { contentType: 'text', content: `body ${i}` } })), 'archive')
  const seedMs = performance.now() - seedStart

  let next: string | undefined = `${em.graphUrl}/users/${A}/mailFolders/archive/messages/delta`
  let items = 0
  let pages = 0
  t = performance.now()
  while (next) {
    const res = await fetch(next, { headers: { ...headers, prefer: 'odata.maxpagesize=1000' } })
    const body = (await res.json()) as { value: unknown[]; '@odata.nextLink'?: string }
    items += body.value.length
    pages++
    next = body['@odata.nextLink']
  }
  const deltaMs = performance.now() - t

  console.log(
    JSON.stringify(
      {
        fetchGetSequentialRps: Math.round(seqRps),
        fetchGet4ParallelRps: Math.round(parRps),
        httpGetSequentialRps: Math.round(httpSeqRps),
        httpGet4ParallelRps: Math.round(httpParRps),
        seed10kMs: Math.round(seedMs),
        delta10k: { items, pages, ms: Math.round(deltaMs), itemsPerSecond: Math.round(items / (deltaMs / 1000)) },
      },
      null,
      2,
    ),
  )
  await em.close()
}

await main()
