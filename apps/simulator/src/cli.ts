import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { SingleBar } from 'cli-progress'
import { Command, CommanderError, Option } from 'commander'
import { SimulatorError } from './errors.js'
import { formatSummary } from './format.js'
import { loadWorkload } from './load-workload.js'
import { needsLargerHeap, planRealEngineRun } from './memory-budget.js'
import { parseSimulatorOptions, toSimulationConfig } from './options.js'
import { relaunchWithFlags } from './process-flags.js'
import { renderReportHtml } from './report-html.js'
import { simulate } from './simulate.js'
import { exitOnSignals } from './store-dirs.js'
import { DAY } from './workload.js'

export interface CliIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  /** Whether stderr is a terminal (progress bar). */
  isTty: boolean
  /**
   * Runs the CLI again with `argv` in a process whose heap limit is `heapLimitMb` and resolves with its exit code:
   * for a scenario that fits only in a process with a larger heap than this one's (see `planRealEngineRun`).
   * Absent: such a scenario is refused, naming the flag it needs.
   */
  relaunch?: ((argv: readonly string[], heapLimitMb: number) => Promise<number>) | undefined
}

const defaultIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  isTty: Boolean(process.stderr.isTTY),
  relaunch: (argv, heapLimitMb) => relaunchWithFlags(process.argv[1]!, argv, [`--max-old-space-size=${heapLimitMb}`]),
}

function program(io: CliIo): Command {
  return new Command('concord-simulate')
    .description('Discrete-event simulation of Concord syncing CRM ⇄ mailboxes in virtual time; compares scheduling policies.')
    .option('--mailboxes <n>', 'number of mailboxes (generator)', '200')
    .option('--days <n>', 'measured days', '1')
    .option('--warmup-days <n>', 'simulated days before the measured ones, so learning policies warm up (default 1 with the generator, 0 with --trace)')
    .option('--seed <n>', 'seed of every random draw', '1')
    .option('--policies <list>', 'scheduling policies: fixed:<min>, sss, adaptive, oracle', 'fixed:15,fixed:5,sss,adaptive,oracle')
    .option('--budget-from <policy>', 'give adaptive and oracle exactly the API calls this policy used', 'fixed:5')
    .option('--conflict-policies <list>', 'conflict policies (the first is used for every scheduling policy; the others re-run --budget-from)', 'crm-wins')
    .addOption(new Option('--mode <mode>', 'fast (in-process replicas) or wire (real adapters against the emulators over HTTP)').default('fast'))
    .option('--engine <engine>', 'real (SyncPair + store) or stub (scheduler kernel and change bookkeeping only)', 'real')
    .option('--store <store>', 'engine store: leveldb (classic-level in a temp dir) or memory (memory-level)', 'leveldb')
    .option('--trace <file>', 'replay a JSONL trace, an mbox file or a Maildir folder instead of the generator')
    .option('--out <dir>', 'output directory for report.json and report.html', 'sim-out')
    .option('--notifications <on|off>', 'Graph change notifications (and Dataverse webhooks)', 'off')
    .option('--notification-loss <p>', 'fraction of notifications dropped (0..1)', '0')
    .option('--request-latency-ms <ms>', 'virtual duration of one API request', '120')
    .option('--jobs <n>', 'policy runs in parallel, in child processes (stub engine: worker threads); results do not depend on it; default: 2, or 1 on a single core; fewer when a real-engine scenario does not fit in memory (the CLI says so)')
    .option('--no-progress', 'no progress bar')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .allowExcessArguments(false)
}

/** Runs the CLI; returns the exit code (0 ok, 2 bad options/trace/unsupported mode, 1 internal error). */
export async function main(argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  const cmd = program(io)
  try {
    cmd.parse([...argv], { from: 'user' })
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2
    throw error
  }
  let bar: SingleBar | undefined
  try {
    const options = parseSimulatorOptions(cmd.opts())
    const config = toSimulationConfig(options)
    const loaded = config.trace ? await loadWorkload(config.trace) : undefined
    if (loaded?.note) io.stderr(`${loaded.note}\n`)
    let jobs = options.jobs
    if (config.engine === 'real' && config.mode === 'fast') {
      const days = loaded ? loaded.workload.durationMs / DAY : config.days + config.warmupDays
      const plan = planRealEngineRun({ mailboxes: loaded?.workload.mailboxes.length ?? config.mailboxes, days, processes: jobs })
      if (plan.note) io.stderr(`concord-simulate: ${plan.note}\n`)
      jobs = plan.processes
      if (needsLargerHeap(plan)) {
        if (!io.relaunch) throw new SimulatorError('Usage', `this scenario needs a process with a heap limit of ${plan.heapLimitMb} MB: run it under node --max-old-space-size=${plan.heapLimitMb} with --jobs ${jobs}`)
        return await io.relaunch([...argv, '--jobs', String(jobs)], plan.heapLimitMb)
      }
    }
    if (options.progress && io.isTty) {
      bar = new SingleBar({ stream: process.stderr, format: 'simulating {label} [{bar}] {percentage}% | {value}/{total} mailbox-days | ETA {eta}s', hideCursor: true })
      bar.start(1, 0, { label: '' })
    }
    const report = await simulate(config, {
      workload: loaded?.workload,
      jobs,
      onProgress: bar
        ? (done, total, label) => {
            bar!.setTotal(Math.round(total))
            bar!.update(Math.round(done), { label })
          }
        : undefined,
    })
    bar?.stop()
    bar = undefined
    const out = resolve(options.out)
    await mkdir(out, { recursive: true })
    await writeFile(join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n')
    await writeFile(join(out, 'report.html'), renderReportHtml(report))
    io.stdout(formatSummary(report) + '\n')
    io.stdout(`report: ${join(out, 'report.json')} and ${join(out, 'report.html')}\n`)
    return 0
  } catch (error) {
    bar?.stop()
    if (error instanceof SimulatorError) {
      io.stderr(`concord-simulate: ${error.message}\n`)
      return error.exitCode
    }
    io.stderr(`concord-simulate: internal error: ${(error as Error).stack ?? String(error)}\n`)
    return 1
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  exitOnSignals()
  process.exitCode = await main(process.argv.slice(2))
}
