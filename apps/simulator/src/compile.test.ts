import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, expect, test } from 'vitest'
import { POLICY_PROCESS_FLAGS } from './process-flags.js'

const cli = fileURLToPath(new URL('./cli.ts', import.meta.url))
const out = mkdtempSync(join(tmpdir(), 'concord-compile-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))

/** V8's `--trace-opt` lines about `fn` from a CLI run of `args` with every run in one process (`--jobs 1`), as the simulator's processes run. */
function compileTrace(fn: string, args: string[]): string[] {
  const run = spawnSync(process.execPath, [...POLICY_PROCESS_FLAGS, '--trace-opt', '--import', 'tsx', cli, ...args, '--jobs', '1', '--out', out, '--no-progress'], { encoding: 'utf8', maxBuffer: 256 << 20 })
  expect(run.status, run.stderr).toBe(0)
  return run.stdout.split('\n').filter((line) => line.includes(`<JSFunction ${fn} `))
}

// A run's loop is compiled while it runs (on-stack replacement). When that code embedded the boilerplate of
// an object literal whose map a previous run had deprecated, V8 dropped every compile ("maps became
// deprecated during optimization"), and the second run of a process ran its whole loop unoptimised.
test('the stub engine compiles the loop of every run in one process', () => {
  const trace = compileTrace('runStubPolicy', ['--engine', 'stub', '--mailboxes', '1000', '--policies', 'fixed:5,fixed:15,sss', '--budget-from', 'fixed:5'])
  expect(trace.filter((line) => line.startsWith('[aborted optimizing'))).toEqual([])
  // (and the trace is there to read: the loop was compiled at least once)
  expect(trace.some((line) => line.startsWith('[completed compiling') && line.includes(' OSR '))).toBe(true)
})

test('the real engine compiles runInWorld in every run of one process', () => {
  const trace = compileTrace('runInWorld', ['--mailboxes', '20', '--policies', 'fixed:15,fixed:5,sss', '--budget-from', 'fixed:15', '--store', 'memory'])
  expect(trace.filter((line) => line.startsWith('[aborted optimizing'))).toEqual([])
  expect(trace.some((line) => line.startsWith('[completed compiling'))).toBe(true)
})
