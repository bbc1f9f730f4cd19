import { expect, test } from 'vitest'
// README "Embedding" — the same code as the snippet there.
import { formatSummary, generateWorkload, simulate } from './index.js'

test('README embedding example', async () => {
  const workload = generateWorkload({ mailboxes: 2, days: 1, seed: 42 })
  const report = await simulate(
    {
      mailboxes: 2,
      days: 1,
      warmupDays: 0,
      seed: 42,
      policies: ['fixed:5', 'adaptive'],
      budgetFrom: 'fixed:5',
      conflictPolicies: ['crm-wins'],
      mode: 'fast',
      engine: 'real',
      store: 'memory',
      notifications: false,
      notificationLoss: 0,
      requestLatencyMs: 120,
    },
    { workload },
  )
  const table = formatSummary(report)
  expect(report.policies['fixed:5']!.lostUpdates).toBe(0)
  expect(report.policies.adaptive!.converged).toBe(true)
  expect(table).toMatch(/adaptive/)
})
