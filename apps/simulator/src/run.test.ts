import { CrmWinsMerge } from '@concord/engine'
import { expect, test } from 'vitest'
import { runPolicy } from './run.js'
import { HOUR, generateWorkload, trueRateFunction } from './workload.js'

test('a tight Graph limit throttles (429 + Retry-After) and the pair still converges with nothing lost', async () => {
  const workload = generateWorkload({ mailboxes: 2, days: 1, seed: 21 })
  const run = await runPolicy({
    policy: 'fixed:5',
    workload,
    seed: 21,
    engine: 'real',
    store: 'memory',
    notifications: false,
    notificationLoss: 0,
    warmupMs: 0,
    drainMs: HOUR,
    trueRate: trueRateFunction(workload),
    merge: () => new CrmWinsMerge(),
    conflictRule: (crm) => crm.value,
    requestLatencyMs: 120,
    // 3 Graph requests per 10 minutes: a 5-minute cycle of 1–3 requests runs into it in busy hours
    limits: { graph: { requestsPerWindow: 3, windowMs: 10 * 60_000 } },
  })
  expect(run.throttled).toBeGreaterThan(0)
  expect(run.schedulerStats.throttled).toBeGreaterThan(0)
  expect(run.lostUpdates).toBe(0)
  expect(run.duplicates).toBe(0)
  expect(run.converged).toBe(true)
  expect(run.problems).toEqual([])
})
