import { CrmWinsMerge } from '@concord/engine'
import type { PolicyName } from '@concord/scheduler'
import { expect, test } from 'vitest'
import { type RunOptions, runPolicy } from './run.js'
import { DAY, MIN, generateWorkload, trueRateFunction } from './workload.js'

const workload = generateWorkload({ mailboxes: 40, days: 2, seed: 8, withFields: false })
const options = (policy: PolicyName, notifications: boolean): RunOptions => ({
  policy,
  workload,
  seed: 8,
  engine: 'stub',
  store: 'memory',
  notifications,
  notificationLoss: notifications ? 0.1 : 0,
  warmupMs: DAY,
  drainMs: 30 * MIN,
  budget: policy === 'adaptive' || policy === 'oracle' ? { requestsPerWindow: 40 * 600, windowMs: DAY } : undefined,
  trueRate: trueRateFunction(workload),
  trueCrmRate: trueRateFunction(workload, 'crm'),
  merge: () => new CrmWinsMerge(),
  conflictRule: (crm) => crm.value,
  requestLatencyMs: 120,
})

test('the stub loop is deterministic: same seed, same run (notifications on)', async () => {
  const a = await runPolicy(options('adaptive', true))
  const b = await runPolicy(options('adaptive', true))
  expect(Array.from(b.staleness)).toEqual(Array.from(a.staleness))
  expect(b.schedulerStats).toEqual(a.schedulerStats)
  expect(b.callsPerHour).toEqual(a.callsPerHour)
  expect(a.staleness.length).toBeGreaterThan(1000)
})

test('the stub loop accounts for every sync, request, change and notification', async () => {
  for (const [policy, notifications] of [
    ['fixed:5', false],
    ['sss', true],
    ['adaptive', true],
    ['oracle', false],
  ] as const) {
    const run = await runPolicy(options(policy, notifications))
    const st = run.schedulerStats
    const label = `${policy} notifications ${notifications}`
    // every dispatched sync completed and was reported back; each one's requests (≥ its reservation) were charged
    expect({ label, dispatched: st.dispatched, completed: st.completed }).toEqual({ label, dispatched: run.cycles, completed: run.cycles })
    expect({ label, charged: run.schedulerRequests }).toEqual({ label, charged: run.apiCalls })
    expect({ label, hourly: run.callsPerHour.reduce((x, y) => x + y, 0) }).toEqual({ label, hourly: run.apiCalls })
    // every change is either measured or still pending, and notified or dropped when notifications are on
    const measured = run.perMailbox.reduce((x, b) => x + b.measured, 0)
    expect({ label, measured: measured + run.unresolved }).toEqual({ label, measured: run.measuredChanges })
    expect(run.staleness.length).toBe(measured)
    if (notifications) expect({ label, notes: run.notificationsSent + run.notificationsDropped }).toEqual({ label, notes: run.changes })
    else expect(run.notificationsSent + run.notificationsDropped).toBe(0)
    expect(Math.min(...run.staleness)).toBeGreaterThanOrEqual(0)
    if (policy === 'adaptive' || policy === 'oracle') {
      // the floor: a change waits at most 12 minutes plus the sync that picks it up
      expect({ label, violations: st.maxIntervalViolations }).toEqual({ label, violations: 0 })
      expect(Math.max(...run.staleness)).toBeLessThanOrEqual(12 * 60 + 5)
    }
  }
})

const mean = (xs: Float64Array) => xs.reduce((a, b) => a + b, 0) / xs.length

test('adaptive and oracle pull the CRM side on its own schedule: far fewer Dataverse calls per Graph call than fixed:5, and fresher', async () => {
  const fixed = await runPolicy(options('fixed:5', false))
  expect(fixed.crmCalls).toBeGreaterThan(0.9 * fixed.graphCalls) // every sync queries the CRM side
  for (const policy of ['adaptive', 'oracle'] as const) {
    const run = await runPolicy(options(policy, false))
    expect({ policy, ratio: run.crmCalls / run.graphCalls < 0.75 }).toEqual({ policy, ratio: true })
    expect({ policy, fresher: mean(run.staleness) < 0.6 * mean(fixed.staleness) }).toEqual({ policy, fresher: true })
  }
})

test('an oracle whose budget is far beyond what polling every mailbox at the ceiling costs runs through, idle mailboxes at the floor', async () => {
  // its allocation scale grows without bound, and a mailbox side with no true changes has weight 0 (0 × ∞ once gave a NaN wake time)
  const run = await runPolicy({ ...options('oracle', false), budget: { requestsPerWindow: 40 * 6_350, windowMs: DAY } })
  expect(run.schedulerStats.maxIntervalViolations).toBe(0)
  expect(run.staleness.reduce((a, b) => Math.max(a, b), 0)).toBeLessThanOrEqual(12 * 60)
  expect(run.staleness.length).toBeGreaterThan(0)
})
