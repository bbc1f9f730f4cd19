import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, expect, test } from 'vitest'
import { startGraphEmulator } from './index.js'
import { parseCliArgs } from './cli-options.js'
import { A, Client, getToken } from './test/helpers.js'

const BIN = fileURLToPath(new URL('../bin/concord-graph-emulator.js', import.meta.url))
const children: ChildProcessWithoutNullStreams[] = []
const dirs: string[] = []

afterAll(async () => {
  for (const ch of children) if (ch.exitCode === null) ch.kill('SIGKILL')
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function startCli(args: string[]): Promise<{ child: ChildProcessWithoutNullStreams; info: { url: string; tokenUrl: string; tenant: string } }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  children.push(child)
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const rl = createInterface({ input: child.stdout })
  const line = await new Promise<string>((resolve, reject) => {
    rl.once('line', resolve)
    child.once('exit', (code) => reject(new Error(`emulator exited with ${code}: ${stderr}`)))
  })
  rl.close()
  return { child, info: JSON.parse(line) as { url: string; tokenUrl: string; tenant: string } }
}

function stop(child: ChildProcessWithoutNullStreams): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
  })
}

/** https request that trusts the given CA (or, without one, skips verification). */
function httpsJson(url: string, opts: { method?: string; body?: unknown; headers?: Record<string, string>; ca?: string }): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body)
    const req = request(
      url,
      {
        method: opts.method ?? 'GET',
        headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...opts.headers },
        ...(opts.ca ? { ca: opts.ca } : { rejectUnauthorized: false }),
      },
      (res) => {
        let s = ''
        res.on('data', (d: Buffer) => (s += d.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: s ? (JSON.parse(s) as unknown) : undefined }))
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

test('CLI flags are parsed and validated with clear messages', () => {
  expect(parseCliArgs(['node', 'cli', '--port', '0', '--mailboxes', 'a@x.test, b@x.test', '--latency-ms', '5', '--https', '--throttle-concurrency', '2'])).toMatchObject({
    port: 0,
    host: '127.0.0.1',
    mailboxes: ['a@x.test', 'b@x.test'],
    latencyMs: 5,
    https: true,
    throttle: { concurrentRequests: 2 },
  })
  expect(() => parseCliArgs(['node', 'cli', '--port', 'abc'])).toThrow(/--port must be a non-negative integer, got 'abc'/)
  expect(() => parseCliArgs(['node', 'cli', '--bogus'])).toThrow(/unknown option/)
})

test('--https serves a self-signed certificate that verifies against the reported certificate', async () => {
  const em = await startGraphEmulator({ mailboxes: [A], https: true })
  try {
    expect(em.certificate).toContain('BEGIN CERTIFICATE')
    const tok = await httpsJson(em.tokenUrl, {
      method: 'POST',
      body: 'grant_type=client_credentials&client_id=x&client_secret=y&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      ca: em.certificate,
    })
    const token = (tok.body as { access_token: string }).access_token
    const r = await httpsJson(`${em.graphUrl}/users/${A}/mailFolders/inbox`, { headers: { authorization: `Bearer ${token}` }, ca: em.certificate })
    expect(r.status).toBe(200)
    expect((r.body as { displayName: string }).displayName).toBe('Inbox')
  } finally {
    await em.close()
  }
})

test('--data persists mailboxes, items, delta tokens and access tokens across a restart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'graph-emu-'))
  dirs.push(dir)
  const em1 = await startGraphEmulator({ mailboxes: [A], dataDir: dir })
  const token = await getToken(em1)
  const c1 = new Client(em1.url, token)
  const [m] = em1.control.seed(A, 'message', [{ subject: 'persisted' }])
  const round = await c1.deltaRound(`users/${A}/mailFolders/inbox/messages/delta`)
  await em1.close()
  const snap = JSON.parse(await readFile(join(dir, 'graph-emulator.json'), 'utf8')) as { version: number }
  expect(snap.version).toBe(1)

  const em2 = await startGraphEmulator({ mailboxes: [A], dataDir: dir })
  try {
    const c2 = new Client(em2.url, token)
    const got = await c2.get(`users/${A}/messages/${m?.id}`)
    expect(got.status).toBe(200)
    expect(got.body.subject).toBe('persisted')
    em2.control.updateItem(A, m?.id ?? '', { subject: 'after restart' })
    const link = round.deltaLink.replace(em1.url, em2.url)
    const r = await c2.deltaRound(link)
    expect(r.items.map((x) => x.subject)).toEqual(['after restart'])
  } finally {
    await em2.close()
  }
})

test('the CLI prints one JSON line, serves https, and keeps state across a restart with --data', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'graph-emu-cli-'))
  dirs.push(dir)
  const args = ['--port', '0', '--https', '--data', dir, '--mailboxes', `${A},b@contoso.test`, '--client-id', 'cli-app', '--client-secret', 'cli-secret']
  const first = await startCli(args)
  expect(Object.keys(first.info).sort()).toEqual(['tenant', 'tokenUrl', 'url'])
  expect(first.info.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
  expect(first.info.tokenUrl).toBe(`${first.info.url}/${first.info.tenant}/oauth2/v2.0/token`)
  const tok = await httpsJson(first.info.tokenUrl, {
    method: 'POST',
    body: 'grant_type=client_credentials&client_id=cli-app&client_secret=cli-secret&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  })
  const token = (tok.body as { access_token: string }).access_token
  const inbox = await httpsJson(`${first.info.url}/v1.0/users/b@contoso.test/mailFolders/inbox`, { headers: { authorization: `Bearer ${token}` } })
  expect(inbox.status).toBe(200)
  const seeded = await httpsJson(`${first.info.url}/_emulator/mailboxes/${A}/contacts`, { method: 'POST', body: { items: [{ displayName: 'Kept' }] } })
  expect(seeded.status).toBe(200)
  const id = (seeded.body as { items: Array<{ id: string }> }).items[0]?.id
  await stop(first.child)
  // SIGTERM wrote the snapshot; a programmatic restart on the same directory sees the contact.
  const em = await startGraphEmulator({ dataDir: dir, mailboxes: [A] })
  try {
    expect((em.control.getItem(A, id ?? '') as { displayName: string }).displayName).toBe('Kept')
    const c = new Client(em.url, token)
    expect((await c.get(`users/${A}/contacts/${id}`)).status).toBe(200)
  } finally {
    await em.close()
  }
})
