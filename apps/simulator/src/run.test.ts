import { CrmWinsMerge } from '@concord/engine'
import { expect, test } from 'vitest'
import { type RunOptions, runPolicy } from './run.js'
import { DAY, HOUR, type Workload, generateWorkload, trueRateFunction } from './workload.js'

/** Options of a real-engine run on memory-level, crm-wins, no notifications, no warm-up; `overrides` win. */
const engineRun = (workload: Workload, seed: number, overrides: Partial<RunOptions> = {}): RunOptions => ({
  policy: 'fixed:5',
  workload,
  seed,
  engine: 'real',
  store: 'memory',
  notifications: false,
  notificationLoss: 0,
  warmupMs: 0,
  drainMs: HOUR,
  trueRate: trueRateFunction(workload),
  trueCrmRate: trueRateFunction(workload, 'crm'),
  merge: () => new CrmWinsMerge(),
  conflictRule: (crm) => crm.value,
  requestLatencyMs: 120,
  ...overrides,
})

test('warm-up syncs still running when the measured day begins complete among its events (slow requests: many cross)', async () => {
  // 30 s per request: a sync the warm-up starts in its last minutes ends inside the measured day, after
  // that day's first changes. Collected at once, it told the scheduler a later time than those changes'.
  const workload = generateWorkload({ mailboxes: 20, days: 2, seed: 1 })
  const run = await runPolicy(engineRun(workload, 1, { warmupMs: DAY, requestLatencyMs: 30_000 }))
  expect(run.lostUpdates).toBe(0)
  expect(run.duplicates).toBe(0)
  expect(run.converged).toBe(true)
  expect(run.staleness.length).toBeGreaterThan(0)
})

test('a tight Graph limit throttles (429 + Retry-After) and the pair still converges with nothing lost', async () => {
  const workload = generateWorkload({ mailboxes: 2, days: 1, seed: 21 })
  const run = await runPolicy(
    // 3 Graph requests per 10 minutes: a 5-minute cycle of 1–3 requests runs into it in busy hours
    engineRun(workload, 21, { limits: { graph: { requestsPerWindow: 3, windowMs: 10 * 60_000 } } }),
  )
  expect(run.throttled).toBeGreaterThan(0)
  expect(run.schedulerStats.throttled).toBeGreaterThan(0)
  expect(run.lostUpdates).toBe(0)
  expect(run.duplicates).toBe(0)
  expect(run.converged).toBe(true)
  expect(run.problems).toEqual([])
})

test('lost updates are measured against the reference model: a merge that disagrees with the model is caught', async () => {
  const { resolveConflictPolicy } = await import('./conflict-policies.js')
  const workload = generateWorkload({ mailboxes: 2, days: 1, seed: 5, conflictReaction: 1 })
  const exchangeWins = resolveConflictPolicy('exchange-wins')
  const common = engineRun(workload, 5, { merge: exchangeWins.merge, conflictRule: exchangeWins.rule })
  // the matching model: PolicyMerge's directions and tracking (untracked e-mail and meetings stay in the mailbox)
  const right = await runPolicy({ ...common, model: exchangeWins.model })
  expect({ lost: right.lostUpdates, dups: right.duplicates, converged: right.converged, problems: right.problems }).toEqual({ lost: 0, dups: 0, converged: true, problems: [] })
  expect(right.referenceConflicts).toBeGreaterThan(0)
  // a model that expects crm-wins and every item on both sides: the run reports what differs
  const wrong = await runPolicy({ ...common, model: resolveConflictPolicy('crm-wins').model })
  expect(wrong.lostUpdates).toBeGreaterThan(0)
  expect(wrong.converged).toBe(false)
})

test('a warm-up trains the scheduler without engine cycles, then the engine syncs it once and the measured day runs on it', async () => {
  const workload = generateWorkload({ mailboxes: 2, days: 2, seed: 8 })
  const common = engineRun(workload, 8, { policy: 'adaptive' })
  const warmed = await runPolicy({ ...common, warmupMs: 24 * HOUR })
  const cold = await runPolicy({ ...common, warmupMs: 0 })
  expect({ lost: warmed.lostUpdates, dups: warmed.duplicates, converged: warmed.converged, problems: warmed.problems }).toEqual({ lost: 0, dups: 0, converged: true, problems: [] })
  // only the second day is measured, and every change of it was applied
  const secondDay = workload.events.filter((e) => !e.initial && e.t >= 24 * HOUR).length
  expect(warmed.measuredChanges).toBeGreaterThan(0)
  expect(warmed.measuredChanges).toBeLessThanOrEqual(secondDay)
  expect(warmed.unresolved).toBe(0)
  // the scheduler ran through the warm-up: its modelled requests are charged like real ones
  expect(warmed.callsPerHour.slice(0, 24).reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
  // the cold run measures from the start: it sees the first day's changes too
  expect(cold.measuredChanges).toBeGreaterThan(warmed.measuredChanges)
})

test('syncs that leave the CRM side for later lose nothing: concurrent same-field edits under adaptive and every conflict policy', async () => {
  const { resolveConflictPolicy } = await import('./conflict-policies.js')
  // every mailbox-side contact/task edit draws a CRM-side edit of the same field, and the CRM side is busy too
  const workload = generateWorkload({ mailboxes: 3, days: 1, seed: 11, conflictReaction: 1, contactEditsPerDay: 40, taskEditsPerDay: 20, crmEditsPerDay: 40 })
  for (const name of ['crm-wins', 'exchange-wins', 'lww'] as const) {
    const policy = resolveConflictPolicy(name)
    const run = await runPolicy(engineRun(workload, 11, { policy: 'adaptive', merge: policy.merge, conflictRule: policy.rule, model: policy.model }))
    expect({ name, lost: run.lostUpdates, dups: run.duplicates, converged: run.converged, problems: run.problems }).toEqual({ name, lost: 0, dups: 0, converged: true, problems: [] })
    // most syncs left the CRM side out, and the conflicts still happened and were settled
    expect(run.crmCalls).toBeLessThan(0.8 * run.graphCalls)
    expect(run.referenceConflicts).toBeGreaterThan(0)
    expect({ name, engine: run.conflicts }).toEqual({ name, engine: run.referenceConflicts })
  }
})

test('a change is charged until the cycle that carried it completes, not until a change made while that cycle was in flight is carried too', async () => {
  // 30 s per request: every cycle is in flight for a minute or two, and the day's next changes (to the same items,
  // moves among them) land inside those windows. Judged when the cycle completed, on the state by then, a change the
  // cycle had carried waited for the next cycle as well: up to 616 s under 5-minute polling.
  const workload = generateWorkload({ mailboxes: 20, days: 1, seed: 3 })
  const run = await runPolicy(engineRun(workload, 3, { requestLatencyMs: 30_000 }))
  expect({ lost: run.lostUpdates, dups: run.duplicates, converged: run.converged, unresolved: run.unresolved }).toEqual({ lost: 0, dups: 0, converged: true, unresolved: 0 })
  expect(run.staleness.length).toBe(run.measuredChanges)
  // one interval, plus the flight of the cycle that carried the change: never a second interval
  expect(Math.max(...run.staleness)).toBeLessThan(2 * 5 * 60)
})
