import { expect, test } from 'vitest'
import { createWorkload, evaluatePolicies, evaluatePolicy, formatEvaluation } from './evaluate.js'

const MIN = 60_000

test('at the call budget of fixed:5, adaptive cuts the mean detection delay well below fixed:5 (seeded, virtual time)', () => {
  // performance.md §6b workload: lognormal σ = 1 rates around 122 changes/day, weekday 08–18 profile;
  // day 1 is warm-up, day 2 is measured. Deterministic: same seed → same numbers.
  const report = evaluatePolicies({ mailboxes: 200, days: 2, warmupDays: 1, seed: 42, policies: ['fixed:5', 'sss', 'adaptive', 'oracle'] })
  console.log(formatEvaluation(report))
  const by = Object.fromEntries(report.results.map((r) => [r.policy, r]))
  const fixed5 = by['fixed:5']!
  const adaptive = by['adaptive']!
  const oracle = by['oracle']!
  // fixed interval: uniform delay on [0, 5 min] → mean 2.5 min
  expect(fixed5.meanDelayMs / MIN).toBeCloseTo(2.5, 1)
  expect(adaptive.meanDelayMs).toBeLessThan(0.7 * fixed5.meanDelayMs)
  // within the budget: no more calls than fixed:5 made
  expect(adaptive.requestsPerMailboxDay).toBeLessThanOrEqual(fixed5.requestsPerMailboxDay)
  expect(oracle.requestsPerMailboxDay).toBeLessThanOrEqual(fixed5.requestsPerMailboxDay)
  // the oracle knows the true rates: it is the reference adaptive is measured against
  expect(oracle.meanDelayMs).toBeLessThan(adaptive.meanDelayMs)
  expect(adaptive.meanDelayMs).toBeLessThan(1.25 * oracle.meanDelayMs)
  // no change waits longer than the 12-minute promise (+ nothing lost)
  expect(adaptive.maxDelayMs).toBeLessThanOrEqual(12 * MIN + 1)
  expect(adaptive.undetected).toBe(0)
  expect(adaptive.changes).toBe(fixed5.changes)
})

test('evaluation is deterministic for a seed', () => {
  const w = createWorkload({ mailboxes: 40, seed: 9 })
  const a = evaluatePolicy('adaptive', w, { seed: 9, days: 1, warmupDays: 0, budget: { requestsPerWindow: 40 * 288, windowMs: 24 * 60 * MIN } })
  const b = evaluatePolicy('adaptive', w, { seed: 9, days: 1, warmupDays: 0, budget: { requestsPerWindow: 40 * 288, windowMs: 24 * 60 * MIN } })
  expect(a).toEqual(b)
  expect(a.changes).toBeGreaterThan(0)
})
