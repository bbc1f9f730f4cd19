import { readdir } from 'node:fs/promises'
import { CrmWinsMerge } from '@concord/engine'
import { expect, test } from 'vitest'
import { TimedHeap } from './heap.js'
import { type RunOptions, runPolicy } from './run.js'
import { RunPrefixes } from './sim-world.js'
import { storeDirsRoot } from './store-dirs.js'
import { DAY, HOUR, generateWorkload, trueRateFunction } from './workload.js'

const storeDirs = async () => {
  const root = storeDirsRoot()
  return root === undefined ? [] : (await readdir(root)).sort()
}

test('runs forked from a shared start report exactly what runs that build their own report', async () => {
  const workload = generateWorkload({ mailboxes: 3, days: 2, seed: 4 })
  const merge = () => new CrmWinsMerge()
  const conflictRule: RunOptions['conflictRule'] = (crm) => crm.value
  const options = (policy: RunOptions['policy'], prefixes?: RunPrefixes): RunOptions => ({
    policy,
    workload,
    seed: 4,
    engine: 'real',
    store: 'leveldb',
    notifications: true,
    notificationLoss: 0.1,
    warmupMs: DAY,
    drainMs: HOUR,
    trueRate: trueRateFunction(workload),
    trueCrmRate: trueRateFunction(workload, 'crm'),
    merge,
    conflictRule,
    requestLatencyMs: 120,
    prefixes,
  })
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

test('a cloned heap pops the same entries in the same order, independently', () => {
  const heap = new TimedHeap<string>()
  for (const [t, v] of [[5, 'a'], [1, 'b'], [5, 'c'], [3, 'd']] as const) heap.push(t, v)
  const copy = heap.clone()
  heap.push(0, 'only in the original')
  const drain = (h: TimedHeap<string>) => Array.from({ length: h.size }, () => h.pop())
  expect(drain(copy)).toEqual(['b', 'd', 'a', 'c'])
  expect(drain(heap)).toEqual(['only in the original', 'b', 'd', 'a', 'c'])
})
