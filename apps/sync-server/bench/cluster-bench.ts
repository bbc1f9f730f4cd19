/**
 * Cluster figures on this machine (real redis-server, `concord serve --cluster` child processes, both
 * emulators in this process):
 * - `clusterItemsPerSec1` / `clusterItemsPerSec3`: CRM contacts delivered to their mailboxes per second
 *   by 1 and by 3 instances (same workload, measured in one run), and `clusterSpeedup3v1`, their ratio;
 * - `clusterFailoverMs`: from kill -9 of one of three instances until every shard is owned by a survivor;
 * - `clusterMailboxesPerInstance`: mailboxes one instance sustains at the reference workload
 *   (performance.md §6b: 122 changes per mailbox per day), derived from `clusterItemsPerSec1`.
 * Run alone: `npx tsx apps/sync-server/bench/cluster-bench.ts`.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type ClusterProcess, clusterApi, persistentRedis, settledOn, startClusterProcess, stopClusterProcess, writeClusterConfig } from '../src/test/cluster-harness.js'
import { startWorld, until } from '../src/test/world.js'

const TOKEN = 'cluster-bench-admin-token'
const SHARDS = 12
const LEASE_TTL_MS = 5_000
const CHANGES_PER_MAILBOX_DAY = 122

export async function runClusterBench(options: { mailboxes?: number; contactsPerMailbox?: number } = {}): Promise<Record<string, number>> {
  const n = options.mailboxes ?? 24
  const k = options.contactsPerMailbox ?? 15
  const dir = await mkdtemp(join(tmpdir(), 'concord-cluster-bench-'))
  const redis = await persistentRedis(join(dir, 'redis'))
  const results: Record<string, number> = {}
  const progress = (what: string) => process.stderr.write(`cluster bench: ${what}\n`)
  try {
    for (const size of [1, 3]) {
      const world = await startWorld({ users: Array.from({ length: n }, (_, i) => ({ email: `user${i}@contoso.test` })), start: false })
      const procs: ClusterProcess[] = []
      try {
        const config = await writeClusterConfig({ dir, world, name: `bench-${size}`, shards: SHARDS, leaseTtlMs: LEASE_TTL_MS, token: TOKEN, logLevel: 'error' })
        procs.push(...(await Promise.all(Array.from({ length: size }, (_, i) => startClusterProcess(`${size}-${i}`, config, redis.url)))))
        progress(`${size} instance(s) started`)
        await settledOn(procs[0]!, procs, TOKEN, SHARDS, `${size} instance(s) sharing the shards`)
        progress(`${size} instance(s) settled`)
        await until(async () => {
          let enabled = 0
          for (const p of procs) enabled += (await clusterApi<{ mailboxes: Array<{ state: string; lastSuccessAt?: number }> }>(p, TOKEN, '/api/mailboxes')).mailboxes.filter((m) => m.state === 'enabled' && m.lastSuccessAt !== undefined).length
          return enabled === n
        }, 'every mailbox synced once', 600, 200)
        progress(`${size} instance(s): every mailbox synced once`)
        const started = Date.now()
        for (const u of world.users) for (let i = 0; i < k; i++) world.dv.admin.createRecord('contacts', { firstname: `C${i}`, lastname: u.email.split('@')[0]! }, u.systemuserid)
        await until(() => world.users.every((u) => world.graph.control.count(u.email, 'contact') >= k), 'every contact delivered', 3_000, 100)
        const seconds = (Date.now() - started) / 1000
        results[`clusterItemsPerSec${size}`] = Math.round((n * k) / seconds)
        if (size === 3) {
          const killedAt = Date.now()
          procs[0]!.child.kill('SIGKILL')
          await settledOn(procs[1]!, procs.slice(1), TOKEN, SHARDS, 'the survivors owning every shard')
          results['clusterFailoverMs'] = Date.now() - killedAt
        }
      } finally {
        await Promise.all(procs.map((p) => stopClusterProcess(p).catch(() => null)))
        await world.stop()
      }
    }
  } finally {
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  }
  results['clusterSpeedup3v1'] = Math.round((results['clusterItemsPerSec3']! / results['clusterItemsPerSec1']!) * 100) / 100
  results['clusterMailboxesPerInstance'] = Math.round((results['clusterItemsPerSec1']! * 86_400) / CHANGES_PER_MAILBOX_DAY)
  return results
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await runClusterBench()
  for (const [key, value] of Object.entries(r)) process.stdout.write(`${key.padEnd(32)} ${value}\n`)
}
