/**
 * `npm test`: make sure Dovecot, Redis and Chromium (the simulator's report.html test) are installed, start
 * Dovecot and Redis on free ports (tools/services scripts), run every project's tests through Nx with the
 * services in the environment, always stop the services, and print `Tests: N passed, N failed`.
 *
 *   npm test                                   # all projects
 *   npm test -- --projects=@concord/engine     # extra args go to `nx run-many`
 *   npm test -- --projects=@concord/engine -- -t "merge"   # args after a second `--` go to vitest
 *
 * Children see REDIS_URL, REDIS_HOST, REDIS_PORT, IMAP_HOST, IMAP_PORT, POP3_PORT, LMTP_PORT, DOVECOT_DIR.
 * CONCORD_KEEP_SERVICE_DIR=1 keeps the services' temp dir (configs and logs) for inspection.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import {
  DOVECOT_INSTALL_COMMAND,
  REDIS_INSTALL_COMMAND,
  startLocalDovecot,
  startLocalRedis,
  type DovecotService,
  type RedisService,
} from './src/services.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS_FILE = `.tmp/vitest-results-${process.pid}.json`

function log(message: string): void {
  process.stderr.write(`[run-tests] ${message}\n`)
}

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, name)))
}

/** Debian packages that are missing, judged by the binaries the service scripts need. */
function missingPackages(): string[] {
  const missing: string[] = []
  const dovecot = onPath('dovecot') || existsSync('/usr/sbin/dovecot')
  if (!dovecot || !existsSync('/usr/lib/dovecot/imap')) missing.push('dovecot-imapd')
  if (!dovecot || !existsSync('/usr/lib/dovecot/pop3')) missing.push('dovecot-pop3d')
  if (!dovecot || !existsSync('/usr/lib/dovecot/lmtp')) missing.push('dovecot-lmtpd')
  if (!onPath('redis-server') && !existsSync('/usr/bin/redis-server')) missing.push('redis-server')
  if (!existsSync('/usr/bin/chromium')) missing.push('chromium') // the simulator's report.html test loads it headless
  return missing
}

/** (a) Dovecot, Redis and Chromium installed: apt-get them as root, else print the command and exit 1. */
function ensureInstalled(): void {
  const missing = missingPackages()
  if (missing.length === 0) return
  const install = `apt-get install -y ${missing.join(' ')}`
  if (process.getuid?.() !== 0) {
    log(`missing: ${missing.join(', ')}. Install them with:`)
    log(`  sudo apt-get update && sudo ${install}`)
    log(`(all of them: ${DOVECOT_INSTALL_COMMAND} redis-server; just Redis: ${REDIS_INSTALL_COMMAND})`)
    process.exit(1)
  }
  log(`installing ${missing.join(' ')} (apt-get, running as root)`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...missing]]) {
    const result = spawnSync('apt-get', args, { stdio: 'inherit', env })
    if (result.status !== 0) {
      log(`'apt-get ${args.join(' ')}' failed (${result.error?.message ?? `exit ${result.status}`}); run: apt-get update && ${install}`)
      process.exit(1)
    }
  }
  const still = missingPackages()
  if (still.length > 0) {
    log(`still missing after apt-get: ${still.join(', ')}`)
    process.exit(1)
  }
}

/** Splits `nx args -- vitest args`. */
function splitArgs(argv: readonly string[]): { nxArgs: string[]; vitestArgs: string[] } {
  const i = argv.indexOf('--')
  return i < 0 ? { nxArgs: [...argv], vitestArgs: [] } : { nxArgs: argv.slice(0, i), vitestArgs: argv.slice(i + 1) }
}

/** Project directories from the root package.json workspaces (`dir/*` globs and plain dirs). */
function projectDirs(): string[] {
  const manifest = z
    .object({ workspaces: z.array(z.string()) })
    .parse(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')))
  const dirs: string[] = []
  for (const pattern of manifest.workspaces) {
    if (pattern.endsWith('/*')) {
      const base = join(ROOT, pattern.slice(0, -2))
      if (!existsSync(base)) continue
      for (const entry of readdirSync(base)) {
        const dir = join(base, entry)
        if (statSync(dir).isDirectory() && existsSync(join(dir, 'package.json'))) dirs.push(dir)
      }
    } else if (existsSync(join(ROOT, pattern, 'package.json'))) {
      dirs.push(join(ROOT, pattern))
    }
  }
  return dirs
}

const vitestJsonSchema = z.object({
  numPassedTests: z.number(),
  numFailedTests: z.number(),
  numPendingTests: z.number().optional(),
  numTodoTests: z.number().optional(),
  numFailedTestSuites: z.number().optional(),
  numTotalTestSuites: z.number().optional(),
})

interface Totals {
  passed: number
  failed: number
  skipped: number
  failedSuites: number
  projects: string[]
  empty: string[]
}

/** (e) Sums every project's vitest JSON report (written by --reporter=json) and deletes the files. */
function collectResults(): Totals {
  const totals: Totals = { passed: 0, failed: 0, skipped: 0, failedSuites: 0, projects: [], empty: [] }
  for (const dir of projectDirs()) {
    const file = join(dir, RESULTS_FILE)
    if (!existsSync(file)) continue
    try {
      const report = vitestJsonSchema.parse(JSON.parse(readFileSync(file, 'utf8')))
      totals.passed += report.numPassedTests
      totals.failed += report.numFailedTests
      totals.skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0)
      totals.failedSuites += report.numFailedTestSuites ?? 0
      if ((report.numTotalTestSuites ?? 0) === 0) totals.empty.push(relative(ROOT, dir))
      totals.projects.push(`${relative(ROOT, dir)} ${report.numPassedTests}/${report.numFailedTests}`)
    } catch (error) {
      log(`could not read ${relative(ROOT, file)}: ${error instanceof Error ? error.message : String(error)}`)
    } finally {
      rmSync(file, { force: true })
    }
  }
  return totals
}

/** Deletes stale result files; returns the project .tmp dirs that did not exist yet (removed again if empty). */
function removeStaleResults(): string[] {
  const created: string[] = []
  for (const dir of projectDirs()) {
    rmSync(join(dir, RESULTS_FILE), { force: true })
    const tmp = join(dir, dirname(RESULTS_FILE))
    if (!existsSync(tmp)) created.push(tmp)
  }
  return created
}

function removeEmptyDirs(dirs: readonly string[]): void {
  for (const dir of dirs) {
    try {
      if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir)
    } catch {
      // another run may be writing there; leaving an empty, git-ignored .tmp dir is harmless
    }
  }
}

async function main(): Promise<number> {
  ensureInstalled()
  const { nxArgs, vitestArgs } = splitArgs(process.argv.slice(2))

  // (b) start the services on free ports, all state in one temp dir
  const servicesDir = await mkdtemp(join(tmpdir(), 'concord-test-services-'))
  await chmod(servicesDir, 0o755) // as root, Dovecot's unprivileged mail user must reach DIR/dovecot/mail
  let dovecot: DovecotService | undefined
  let redis: RedisService | undefined
  let child: ChildProcess | undefined
  let interrupted: NodeJS.Signals | undefined
  let stopping: Promise<void> | undefined

  const stopServices = (): Promise<void> =>
    (stopping ??= (async () => {
      const results = await Promise.allSettled([dovecot?.stop(), redis?.stop()])
      for (const r of results) if (r.status === 'rejected') log(`stopping a service failed: ${String(r.reason)}`)
      if (process.env.CONCORD_KEEP_SERVICE_DIR === '1') log(`service configs and logs kept in ${servicesDir}`)
      else await rm(servicesDir, { recursive: true, force: true })
    })())

  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      // second signal: stop now
      void stopServices().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
      return
    }
    interrupted = signal
    log(`${signal}: stopping tests and services`)
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) killGroup(child.pid, signal)
    else void stopServices().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)

  try {
    const [dovecotResult, redisResult] = await Promise.allSettled([
      startLocalDovecot({ dir: join(servicesDir, 'dovecot') }),
      startLocalRedis({ dir: join(servicesDir, 'redis') }),
    ])
    if (dovecotResult.status === 'fulfilled') dovecot = dovecotResult.value
    if (redisResult.status === 'fulfilled') redis = redisResult.value
    for (const r of [dovecotResult, redisResult]) {
      if (r.status === 'rejected') {
        log(`could not start a service: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`)
      }
    }
    if (!dovecot || !redis) return 1
    if (interrupted) return interrupted === 'SIGINT' ? 130 : 143

    const serviceEnv = { ...dovecot.env, ...redis.env }
    for (const [key, value] of Object.entries(serviceEnv)) log(`${key}=${value}`)

    // (c) run the tests
    const createdTmpDirs = removeStaleResults()
    const args = [
      'nx',
      'run-many',
      '-t',
      'test',
      '--outputStyle=stream',
      ...nxArgs,
      '--',
      '--reporter=default',
      '--reporter=json',
      `--outputFile.json=${RESULTS_FILE}`,
      ...vitestArgs,
    ]
    log(`npx ${args.join(' ')}`)
    const code = await new Promise<number>((resolve) => {
      child = spawn('npx', args, {
        cwd: ROOT,
        stdio: 'inherit',
        // own process group, so a signal can reach nx and every vitest below it (npx/npm do not forward it)
        detached: true,
        env: { ...process.env, ...serviceEnv, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' },
      })
      child.once('error', (error) => {
        log(`could not run npx nx: ${error.message}`)
        resolve(1)
      })
      child.once('close', (exitCode, signal) => resolve(exitCode ?? (signal ? 128 + signalNumber(signal) : 1)))
    })

    if (interrupted && child?.pid !== undefined) await waitForGroupExit(child.pid)

    // (e) summary
    const totals = collectResults()
    removeEmptyDirs(createdTmpDirs)
    if (totals.projects.length > 0) log(`per project (passed/failed): ${totals.projects.join(', ')}`)
    if (totals.skipped > 0) log(`${totals.skipped} skipped/todo`)
    if (totals.empty.length > 0) log(`no test files (vitest exits 1 for these): ${totals.empty.join(', ')}`)
    if (totals.failedSuites > 0) log(`${totals.failedSuites} test file(s) failed to run`)
    process.stdout.write(`Tests: ${totals.passed} passed, ${totals.failed} failed\n`)
    if (interrupted) return interrupted === 'SIGINT' ? 130 : 143
    return code
  } finally {
    // (d) always stop the services
    await stopServices()
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // the group is already gone
  }
}

/** After a signal: give nx and its vitest processes 10 s to exit, then SIGKILL what is left of the group. */
async function waitForGroupExit(pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(-pid, 0)
    } catch {
      return
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  log('tests did not stop within 10 s of the signal; killing them')
  killGroup(pid, 'SIGKILL')
}

function signalNumber(signal: NodeJS.Signals): number {
  return signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : signal === 'SIGHUP' ? 1 : signal === 'SIGKILL' ? 9 : 1
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
    process.exit(1)
  },
)
