/**
 * End-to-end figures of the sync server against both emulators over HTTP (in one process):
 * - `serverItemsPerSec`: items synced per second while 100 mailboxes do their first sync (CRM contacts
 *   to Exchange, tracked Outlook appointments to the CRM);
 * - `notificationToCrmMedianMs` / `notificationToCrmP99Ms`: from an Outlook edit to the CRM write, driven
 *   by Graph change notifications (includes the scheduler's default 3 s debounce).
 * Run alone: `npx tsx apps/sync-server/bench/server-bench.ts`.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createTrustedFetch } from '@concord/adapter-exchange'
import { startDataverseEmulator } from '@concord/emulator-dataverse'
import { startGraphEmulator } from '@concord/emulator-graph'
import { freePort } from '@concord/tools'
import { parseServerConfig } from '../src/config.js'
import { DEMO_ROLE, salespersonPrivileges } from '../src/demo.js'
import { createLogger } from '../src/logging.js'
import { CrmMailboxDirectory } from '../src/mailbox/crm-directory.js'
import { graphMailboxTester } from '../src/mailbox/graph-tester.js'
import { SyncServer } from '../src/server.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}

export async function runServerBench(options: { mailboxes?: number; contactsPerMailbox?: number; eventsPerMailbox?: number } = {}): Promise<Record<string, number>> {
  const n = options.mailboxes ?? 100
  const contacts = options.contactsPerMailbox ?? 20
  const events = options.eventsPerMailbox ?? 5
  const emails = Array.from({ length: n }, (_, i) => `user${i}@contoso.test`)
  const client = { clientId: 'concord-bench', clientSecret: 'bench-secret' }
  const graph = await startGraphEmulator({ mailboxes: emails, https: true, ...client })
  const dv = await startDataverseEmulator({ users: [] })
  const dataDir = await mkdtemp(join(tmpdir(), 'concord-server-bench-'))
  let server: SyncServer | undefined
  try {
    dv.admin.upsertRole({ name: DEMO_ROLE, privileges: salespersonPrivileges() as never })
    const users = emails.map((email) => dv.admin.addUser({ email, roles: [DEMO_ROLE], mailbox: 'enabled' }))
    const eventIds: string[] = []
    for (const [i, u] of users.entries()) {
      for (let c = 0; c < contacts; c++) dv.admin.createRecord('contacts', { firstname: `F${c}`, lastname: `L${i}`, jobtitle: 'Buyer' }, u.systemuserid)
      const seeded = graph.control.seed(u.email, 'event', Array.from({ length: events }, (_, e) => ({
        subject: `Visit ${i}-${e}`,
        start: { dateTime: '2026-12-03T10:00:00.0000000', timeZone: 'UTC' },
        end: { dateTime: '2026-12-03T11:00:00.0000000', timeZone: 'UTC' },
        categories: ['Tracked to Dynamics 365'],
      })))
      eventIds.push(seeded[0]!.immutableId)
    }
    const port = await freePort()
    const trusted = createTrustedFetch({ ca: graph.certificate!, maxSockets: 64 })
    const config = await parseServerConfig({
      crm: { url: dv.url, tokenUrl: dv.tokenUrl, clientId: dv.clientId, clientSecret: dv.clientSecret },
      graph: { url: graph.url, tokenUrl: graph.tokenUrl, tenantId: graph.tenant, ...client },
      dataDir,
      admin: { port, token: randomBytes(18).toString('base64url') },
      push: { notificationUrl: `http://127.0.0.1:${port}/notifications`, clientState: randomBytes(24).toString('base64url') },
      logLevel: 'silent',
    })
    const total = n * (contacts + events)
    const started = performance.now()
    server = await SyncServer.start({ config, directory: new CrmMailboxDirectory({ ...config.crm }), tester: graphMailboxTester({ ...config.graph, fetch: trusted.fetch }), graphFetch: trusted.fetch, logger: createLogger('silent') })
    const synced = () => {
      let inMailboxes = 0
      for (const email of emails) inMailboxes += graph.control.count(email, 'contact')
      return inMailboxes + dv.admin.rows('appointments').length
    }
    for (let i = 0; i < 100_000 && synced() < total; i++) await sleep(50)
    const syncSeconds = (performance.now() - started) / 1000
    // Wait for every mailbox's subscriptions (created after its first clean cycle).
    for (let i = 0; i < 2_000 && graph.control.subscriptions().length < n * 4; i++) await sleep(25)
    await sleep(4_000) // let the last cycles end and the scheduler go idle

    const latencies: number[] = []
    for (const [i, u] of users.entries()) {
      const subject = `Visit ${i}-0 (moved)`
      const t0 = performance.now()
      graph.control.updateItem(u.email, eventIds[i]!, { subject })
      for (let k = 0; k < 3_000; k++) {
        if (dv.admin.rows('appointments', `subject eq '${subject.replace(/'/g, "''")}'`).length > 0) break
        await sleep(10)
      }
      latencies.push(performance.now() - t0)
      if (i >= 49) break
    }
    latencies.sort((a, b) => a - b)
    return {
      serverMailboxes: n,
      serverItemsSynced: total,
      serverItemsPerSec: Math.round(total / syncSeconds),
      notificationToCrmMedianMs: Math.round(percentile(latencies, 50)),
      notificationToCrmP99Ms: Math.round(percentile(latencies, 99)),
    }
  } finally {
    await server?.stop()
    await graph.close()
    await dv.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(await runServerBench())
}
