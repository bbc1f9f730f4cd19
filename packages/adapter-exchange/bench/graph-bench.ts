/**
 * Throughput of the Exchange adapter against the Graph emulator over HTTPS.
 * - graphPullItemsPerSec: a full listing (pull(null) to the end of the round) of 10,000 messages seeded
 *   through the emulator's HTTP control API, default options (`stampLookup: 'expand'`), 500 per page.
 * - graphPullItemsPerSecStampGet: the same with `stampLookup: 'get'` (a batched GET per 20 items to read
 *   the Concord stamp, for tenants or proxies that drop $expand on delta).
 * - graphEmulatorReqPerSec: simple authenticated GETs per second (4 concurrent, Outlook's per-mailbox cap).
 * Run: npx tsx packages/adapter-exchange/bench/graph-bench.ts
 */
import { pathToFileURL } from 'node:url'
import { startGraphEmulator } from '@concord/emulator-graph'
import type { Cursor } from '@concord/engine'
import { ExchangeAdapter, createTrustedFetch } from '../src/index.js'

const UPN = 'bench@contoso.test'
const MESSAGES = 10_000

export async function runGraphBench(): Promise<Record<string, number>> {
  const em = await startGraphEmulator({ mailboxes: [UPN], https: true, throttle: { requestsPerWindow: 10_000_000, concurrentRequests: 1000 } })
  const transport = createTrustedFetch({ ca: em.certificate! })
  const trusted = transport.fetch
  try {
    for (let i = 0; i < MESSAGES; i += 1000) {
      const items = Array.from({ length: 1000 }, (_, k) => ({
        subject: `Bench message ${i + k}`,
        body: { contentType: 'text', content: `Body of message ${i + k} with some text to map.` },
        from: { emailAddress: { name: 'Sender', address: `sender${k % 50}@fabrikam.test` } },
        toRecipients: [{ emailAddress: { address: UPN } }],
        categories: k % 3 === 0 ? ['Tracked to Dynamics 365'] : [],
      }))
      const res = await trusted(`${em.url}/_emulator/mailboxes/${encodeURIComponent(UPN)}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ items, container: 'inbox' }),
      })
      if (res.status !== 200) throw new Error(`seeding failed: ${res.status} ${await res.text()}`)
    }
    const pullRate = async (stampLookup: 'expand' | 'get'): Promise<number> => {
      const adapter = new ExchangeAdapter(
        { replicaId: 'bench', mailbox: UPN, tenantId: em.tenant, clientId: 'bench', clientSecret: 'x', tokenUrl: em.tokenUrl, graphBaseUrl: em.url, kinds: ['email'], mailFolders: ['inbox'], stampLookup },
        { fetch: trusted },
      )
      const started = performance.now()
      let cursor: Cursor | null = null
      let items = 0
      for (let i = 0; i < 10_000; i++) {
        const page = await adapter.pull(cursor, { limit: 500 })
        items += page.changes.length
        cursor = page.nextCursor
        if (!page.hasMore) break
      }
      const secs = (performance.now() - started) / 1000
      if (items !== MESSAGES) throw new Error(`pulled ${items} of ${MESSAGES} messages`)
      return Math.round(items / secs)
    }
    const graphPullItemsPerSec = await pullRate('expand')
    const graphPullItemsPerSecStampGet = await pullRate("get")

    const tokenRes = await trusted(em.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&client_id=bench&client_secret=x&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default',
    })
    const token = ((await tokenRes.json()) as { access_token: string }).access_token
    const url = `${em.graphUrl}/users/${encodeURIComponent(UPN)}`
    const REQUESTS = 2000
    let sent = 0
    const worker = async () => {
      while (sent < REQUESTS) {
        sent++
        const r = await trusted(url, { headers: { authorization: `Bearer ${token}` } })
        await r.arrayBuffer()
        if (r.status !== 200) throw new Error(`GET failed: ${r.status}`)
      }
    }
    const started = performance.now()
    await Promise.all([worker(), worker(), worker(), worker()])
    const graphEmulatorReqPerSec = Math.round(REQUESTS / ((performance.now() - started) / 1000))
    return { graphPullItemsPerSec, graphPullItemsPerSecStampGet, graphEmulatorReqPerSec }
  } finally {
    await em.close()
    transport.close()
  }
}

if (process.argv[1] !== undefined && (import.meta.url === pathToFileURL(process.argv[1]).href || /graph-bench\.ts$/.test(process.argv[1]))) {
  const figures = await runGraphBench()
  for (const [k, v] of Object.entries(figures)) console.log(`${k}: ${v}`)
}
