import { expect, test } from 'vitest'
import { main } from './cli.js'

async function run(args: string[]) {
  let out = ''
  let err = ''
  const code = await main(args, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), isTty: false })
  return { code, out, err }
}

test.each([
  [['--mailboxes', '0'], /--mailboxes "0" is invalid: must be >= 1/],
  [['--mailboxes', 'many'], /--mailboxes "many" is invalid/],
  [['--policies', 'fixed:5,bogus'], /--policies "fixed:5,bogus" is invalid: policy must be/],
  [['--budget-from', 'fixed:0'], /--budget-from "fixed:0" is invalid/],
  [['--notifications', 'maybe'], /--notifications "maybe" is invalid: must be on or off/],
  [['--notifications', 'on', '--notification-loss', '1.5'], /--notification-loss "1.5" is invalid: must be between 0 and 1/],
  [['--notification-loss', '0.1'], /--notification-loss needs --notifications on/],
  [['--conflict-policies', 'crm-wins,coin-flip'], /--conflict-policies "crm-wins,coin-flip" is invalid: must be one of/],
  [['--store', 'postgres'], /--store "postgres" is invalid: must be leveldb or memory/],
  [['--days', '-1'], /--days "-1" is invalid: must be > 0/],
  [['--jobs', '0'], /--jobs "0" is invalid: must be >= 1/],
])('bad option %j exits 2 naming the option', async (args, message) => {
  const r = await run(args)
  expect(r.code).toBe(2)
  expect(r.err).toMatch(message)
  expect(r.out).toBe('')
})

test('an unknown option exits 2 with commander’s message', async () => {
  const r = await run(['--mailbox', '3'])
  expect(r.code).toBe(2)
  expect(r.err).toMatch(/unknown option '--mailbox'/)
})

test.each([
  [['--mode', 'wire', '--mailboxes', '21'], /--mailboxes "21" is invalid with --mode wire: at most 20/],
  [['--mode', 'wire', '--mailboxes', '2', '--engine', 'stub'], /--engine stub is invalid with --mode wire/],
  [['--mode', 'wire', '--mailboxes', '2', '--notifications', 'on'], /--notifications on is invalid with --mode wire/],
  [['--mode', 'tcp'], /--mode "tcp" is invalid: must be fast or wire/],
])('bad wire-mode combination %j exits 2 with a clear message', async (args, message) => {
  const r = await run(args)
  expect(r.code).toBe(2)
  expect(r.err).toMatch(message)
  expect(r.out).toBe('')
})

test('conflict policies other than crm-wins run through PolicyMerge and are measured against the reference model', async () => {
  const { mkdtemp, readFile } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = await mkdtemp(join(tmpdir(), 'sim-cli-'))
  const r = await run(['--conflict-policies', 'crm-wins,lww,keep-both,text-merge', '--mailboxes', '1', '--warmup-days', '0', '--store', 'memory', '--policies', 'fixed:15', '--budget-from', 'fixed:15', '--jobs', '1', '--out', dir])
  expect(r.err).toBe('')
  expect(r.code).toBe(0)
  const report = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8'))
  expect(report.conflictPolicies['crm-wins']).toMatchObject({ lostUpdates: 0, duplicates: 0, converged: true })
  // measured against the reference model (PolicyMerge's directions and tracking), not assumed
  for (const name of ['lww', 'keep-both', 'text-merge']) {
    expect({ name, ...report.conflictPolicies[name] }).toMatchObject({ name, lostUpdates: 0, duplicates: 0, converged: true })
    expect(report.conflictPolicies[name].conflicts).toBeGreaterThanOrEqual(0)
  }
})

test('a malformed trace exits 2 naming the line', async () => {
  const { mkdtemp, writeFile } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = await mkdtemp(join(tmpdir(), 'sim-cli-'))
  const file = join(dir, 'bad.jsonl')
  await writeFile(file, '{"t":0,"mailbox":"a","side":"mailbox","op":"create","kind":"email","item":"m1","fields":{"subject":"x"}}\n{"t":5,"mailbox":"a","side":"mailbox","op":"frobnicate","kind":"email","item":"m1"}\n')
  const r = await run(['--trace', file, '--jobs', '1', '--out', join(dir, 'out')])
  expect(r.code).toBe(2)
  expect(r.err).toMatch(/bad\.jsonl:2: op:/)
  const missing = await run(['--trace', join(dir, 'nope.jsonl')])
  expect(missing.code).toBe(2)
  expect(missing.err).toMatch(/--trace .*nope\.jsonl.*no such file/)
})

test('a small stub-engine run prints the comparison and writes both reports', async () => {
  const { mkdtemp, readFile } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = await mkdtemp(join(tmpdir(), 'sim-cli-'))
  const r = await run(['--mailboxes', '5', '--engine', 'stub', '--policies', 'fixed:5,sss', '--out', dir])
  expect(r.err).toBe('')
  expect(r.code).toBe(0)
  expect(r.out).toMatch(/fixed:5/)
  expect(r.out).toMatch(/sss/)
  const report = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8'))
  expect(Object.keys(report.policies)).toEqual(['fixed:5', 'sss'])
  expect(report.policies['fixed:5'].apiCalls).toBeGreaterThan(0)
  expect(await readFile(join(dir, 'report.html'), 'utf8')).toMatch(/<canvas id="cdf">/)
})
