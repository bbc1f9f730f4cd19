/**
 * The simulator as a user runs it: the CLI in a child process (`npm run simulate` and friends), timed
 * from the outside, figures read back from its report.json.
 *
 * - the default scenario (no options): wall time, mailbox-days per second, mean staleness per policy;
 * - the same at 200 mailboxes, the size the issue asks the default to be (its target: under a minute) — the
 *   default run itself while the default is 200;
 * - notifications on with 10 % of them lost: adaptive's median and p99 staleness;
 * - scale: the stub engine at 10,000 mailboxes × 1 day (both cores, as a user runs it), and the real engine (LevelDB) at 500 mailboxes
 *   under one policy.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseSimulatorOptions } from '../src/options.js'
import { POLICY_PROCESS_FLAGS } from '../src/process-flags.js'

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.ts')

interface Report {
  wallSeconds: number
  mailboxDaysPerSec: number
  policies: Record<string, { meanStalenessSec: number; p50StalenessSec: number; p95StalenessSec: number; p99StalenessSec: number; maxStalenessSec: number; lostUpdates: number | null; duplicates: number | null; converged: boolean | null }>
}

function simulate(args: string[]): { report: Report; wallSec: number } {
  const out = mkdtempSync(join(tmpdir(), 'concord-sim-bench-'))
  try {
    const started = performance.now()
    const run = spawnSync(process.execPath, [...POLICY_PROCESS_FLAGS, '--import', 'tsx', cli, ...args, '--out', out, '--no-progress'], { encoding: 'utf8', maxBuffer: 64 << 20 })
    const wallSec = (performance.now() - started) / 1000
    if (run.status !== 0) throw new Error(`concord-simulate ${args.join(' ')} exited ${run.status}: ${run.stderr}`)
    process.stderr.write(run.stdout)
    return { report: JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as Report, wallSec }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

const r3 = (n: number) => Math.round(n * 1000) / 1000
const minutes = (sec: number) => r3(sec / 60)

export async function runSimulatorBench(): Promise<Record<string, number>> {
  const figures: Record<string, number> = {}
  const standard = simulate([])
  figures.simulateDefaultWallSec = r3(standard.wallSec)
  figures.simulateDefaultMailboxDaysPerSec = standard.report.mailboxDaysPerSec
  for (const [policy, p] of Object.entries(standard.report.policies)) {
    const key = policy.replace(/[^a-z0-9]/gi, '')
    figures[`simulate_${key}_meanStalenessMin`] = minutes(p.meanStalenessSec)
    if (policy === 'adaptive') {
      figures.simulate_adaptive_p95StalenessMin = minutes(p.p95StalenessSec)
      figures.simulate_adaptive_maxStalenessMin = minutes(p.maxStalenessSec)
    }
  }
  const defaultMailboxes = parseSimulatorOptions({}).mailboxes
  figures.simulate200MailboxesWallSec = defaultMailboxes === 200 ? figures.simulateDefaultWallSec : r3(simulate(['--mailboxes', '200']).wallSec)
  const notify = simulate(['--mailboxes', '50', '--policies', 'fixed:5,adaptive', '--notifications', 'on', '--notification-loss', '0.1'])
  figures.simulateNotifyAdaptiveP50Sec = notify.report.policies.adaptive!.p50StalenessSec
  figures.simulateNotifyAdaptiveP99Sec = notify.report.policies.adaptive!.p99StalenessSec
  figures.simulateStubMailboxDaysPerSec = simulate(['--engine', 'stub', '--mailboxes', '10000', '--days', '1']).report.mailboxDaysPerSec
  figures.simulateRealMailboxDaysPerSec = simulate(['--mailboxes', '500', '--policies', 'fixed:15', '--budget-from', 'fixed:15', '--jobs', '1']).report.mailboxDaysPerSec
  return figures
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(await runSimulatorBench())
