import { expect, test } from 'vitest'
import { createScheduler } from '@concord/scheduler'
import { MAX_PROBLEMS, MailboxProblems, type PolicyRun, assemblePolicyRun, crmLimitsHeld, mergeShardRuns } from './policy-run.js'
import { type SimulationConfig, simulate } from './simulate.js'

const limits = { crm: { requestsPerWindow: 100, windowMs: 300_000, concurrency: 4 } }

/** A run of `boxes` (id, changes, staleness values) whose scheduler stats say how much of the CRM limits it used. */
function runOf(boxes: Array<[string, number, number[]]>, crm: { window: number; inFlight: number; deferred?: number }, problems: string[] = []): PolicyRun {
  const sched = createScheduler({ policy: 'fixed:5' })
  const run = assemblePolicyRun({
    sched,
    boxes: boxes.map(([id, changes, s]) => ({ id, changes, measured: s.length, stalenessSum: s.reduce((a, b) => a + b, 0), pendingCount: 0 })),
    graphCalls: 10,
    crmCalls: 5,
    tokenRefreshes: 1,
    throttled: 0,
    cycles: 7,
    conflicts: 2,
    referenceConflicts: 2,
    lostUpdates: 0,
    duplicates: 0,
    converged: true,
    unresolved: 0,
    skippedEvents: 3,
    notificationsSent: 0,
    notificationsDropped: 0,
    staleness: boxes.flatMap(([, , s]) => s),
    callsPerHour: [10, 5],
    problems,
  })
  return { ...run, schedulerStats: { ...run.schedulerStats, crmWindowPeak: crm.window, crmInFlightPeak: crm.inFlight, deferred: { ...run.schedulerStats.deferred, crmRate: crm.deferred ?? 0 } } }
}

test('shards merge into one run: counts add up, per-mailbox figures and staleness keep mailbox order', () => {
  const a = runOf([['m0', 4, [1, 2]], ['m1', 1, [3]]], { window: 40, inFlight: 2 }, ['m0: a'])
  const b = runOf([['m2', 2, [5]]], { window: 50, inFlight: 2 }, ['m2: b'])
  const merged = mergeShardRuns([a, b])
  expect(merged.perMailbox.map((m) => m.mailbox)).toEqual(['m0', 'm1', 'm2'])
  expect([...merged.staleness]).toEqual([1, 2, 3, 5])
  expect(merged).toMatchObject({ apiCalls: 30, graphCalls: 20, crmCalls: 10, cycles: 14, conflicts: 4, skippedEvents: 6, changes: 7, converged: true, callsPerHour: [20, 10], problems: ['m0: a', 'm2: b'] })
  expect(merged.schedulerStats).toMatchObject({ crmWindowPeak: 90, crmInFlightPeak: 4 })
  expect(mergeShardRuns([a, { ...b, converged: false }]).converged).toBe(false)
  expect(mergeShardRuns([a, { ...b, lostUpdates: null }]).lostUpdates).toBeNull()
})

test('the CRM limits held a split run back when the shards together could have reached them', () => {
  const under = [runOf([['m0', 1, [1]]], { window: 50, inFlight: 2 }), runOf([['m1', 1, [1]]], { window: 50, inFlight: 2 })]
  expect(crmLimitsHeld(under, limits)).toBe(false)
  expect(crmLimitsHeld([under[0]!, runOf([['m1', 1, [1]]], { window: 51, inFlight: 1 })], limits)).toBe(true)
  expect(crmLimitsHeld([under[0]!, runOf([['m1', 1, [1]]], { window: 10, inFlight: 3 })], limits)).toBe(true)
  expect(crmLimitsHeld([under[0]!, runOf([['m1', 1, [1]]], { window: 1, inFlight: 1, deferred: 1 })], limits)).toBe(true)
})

test('a run keeps at most MAX_PROBLEMS problems per mailbox and reports the first in mailbox order', () => {
  const problems = new MailboxProblems()
  for (let i = 0; i < MAX_PROBLEMS + 5; i++) problems.note(3, `m3 #${i}`)
  problems.note(1, 'm1 #0')
  const first = problems.first(MAX_PROBLEMS)
  expect(first).toHaveLength(MAX_PROBLEMS)
  expect(first[0]).toBe('m1 #0')
  expect(first.at(-1)).toBe(`m3 #${MAX_PROBLEMS - 2}`)
})

test('a split run whose shards could have met the CRM concurrency limit is repeated whole (the basis run too, before the budgeted run starts): the report is the same as in this process', async () => {
  const config: SimulationConfig = {
    mailboxes: 4,
    days: 1,
    warmupDays: 0,
    seed: 5,
    policies: ['fixed:15', 'fixed:5', 'sss', 'adaptive'],
    budgetFrom: 'fixed:5',
    conflictPolicies: ['crm-wins'],
    mode: 'fast',
    engine: 'real',
    store: 'memory',
    notifications: false,
    notificationLoss: 0,
    requestLatencyMs: 120,
  }
  const scheduler = { limits: { crm: { concurrency: 1 } } }
  const withoutWall = (r: Awaited<ReturnType<typeof simulate>>) => JSON.stringify({ ...r, wallSeconds: 0, mailboxDaysPerSec: 0 })
  const inProcess = await simulate(config, { scheduler })
  expect(withoutWall(await simulate(config, { scheduler, jobs: 2 }))).toBe(withoutWall(inProcess))
  // and without the tight limit the split runs merge (the jobs: 2 test in simulate.test.ts compares them)
  expect(withoutWall(await simulate(config, { jobs: 2 }))).toBe(withoutWall(await simulate(config)))
})
