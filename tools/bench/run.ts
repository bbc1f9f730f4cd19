/**
 * `npm run bench`: runs every package benchmark, prints the figures and writes them to
 * bench/results.json as one flat JSON object (stable keys, so runs can be compared over time).
 * Run with `node --expose-gc` semantics via tsx; memory figures need a GC, see tools/bench/README.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import os from 'node:os'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

interface BenchModule {
  file: string
  exportName: string
  what: string
}

/** Every benchmark of the repository. A missing module is reported, never silently skipped. */
const benches: BenchModule[] = [
  { file: 'packages/engine/bench/store-bench.ts', exportName: 'runStoreBench', what: 'engine change log on LevelDB' },
  { file: 'packages/engine/bench/merge-bench.ts', exportName: 'runMergeBench', what: 'engine merge policies' },
  { file: 'packages/engine/bench/cycle-bench.ts', exportName: 'runCycleBench', what: 'engine sync cycles through SyncPair, per item' },
  { file: 'packages/adapter-exchange/bench/graph-bench.ts', exportName: 'runGraphBench', what: 'adapter-exchange pulling from the Graph emulator over HTTP' },
  { file: 'packages/adapter-crm/bench/crm-bench.ts', exportName: 'runCrmBench', what: 'adapter-crm against the Dataverse emulator over HTTP' },
  { file: 'packages/adapter-mailserver/bench/mailserver-bench.ts', exportName: 'runMailserverBench', what: 'adapter-mailserver pulling a 10,000-message mailbox from Dovecot over IMAP' },
  { file: 'apps/sync-server/bench/server-bench.ts', exportName: 'runServerBench', what: 'the sync server: 100 mailboxes against both emulators, and notification-to-CRM latency' },
  { file: 'apps/sync-server/bench/cluster-bench.ts', exportName: 'runClusterBench', what: 'cluster mode: 1 vs 3 instances on Redis, failover after kill -9' },
  { file: 'apps/simulator/bench/sim-bench.ts', exportName: 'runSimulatorBench', what: 'the simulator CLI: the default scenario, notifications with 10 % loss, stub engine at 10,000 mailboxes, real engine at 500' },
]

const only = process.argv.slice(2).filter((a) => !a.startsWith('-'))
const results: Record<string, number | string> = { machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'unknown cpu'}`, node: process.version, at: new Date().toISOString() }
const missing: string[] = []
let failed = false

for (const bench of benches) {
  if (only.length > 0 && !only.some((o) => bench.file.includes(o))) continue
  const path = join(root, bench.file)
  if (!existsSync(path)) {
    missing.push(`${bench.file} (${bench.what})`)
    continue
  }
  process.stderr.write(`bench: ${bench.what} …\n`)
  try {
    const module = (await import(pathToFileURL(path).href)) as Record<string, () => Promise<Record<string, number>>>
    const run = module[bench.exportName]
    if (typeof run !== 'function') throw new Error(`${bench.file} does not export ${bench.exportName}()`)
    const figures = await run()
    for (const [key, value] of Object.entries(figures)) {
      results[key] = value
      console.log(`${key.padEnd(32)} ${typeof value === 'number' ? value.toLocaleString('en-US') : value}`)
    }
  } catch (error) {
    failed = true
    console.error(`bench ${bench.file} failed:`, error)
  }
}

mkdirSync(join(root, 'bench'), { recursive: true })
const resultsFile = join(root, 'bench', 'results.json')
// A run of some benches (`npm run bench -- simulator`) updates their keys and keeps the others' last figures.
const kept = only.length > 0 && existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, number | string>) : {}
writeFileSync(resultsFile, JSON.stringify({ ...kept, ...results }, null, 2) + '\n')
console.log(`\nwrote bench/results.json${only.length > 0 ? ` (only the keys of ${only.join(', ')} are new)` : ''}`)
if (missing.length > 0) console.log(`not built yet, so not measured: ${missing.join('; ')}`)
if (failed) process.exit(1)
