/** Runs the README's embedding example against both emulators (config written as YAML, as a deployment would). */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { stringify } from 'yaml'
import { CrmMailboxDirectory, SyncServer, graphMailboxTester, loadServerConfig } from './index.js'
import { GRAPH_CLIENT, type World, mailboxRecords, startWorld, until } from './test/world.js'

let w: World
beforeAll(async () => {
  w = await startWorld({ start: false, users: [{ email: 'alice@contoso.test' }] })
  w.dv.admin.createRecord('contacts', { firstname: 'Ann', lastname: 'Lee' }, w.users[0]!.systemuserid)
  await writeFile(join(w.dataDir, 'graph-ca.pem'), w.graph.certificate!)
  await writeFile(
    join(w.dataDir, 'concord.yaml'),
    stringify({
      crm: { url: w.dv.url, tokenUrl: w.dv.tokenUrl, clientId: w.dv.clientId, clientSecret: w.dv.clientSecret },
      graph: { url: w.graph.url, tokenUrl: w.graph.tokenUrl, tenantId: w.graph.tenant, ...GRAPH_CLIENT, caFile: 'graph-ca.pem' },
      dataDir: 'data',
      admin: { port: 0, token: 'readme-example-admin-token' },
      logLevel: 'silent',
    }),
  )
})
afterAll(async () => {
  await w?.stop()
})

test('the README embedding example syncs a mailbox', async () => {
  const { createTrustedFetch } = await import('@concord/adapter-exchange')
  const { readFile } = await import('node:fs/promises')
  // The README passes the global fetch; the emulator's self-signed certificate needs a trusting one.
  const fetch = createTrustedFetch({ ca: await readFile(join(w.dataDir, 'graph-ca.pem'), 'utf8') }).fetch

  const config = await loadServerConfig(join(w.dataDir, 'concord.yaml'))
  const server = await SyncServer.start({
    config,
    directory: new CrmMailboxDirectory({ ...config.crm }),
    tester: graphMailboxTester({ ...config.graph, fetch }),
  })
  try {
    expect(server.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    await until(async () => (await mailboxRecords(w, 'alice@contoso.test', 'contact')).length === 1, 'the contact to reach the mailbox')
  } finally {
    await server.stop()
  }
})
