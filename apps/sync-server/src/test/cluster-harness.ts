/**
 * Drives a real cluster for tests and benchmarks: a persistent, restartable redis-server started with
 * tools/services, and `concord serve --cluster` child processes over a config file.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { SERVICES_DIR, freePort } from '@concord/tools'
import { stringify } from 'yaml'
import { assignShards } from '../cluster/shards.js'
import { GRAPH_CLIENT, type World } from './world.js'

const run = promisify(execFile)
const BIN = fileURLToPath(new URL('../../bin/concord.js', import.meta.url))

export interface ClusterRedis {
  url: string
  start(): Promise<void>
  stop(): Promise<void>
}

/** A redis-server with AOF persistence on a fixed port, so it can be stopped and started again. */
export async function persistentRedis(dir: string): Promise<ClusterRedis> {
  const port = await freePort()
  const redis: ClusterRedis = {
    url: `redis://127.0.0.1:${port}`,
    start: async () => {
      await run('bash', [join(SERVICES_DIR, 'redis-start.sh'), dir], { env: { ...process.env, REDIS_PORT: String(port), REDIS_PERSIST: '1' } })
    },
    stop: async () => {
      await run('bash', [join(SERVICES_DIR, 'redis-stop.sh'), dir]).catch(() => {})
    },
  }
  await redis.start()
  return redis
}

export interface ClusterConfigOptions {
  dir: string
  world: World
  /** CRM base URL the instances use (e.g. a recording proxy in front of the emulator). */
  crmUrl?: string | undefined
  crmTokenUrl?: string | undefined
  name: string
  shards: number
  leaseTtlMs: number
  token: string
  logLevel?: 'info' | 'warn' | 'error' | 'silent' | undefined
}

/** Writes the instances' YAML config (with the Graph emulator's CA) and returns its path. */
export async function writeClusterConfig(o: ClusterConfigOptions): Promise<string> {
  const caFile = join(o.dir, 'graph-ca.pem')
  await writeFile(caFile, o.world.graph.certificate!)
  const file = join(o.dir, `${o.name}.yaml`)
  await writeFile(
    file,
    stringify({
      crm: { url: o.crmUrl ?? o.world.dv.url, tokenUrl: o.crmTokenUrl ?? o.world.dv.tokenUrl, clientId: o.world.dv.clientId, clientSecret: o.world.dv.clientSecret, feedIntervalMs: 1_000 },
      graph: { url: o.world.graph.url, tokenUrl: o.world.graph.tokenUrl, tenantId: o.world.graph.tenant, ...GRAPH_CLIENT, caFile },
      dataDir: join(o.dir, 'unused-in-cluster-mode'),
      admin: { port: 0, token: o.token },
      scheduler: { policy: 'adaptive', debounceMs: 50 },
      mailboxes: { retryDelayMs: 200, maxTransientFailures: 50 },
      cluster: { name: o.name, shards: o.shards, leaseTtlMs: o.leaseTtlMs },
      logLevel: o.logLevel ?? 'warn',
    }),
  )
  return file
}

export interface ClusterProcess {
  name: string
  child: ChildProcess
  adminUrl: string
  id: string
  /** The instance's last log lines (all levels it logs), for a failing test to print. */
  recent: string[]
}

const RECENT_LINES = 400

/**
 * Starts `concord serve --cluster` and resolves once it printed its start line. Warnings go to stderr
 * prefixed with the name; `traceDir` keeps the whole log.
 */
export async function startClusterProcess(name: string, configFile: string, redisUrl: string, traceDir?: string | undefined): Promise<ClusterProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configFile, '--cluster', redisUrl], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })
  const recent: string[] = []
  const first = await new Promise<{ adminUrl: string; instanceId: string }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`instance ${name} exited with ${code} before it started`)))
    lines.on('line', (line) => {
      recent.push(line)
      if (recent.length > RECENT_LINES) recent.shift()
      if (traceDir) appendFileSync(join(traceDir, `instance-${name}.log`), `${line}\n`)
      try {
        const v = JSON.parse(line) as { adminUrl?: string; instanceId?: string; level?: number }
        if (v.adminUrl && v.instanceId && v.level === undefined) resolve({ adminUrl: v.adminUrl, instanceId: v.instanceId })
        else if (v.level !== undefined && v.level >= 50) process.stderr.write(`[${name}] ${line}\n`)
      } catch {
        process.stderr.write(`[${name}] ${line}\n`)
      }
    })
  })
  return { name, child, adminUrl: first.adminUrl, id: first.instanceId, recent }
}

export async function clusterApi<T>(instance: ClusterProcess, token: string, path: string): Promise<T> {
  const res = await fetch(`${instance.adminUrl}${path}`, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) })
  if (res.status !== 200) throw new Error(`${path} on ${instance.name}: ${res.status} ${await res.text()}`)
  return (await res.json()) as T
}

export interface ClusterView {
  members: string[]
  shards: Array<{ shard: number; owner: string | null; token: number | null }>
}

/** Waits until the members are exactly `owners` and every shard has the owner the balanced assignment gives it. */
export async function settledOn(via: ClusterProcess, owners: readonly ClusterProcess[], token: string, shards: number, what: string): Promise<ClusterView> {
  const ids = owners.map((o) => o.id).sort()
  const assigned = assignShards(ids, shards)
  let last: ClusterView | undefined
  const deadline = Date.now() + SETTLE_DEADLINE_MS
  while (Date.now() < deadline) {
    const view = await clusterApi<ClusterView>(via, token, '/api/cluster').catch(() => undefined)
    if (view) last = view
    if (view && view.members.join() === ids.join() && view.shards.every((s) => s.owner === assigned.get(s.shard))) return view
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`gave up waiting for ${what} after ${SETTLE_DEADLINE_MS} ms: wanted members ${ids.join(', ')}; last view ${JSON.stringify(last ?? null)}`)
}

const SETTLE_DEADLINE_MS = 60_000
/** Past the server's own shutdown deadline (60 s): a process still alive then is hung. */
const EXIT_DEADLINE_MS = 75_000

/** SIGTERM, then the exit code; a process that does not exit in time is killed and reported as 'hung'. */
export async function stopClusterProcess(p: ClusterProcess): Promise<number | null | 'hung'> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return p.child.exitCode
  const exited = new Promise<number | null>((resolve) => p.child.once('exit', (code) => resolve(code)))
  p.child.kill('SIGCONT')
  p.child.kill('SIGTERM')
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), EXIT_DEADLINE_MS)))
  const outcome = await Promise.race([exited, hung])
  clearTimeout(timer)
  if (outcome === 'hung') p.child.kill('SIGKILL')
  return outcome
}

/** Every instance's recent log lines, for a failed test's output. */
export function recentLogs(instances: readonly ClusterProcess[]): string {
  return instances.map((i) => `── instance ${i.name} (${i.id}), last ${i.recent.length} lines ──\n${i.recent.join('\n')}`).join('\n')
}
