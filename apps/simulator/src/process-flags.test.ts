import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'
import { POLICY_PROCESS_FLAGS, missingProcessFlags, relaunchWithFlags, replaceFlags, simulatorHeapLimitMb } from './process-flags.js'

const GIB = 2 ** 30
const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'concord-simulate.js')

test('the heap limit is three quarters of the machine shared by the processes (two by default), never below V8’s 4 GiB', () => {
  expect(simulatorHeapLimitMb(24 * GIB)).toBe(9216)
  expect(simulatorHeapLimitMb(64 * GIB)).toBe(24576)
  expect(simulatorHeapLimitMb(8 * GIB)).toBe(4096)
  expect(simulatorHeapLimitMb(24 * GIB, 1)).toBe(18432)
  expect(simulatorHeapLimitMb(8 * GIB, 1)).toBe(6144)
  expect(simulatorHeapLimitMb(24 * GIB, 4)).toBe(4608)
})

test('flags given again replace the ones of the same names, however spelled', () => {
  expect(replaceFlags(['--max_old_space_size=9024', '--no-concurrent-recompilation', '--import', 'tsx'], ['--max-old-space-size=18048'])).toEqual(['--no-concurrent-recompilation', '--import', 'tsx', '--max-old-space-size=18048'])
  expect(replaceFlags(['--trace-gc'], ['--max-semi-space-size=64'])).toEqual(['--trace-gc', '--max-semi-space-size=64'])
})

test('a process started again gets the heap limit it is given in place of this one’s', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'concord-sim-heap-'))
  try {
    const script = join(dir, 'heap.mjs')
    writeFileSync(script, "import { getHeapStatistics } from 'node:v8'\nprocess.exitCode = Math.round(getHeapStatistics().heap_size_limit / 2 ** 20) >= 1234 ? 3 : 4\n")
    expect(await relaunchWithFlags(script, [], ['--max-old-space-size=1234'])).toBe(3)
    expect(await relaunchWithFlags(script, [], ['--max-old-space-size=900'])).toBe(4)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the flags a process lacks: a flag the user gave with another value counts as given', () => {
  const heap = POLICY_PROCESS_FLAGS.find((f) => f.startsWith('--max-old-space-size='))!
  const others = POLICY_PROCESS_FLAGS.filter((f) => f !== heap)
  expect(missingProcessFlags([...POLICY_PROCESS_FLAGS])).toEqual([])
  expect(missingProcessFlags([...others, '--max-old-space-size=2048', '--trace-gc'])).toEqual([])
  expect(missingProcessFlags([...others, '--max_old_space_size=2048'])).toEqual([])
  expect(missingProcessFlags(others)).toEqual([heap])
  expect(missingProcessFlags(['--max-semi-space-size=16'])).toEqual(POLICY_PROCESS_FLAGS.filter((f) => !f.startsWith('--max-semi-space-size')))
  expect(missingProcessFlags([])).toEqual([...POLICY_PROCESS_FLAGS])
})

test('the CLI started without the flags runs again under them: same report, same exit codes', () => {
  const out = mkdtempSync(join(tmpdir(), 'concord-sim-relaunch-'))
  try {
    const run = spawnSync(process.execPath, [bin, '--mailboxes', '2', '--policies', 'fixed:15', '--budget-from', 'fixed:15', '--store', 'memory', '--jobs', '1', '--no-progress', '--out', out], { encoding: 'utf8' })
    expect(run.stderr).toBe('')
    expect(run.status).toBe(0)
    expect(run.stdout).toMatch(/2 mailboxes × 2 day\(s\)/)
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { policies: Record<string, { converged: boolean }> }
    expect(report.policies['fixed:15']!.converged).toBe(true)
    const bad = spawnSync(process.execPath, [bin, '--mailboxes', '0'], { encoding: 'utf8' })
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/--mailboxes "0" is invalid/)
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
})
