import { readdir, rm, stat } from 'node:fs/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { CrmWinsMerge } from '@concord/engine'
import { expect, test } from 'vitest'
import { TimedHeap } from './heap.js'
import { type RunOptions, runPolicy } from './run.js'
import { RunPrefixes, SimWorld, exportBlock, importBlock } from './sim-world.js'
import { mergeShardRuns } from './policy-run.js'
import { removeStoreDir, storeDirsRoot } from './store-dirs.js'
import { DAY, HOUR, type Workload, generateWorkload, trueRateFunction } from './workload.js'

const storeDirs = async () => {
  const root = storeDirsRoot()
  return root === undefined ? [] : (await readdir(root)).sort()
}

/** Options of a real-engine run on LevelDB with a day of warm-up (crm-wins), by policy. */
function runOptions(workload: Workload, seed: number, common: Partial<RunOptions>) {
  const merge = () => new CrmWinsMerge()
  const conflictRule: RunOptions['conflictRule'] = (crm) => crm.value
  return (policy: RunOptions['policy'], extra: Partial<RunOptions> = {}): RunOptions => ({
    policy,
    workload,
    seed,
    engine: 'real',
    store: 'leveldb',
    notifications: false,
    notificationLoss: 0,
    warmupMs: DAY,
    drainMs: HOUR,
    trueRate: trueRateFunction(workload),
    trueCrmRate: trueRateFunction(workload, 'crm'),
    merge,
    conflictRule,
    requestLatencyMs: 120,
    ...common,
    ...extra,
  })
}

test('runs forked from a shared start report exactly what runs that build their own report', async () => {
  const workload = generateWorkload({ mailboxes: 3, days: 2, seed: 4 })
  const withNotifications = runOptions(workload, 4, { notifications: true, notificationLoss: 0.1 })
  const options = (policy: RunOptions['policy'], prefixes?: RunPrefixes) => withNotifications(policy, { prefixes })
  const dirsBefore = await storeDirs()
  const prefixes = new RunPrefixes()
  const shared = []
  for (const policy of ['fixed:5', 'sss', 'fixed:5'] as const) shared.push(await runPolicy(options(policy, prefixes)))
  expect(await storeDirs()).toHaveLength(dirsBefore.length + 1) // the shared start's store; the runs deleted theirs
  await prefixes.close()
  expect(await storeDirs()).toEqual(dirsBefore)
  expect(storeDirsRoot()).toBeUndefined() // nothing left: their common directory went with the last
  const own = [await runPolicy(options('fixed:5')), await runPolicy(options('sss'))]
  expect(shared[0]).toEqual(own[0])
  expect(shared[1]).toEqual(own[1])
  expect(shared[2]).toEqual(own[0]) // a fork is not disturbed by the runs forked before it
  expect(own[0]!.converged).toBe(true)
  expect(own[0]!.notificationsSent).toBeGreaterThan(0)
})

test('a start built in blocks, one of them read from the file another process would export, gives the runs of a start built whole', async () => {
  const workload = generateWorkload({ mailboxes: 4, days: 2, seed: 5, conflictReaction: 1 })
  const options = runOptions(workload, 5, {})
  const ranges = [{ from: 0, to: 2 }, { from: 2, to: 4 }]
  const dirsBefore = await storeDirs()
  // "this process" builds block 0-2; "the other" builds block 2-4 and exports it
  const other = new RunPrefixes()
  const part2 = await runPolicy(options('fixed:5', { prefixes: other, blocks: { ranges, available: {} }, shard: ranges[1] }))
  const exported = other.takeExports()
  expect(exported.map((e) => e.key)).toEqual(['2-4'])
  expect(other.takeExports()).toEqual([])
  const mine = new RunPrefixes()
  const plan = { ranges, available: { '2-4': exported[0]!.file } }
  const part1 = await runPolicy(options('fixed:5', { prefixes: mine, blocks: plan, shard: ranges[0] }))
  expect(mine.takeExports().map((e) => e.key)).toEqual(['0-2'])
  const whole = await runPolicy(options('fixed:5', { prefixes: mine, blocks: plan })) // both blocks: one built here, one read
  const sss = await runPolicy(options('sss', { prefixes: mine, blocks: plan }))
  await mine.close()
  await other.close()
  expect(await storeDirs()).toEqual(dirsBefore)

  const reference = new RunPrefixes()
  const built = await runPolicy(options('fixed:5', { prefixes: reference }))
  const builtSss = await runPolicy(options('sss', { prefixes: reference }))
  const builtParts = [await runPolicy(options('fixed:5', { prefixes: reference, shard: ranges[0] })), await runPolicy(options('fixed:5', { prefixes: reference, shard: ranges[1] }))]
  await reference.close()
  expect(whole).toEqual(built)
  expect(sss).toEqual(builtSss)
  // the parts merge into what the parts of the whole start merge into (a block's start counts go to the part that holds its first mailbox)
  expect(mergeShardRuns([part1, part2])).toEqual(mergeShardRuns(builtParts))
  expect(built.converged).toBe(true)
  expect(built.conflicts).toBeGreaterThan(0)
})

test('a block read from its file keeps none of the file: the bytes go once read', async () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const workload = generateWorkload({ mailboxes: 20, days: 2, seed: 6 })
  const run = runOptions(workload, 6, {})('fixed:5')
  const options = { ...run, model: { direction: () => 'both' as const, tracking: false, rule: run.conflictRule } }
  const range = { from: 0, to: 20 }
  const frozen = await (await SimWorld.prefix(options, range)).freeze(range)
  const dir = (frozen.storage as { dir: string }).dir
  const file = `${dir}.block`
  await exportBlock(frozen, file)
  const size = (await stat(file)).size
  /** Bytes of array buffers once the collector has freed what it can (it frees their memory lazily: asked a few times). */
  const settledArrayBuffers = async () => {
    let bytes = Infinity
    for (let i = 0; i < 10; i++) {
      gc()
      await new Promise((resolve) => setTimeout(resolve, 20))
      bytes = Math.min(bytes, process.memoryUsage().arrayBuffers)
    }
    return bytes
  }
  const before = await settledArrayBuffers()
  const imported = await importBlock(file, options)
  const after = await settledArrayBuffers()
  // (v8.deserialize returns typed arrays as views on the file's buffer, and a closure over the parsed data held all of it)
  expect(after - before).toBeLessThan(size / 4)
  expect(imported.boxes).toHaveLength(20)
  expect(imported.warmCounted).toEqual(frozen.warmCounted)
  await rm(file)
  await removeStoreDir(dir)
})

test('a cloned heap pops the same entries in the same order, independently', () => {
  const heap = new TimedHeap<string>()
  for (const [t, v] of [[5, 'a'], [1, 'b'], [5, 'c'], [3, 'd']] as const) heap.push(t, v)
  const copy = heap.clone()
  heap.push(0, 'only in the original')
  const drain = (h: TimedHeap<string>) => Array.from({ length: h.size }, () => h.pop())
  expect(drain(copy)).toEqual(['b', 'd', 'a', 'c'])
  expect(drain(heap)).toEqual(['only in the original', 'b', 'd', 'a', 'c'])
})
