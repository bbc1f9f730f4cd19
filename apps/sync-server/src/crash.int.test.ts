/**
 * kill -9 of a real server process in the middle of a sync, then a restart: nothing lost, nothing
 * duplicated. And SIGTERM: a graceful stop (exit 0) after which a restart carries on.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { stringify } from 'yaml'
import { GRAPH_CLIENT, type World, mailboxRecords, startWorld, until } from './test/world.js'

const BIN = fileURLToPath(new URL('../bin/concord.js', import.meta.url))
const CONTACTS = 240
let w: World
let configPath: string
let child: ChildProcess | undefined

beforeAll(async () => {
  w = await startWorld({ start: false, users: [{ email: 'alice@contoso.test' }] })
  const alice = w.users[0]!
  for (let n = 0; n < CONTACTS; n++) w.dv.admin.createRecord('contacts', { firstname: `C${n}`, lastname: 'Crash', jobtitle: `T${n}` }, alice.systemuserid)
  await writeFile(join(w.dataDir, 'graph-ca.pem'), w.graph.certificate!)
  configPath = join(w.dataDir, 'concord.yaml')
  await writeFile(
    configPath,
    stringify({
      crm: { url: w.dv.url, tokenUrl: w.dv.tokenUrl, clientId: w.dv.clientId, clientSecret: { env: 'TEST_CRM_SECRET' } },
      graph: { url: w.graph.url, tokenUrl: w.graph.tokenUrl, tenantId: w.graph.tenant, clientId: GRAPH_CLIENT.clientId, clientSecret: GRAPH_CLIENT.clientSecret, caFile: 'graph-ca.pem' },
      dataDir: 'data',
      admin: { port: 0, token: 'crash-test-admin-token' },
      scheduler: { policy: 'adaptive', debounceMs: 20 },
      deletionGuard: { share: 0.5, min: 5 },
      logLevel: 'warn',
    }),
  )
  // Slow Graph down so that the initial sync of the contacts spans many requests.
  w.graph.control.setLatency(15)
})

afterAll(async () => {
  child?.kill('SIGKILL')
  await w?.stop()
})

function startServer(): { proc: ChildProcess; adminUrl: Promise<string>; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [BIN, 'serve', '--config', configPath], { env: { ...process.env, TEST_CRM_SECRET: w.dv.clientSecret }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const adminUrl = new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const m = /"adminUrl":"([^"]+)"/.exec(out)
      if (m) resolve(m[1]!)
    })
    proc.once('exit', (code) => reject(new Error(`server exited (${code}) before it started: ${out}`)))
  })
  proc.stderr!.on('data', (chunk: Buffer) => {
    out += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  return { proc, adminUrl, exited }
}

const contactCount = () => w.graph.control.count('alice@contoso.test', 'contact')

test('kill -9 mid-cycle, restart: every contact arrives exactly once', async () => {
  const first = startServer()
  child = first.proc
  await first.adminUrl
  // Kill once the first sync has written some contacts but not all of them.
  await until(() => contactCount() > 10, 'the first contacts to arrive', 1200, 25)
  expect(contactCount()).toBeLessThan(CONTACTS)
  first.proc.kill('SIGKILL')
  await first.exited

  const second = startServer()
  child = second.proc
  const adminUrl = await second.adminUrl
  await until(() => contactCount() >= CONTACTS, 'all contacts after the restart', 2400, 25)
  const sync = () => fetch(`${adminUrl}/api/mailboxes/${w.users[0]!.mailboxid}/sync`, { method: 'POST', headers: { Authorization: 'Bearer crash-test-admin-token' } })
  // A few more cycles: nothing new must appear (no duplicate created by a replayed push).
  for (let i = 0; i < 3; i++) {
    await sync()
    await new Promise((r) => setTimeout(r, 300))
  }
  expect(contactCount()).toBe(CONTACTS)
  const names = (await mailboxRecords(w, 'alice@contoso.test', 'contact')).map((c) => String(c.fields['givenName']))
  expect(new Set(names).size).toBe(CONTACTS)
  expect(w.dv.admin.rows('contacts')).toHaveLength(CONTACTS) // nothing echoed back as a new CRM contact

  // Graceful stop: SIGTERM ends the process with 0.
  second.proc.kill('SIGTERM')
  expect(await second.exited).toBe(0)
  child = undefined
})
