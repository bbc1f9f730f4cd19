import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, expect, test } from 'vitest'
import { parseCliArgs } from './cli-args.js'

const bin = fileURLToPath(new URL('../bin/concord-dataverse-emulator.js', import.meta.url))
const children: ChildProcess[] = []

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM')
})

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
    rl.once('line', (line) => {
      rl.close()
      resolve(line)
    })
    child.once('exit', (code) => reject(new Error(`emulator exited with ${code}: ${stderr}`)))
  })
}

test('the bin prints one JSON line with url and tokenUrl, then serves the Web API', async () => {
  const child = spawn(process.execPath, [bin, '--port', '0', '--users', 'alice@contoso.test,bob@contoso.test', '--client-id', 'cli-app', '--client-secret', 's3cret'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  const line = await firstLine(child)
  const info = JSON.parse(line) as { url: string; tokenUrl: string }
  expect(Object.keys(info).sort()).toEqual(['tokenUrl', 'url'])
  expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
  const tokenRes = await fetch(info.tokenUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'cli-app', client_secret: 's3cret', scope: `${info.url}/.default` }),
  })
  const { access_token } = (await tokenRes.json()) as { access_token: string }
  const users = await fetch(`${info.url}/api/data/v9.2/systemusers?$select=internalemailaddress&$filter=internalemailaddress ne null&$orderby=internalemailaddress`, {
    headers: { Authorization: `Bearer ${access_token}` },
  })
  const body = (await users.json()) as { value: Array<{ internalemailaddress: string }> }
  expect(body.value.map((u) => u.internalemailaddress)).toEqual(['alice@contoso.test', 'bob@contoso.test'])
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await exited
})

test('flag parsing: defaults, user list, and bad values naming the flag', () => {
  expect(parseCliArgs([])).toMatchObject({ port: 0, host: '127.0.0.1', users: [], latencyMs: 0, changeTrackingRetentionDays: 7 })
  const o = parseCliArgs(['--users', 'a@x.test, b@x.test', '--mailbox-state', 'pending', '--data', '/tmp/d', '--latency-ms', '25', '--client-id', 'id'])
  expect(o).toMatchObject({ users: [{ email: 'a@x.test', mailbox: 'pending' }, { email: 'b@x.test', mailbox: 'pending' }], dataDir: '/tmp/d', latencyMs: 25, clientId: 'id' })
  expect(() => parseCliArgs(['--port', 'abc'])).toThrow(/--port/)
  expect(() => parseCliArgs(['--port', '70000'])).toThrow(/--port/)
  expect(() => parseCliArgs(['--mailbox-state', 'weird'])).toThrow(/--mailbox-state/)
  expect(parseCliArgs([]).testAndEnable).toBe('auto')
  expect(parseCliArgs(['--test-and-enable', 'external']).testAndEnable).toBe('external')
  expect(() => parseCliArgs(['--test-and-enable', 'sometimes'])).toThrow(/--test-and-enable/)
  expect(() => parseCliArgs(['--nope'])).toThrow()
})
