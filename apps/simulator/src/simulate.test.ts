import { expect, test } from 'vitest'
import { type SimulationConfig, type SimulationReport, nextTask, simulate } from './simulate.js'
import { generateWorkload } from './workload.js'

const base: SimulationConfig = {
  mailboxes: 3,
  days: 1,
  warmupDays: 0,
  seed: 11,
  policies: ['fixed:15', 'fixed:5', 'sss', 'adaptive', 'oracle'],
  budgetFrom: 'fixed:5',
  conflictPolicies: ['crm-wins'],
  mode: 'fast',
  engine: 'real',
  store: 'leveldb',
  notifications: false,
  notificationLoss: 0,
  requestLatencyMs: 120,
}

const withoutWall = (r: SimulationReport) => ({ ...r, wallSeconds: 0, mailboxDaysPerSec: 0 })

test('fast mode with the real engine and LevelDB: every policy converges with no lost update and no duplicate', async () => {
  // every Outlook-side contact/task edit draws a concurrent CRM-side edit of the same field, so conflicts happen
  const workload = generateWorkload({ mailboxes: 2, days: 1, seed: 11, conflictReaction: 1 })
  const report = await simulate(base, { workload })
  expect(Object.keys(report.policies)).toEqual(base.policies)
  for (const [name, p] of Object.entries(report.policies)) {
    expect({ name, lost: p.lostUpdates, dups: p.duplicates, converged: p.converged, problems: p.problems }).toEqual({ name, lost: 0, dups: 0, converged: true, problems: [] })
    expect(p.changes).toBeGreaterThan(40)
    expect(p.measuredChanges).toBe(p.changes)
    expect(p.unresolved).toBe(0)
    expect(p.apiCalls).toBe(p.graphCalls + p.crmCalls)
    expect(p.p50StalenessSec).toBeLessThanOrEqual(p.p95StalenessSec)
    expect(p.p95StalenessSec).toBeLessThanOrEqual(p.maxStalenessSec)
  }
  // fixed:15 polls a third as often as fixed:5 and is staler
  expect(report.policies['fixed:15']!.apiCalls).toBeLessThan(report.policies['fixed:5']!.apiCalls / 2)
  expect(report.policies['fixed:15']!.meanStalenessSec).toBeGreaterThan(report.policies['fixed:5']!.meanStalenessSec * 2)
  // no fixed:5 change waits longer than one interval plus the cycle's own requests
  expect(report.policies['fixed:5']!.maxStalenessSec).toBeLessThan(5 * 60 + 30)
  // the workload makes concurrent CRM-side edits, so conflicts happen and are resolved
  expect(Object.values(report.policies).some((p) => (p.conflicts ?? 0) > 0)).toBe(true)
  expect(report.budget?.requestsPerWindow).toBeGreaterThan(0)
})

test('notifications on with 10 % dropped: still nothing lost, and adaptive reacts to pushes', async () => {
  // fixed:5's budget: fixed:15's would not even cover the 12-minute floor, which the scheduler keeps first
  const report = await simulate({ ...base, store: 'memory', policies: ['fixed:15', 'adaptive'], budgetFrom: 'fixed:5', notifications: true, notificationLoss: 0.1 })
  for (const p of Object.values(report.policies)) {
    expect(p.lostUpdates).toBe(0)
    expect(p.duplicates).toBe(0)
    expect(p.converged).toBe(true)
    expect(p.notificationsDropped).toBeGreaterThan(0)
    expect(p.notificationsSent).toBeGreaterThan(p.notificationsDropped * 3)
  }
  expect(report.policies.adaptive!.p50StalenessSec).toBeLessThan(report.policies['fixed:15']!.p50StalenessSec / 2)
})

test('same seed → identical report apart from the wall-clock fields', async () => {
  const config = { ...base, mailboxes: 1, policies: ['fixed:5', 'adaptive'] as SimulationConfig['policies'], store: 'memory' as const }
  const a = await simulate(config)
  const b = await simulate(config)
  expect(JSON.stringify(withoutWall(a))).toBe(JSON.stringify(withoutWall(b)))
  const c = await simulate({ ...config, seed: 12 })
  expect(JSON.stringify(withoutWall(c))).not.toBe(JSON.stringify(withoutWall(a)))
})

test('adaptive beats fixed:5 at equal budget (stub kernel, warmed up, seeded)', async () => {
  const report = await simulate({ ...base, engine: 'stub', mailboxes: 60, warmupDays: 1, policies: ['fixed:5', 'adaptive'], seed: 3 })
  const fixed = report.policies['fixed:5']!
  const adaptive = report.policies.adaptive!
  expect(adaptive.apiCalls).toBeLessThanOrEqual(fixed.apiCalls)
  expect(adaptive.meanStalenessSec).toBeLessThan(fixed.meanStalenessSec * 0.8)
  // the stub kernel does not measure correctness: no engine, no replicas
  expect(adaptive.lostUpdates).toBeNull()
  expect(adaptive.converged).toBeNull()
})

test('policy runs in child processes (jobs: 2) give the same report as in this process', async () => {
  const config: SimulationConfig = { ...base, mailboxes: 2, store: 'memory', policies: ['fixed:15', 'fixed:5', 'adaptive'] }
  const inProcess = await simulate(config)
  let progressed = 0
  const parallel = await simulate(config, { jobs: 2, onProgress: () => void progressed++ })
  expect(JSON.stringify(withoutWall(parallel))).toBe(JSON.stringify(withoutWall(inProcess)))
  expect(progressed).toBeGreaterThan(3)
  for (const p of Object.values(parallel.policies)) expect({ lost: p.lostUpdates, dups: p.duplicates, converged: p.converged }).toEqual({ lost: 0, dups: 0, converged: true })
})

test('with LevelDB and runs split by mailbox, each process builds the start of its block and reads the other: the report is the same as in this process', async () => {
  const config: SimulationConfig = { ...base, mailboxes: 4, warmupDays: 1, policies: ['fixed:15', 'fixed:5', 'adaptive'] }
  const inProcess = await simulate(config)
  const parallel = await simulate(config, { jobs: 2 })
  expect(JSON.stringify(withoutWall(parallel))).toBe(JSON.stringify(withoutWall(inProcess)))
  for (const p of Object.values(parallel.policies)) expect({ lost: p.lostUpdates, dups: p.duplicates, converged: p.converged }).toEqual({ lost: 0, dups: 0, converged: true })
})

test('the stub kernel gives the same staleness with a generated workload with or without payloads', async () => {
  const config: SimulationConfig = { ...base, engine: 'stub', mailboxes: 30, warmupDays: 1, policies: ['fixed:5', 'adaptive'] }
  const light = await simulate(config) // the generator leaves payloads out for the stub
  const full = await simulate(config, { workload: generateWorkload({ mailboxes: 30, days: 2, seed: base.seed }) })
  expect(JSON.stringify(withoutWall(light).policies)).toBe(JSON.stringify(withoutWall(full).policies))
})

test('stub runs in worker threads (jobs: 2, one fresh thread per run, shared columns) give the same report as in this process', async () => {
  const config: SimulationConfig = { ...base, engine: 'stub', mailboxes: 20, warmupDays: 1, notifications: true, notificationLoss: 0.1 }
  const inProcess = await simulate(config)
  let progressed = 0
  const threads = await simulate(config, { jobs: 2, onProgress: () => void progressed++ })
  expect(JSON.stringify(withoutWall(threads))).toBe(JSON.stringify(withoutWall(inProcess)))
  expect(progressed).toBeGreaterThan(5)
  // a loaded workload (event objects) is shared with the threads as columns too
  const loaded = await simulate(config, { jobs: 2, workload: generateWorkload({ mailboxes: 20, days: 2, seed: base.seed }) })
  expect(JSON.stringify(withoutWall(loaded).policies)).toBe(JSON.stringify(withoutWall(inProcess).policies))
})

test('a free slot takes the basis run first, then (once the budget is known) oracle, adaptive, and the runs that need no budget around them', () => {
  const t = (key: string, policy: SimulationConfig['policies'][number], basis = false) => ({ key, policy, basis })
  const all = [t('fixed:5 #1', 'fixed:5', true), t('fixed:5 #2', 'fixed:5', true), t('fixed:15 #1', 'fixed:15'), t('sss #1', 'sss'), t('adaptive', 'adaptive'), t('oracle', 'oracle')]
  const pick = (pending: typeof all, budgetKnown: boolean, preferUnbudgeted = false) => nextTask(pending, { budgetKnown, preferUnbudgeted })?.key
  expect(pick(all, false)).toBe('fixed:5 #1')
  expect(pick(all.slice(1), false)).toBe('fixed:5 #2')
  // the basis parts started, the budget not known yet: a run that needs none fills the wait
  expect(pick(all.slice(2), false)).toBe('fixed:15 #1')
  // the budget known: the longest runs first, so that the short parts end the simulation
  expect(pick(all.slice(2), true)).toBe('oracle')
  expect(pick(all.slice(2, 5), true)).toBe('adaptive')
  // only budgeted runs left and no budget yet: oracle, which then waits for it
  expect(pick(all.slice(4), false)).toBe('oracle')
  // this process's slot while the basis run is whole (a child process starts later and takes it)
  expect(pick([t('fixed:5', 'fixed:5', true), ...all.slice(2)], false, true)).toBe('fixed:15 #1')
  expect(pick([], true)).toBeUndefined()
})
