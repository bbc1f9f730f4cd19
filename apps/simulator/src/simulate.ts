import { type PolicyName } from '@concord/scheduler'
import { type ConflictPolicyName, resolveConflictPolicy } from './conflict-policies.js'
import { SimulatorError } from './errors.js'
import { type FinalState, type PolicyRun, WIRE_MAX_MAILBOXES, percentile, wireWorkload } from './policy-run.js'
import { runPolicy } from './run.js'
import { type Workload, DAY, MIN, generateWorkload, trueRateFunction } from './workload.js'

/** A parsed simulation configuration (see `SimulatorOptionsSchema` for the CLI edge). */
export interface SimulationConfig {
  mailboxes: number
  days: number
  warmupDays: number
  seed: number
  policies: PolicyName[]
  budgetFrom: PolicyName
  conflictPolicies: ConflictPolicyName[]
  mode: 'fast' | 'wire'
  engine: 'real' | 'stub'
  store: 'leveldb' | 'memory'
  notifications: boolean
  notificationLoss: number
  trace?: string | undefined
  requestLatencyMs: number
}

export interface PolicyReport {
  apiCalls: number
  meanStalenessSec: number
  p50StalenessSec: number
  p95StalenessSec: number
  p99StalenessSec: number
  maxStalenessSec: number
  throttled: number
  conflicts: number | null
  lostUpdates: number | null
  duplicates: number | null
  converged: boolean | null
  graphCalls: number
  crmCalls: number
  schedulerRequests: number
  tokenRefreshes: number
  cycles: number
  changes: number
  measuredChanges: number
  unresolved: number
  skippedEvents: number
  notificationsSent: number
  notificationsDropped: number
  /** Largest per-mailbox mean staleness (s), over mailboxes with at least one measured change. */
  worstMailboxMeanStalenessSec: number
  problems: string[]
}

export interface SimulationReport {
  config: Record<string, unknown>
  wallSeconds: number
  mailboxDaysPerSec: number
  budget: { from: PolicyName; requestsPerWindow: number; windowMs: number } | null
  policies: Record<string, PolicyReport>
  conflictPolicies: Record<string, { policy: string; conflicts: number | null; lostUpdates: number | null; duplicates: number | null; converged: boolean | null }>
  series: {
    stalenessCdf: Record<string, Array<[number, number]>>
    callsPerHour: Record<string, number[]>
    perMailbox: Record<string, Array<[number, number]>>
  }
}

export interface SimulationHooks {
  /** Called as the simulation advances: finished mailbox-days out of the total. */
  onProgress?: ((done: number, total: number, label: string) => void) | undefined
  /** Preloaded workload (a parsed trace or mail import). Otherwise the generator runs. */
  workload?: Workload | undefined
  /** Wall clock for `wallSeconds` (injected so the library never reads it implicitly). */
  wallClock?: (() => number) | undefined
  /** Scheduler options passed through to every run. */
  scheduler?: Record<string, unknown> | undefined
  /** Each run's final live records per mailbox and side (canonical contact fields as sorted JSON); `label` is the policy (and conflict policy). */
  onFinalState?: ((label: string, state: FinalState[]) => void) | undefined
}

const r3 = (x: number) => Math.round(x * 1000) / 1000

function summarise(run: PolicyRun): PolicyReport {
  const sorted = run.staleness.slice().sort()
  let sum = 0
  for (const s of sorted) sum += s
  const worst = run.perMailbox.reduce((m, b) => (b.measured > 0 ? Math.max(m, b.meanStalenessSec) : m), 0)
  return {
    apiCalls: run.apiCalls,
    meanStalenessSec: r3(sorted.length ? sum / sorted.length : 0),
    p50StalenessSec: r3(percentile(sorted, 0.5)),
    p95StalenessSec: r3(percentile(sorted, 0.95)),
    p99StalenessSec: r3(percentile(sorted, 0.99)),
    maxStalenessSec: r3(sorted.length ? sorted[sorted.length - 1]! : 0),
    throttled: run.throttled,
    conflicts: run.conflicts,
    lostUpdates: run.lostUpdates,
    duplicates: run.duplicates,
    converged: run.converged,
    graphCalls: run.graphCalls,
    crmCalls: run.crmCalls,
    schedulerRequests: run.schedulerRequests,
    tokenRefreshes: run.tokenRefreshes,
    cycles: run.cycles,
    changes: run.changes,
    measuredChanges: run.measuredChanges,
    unresolved: run.unresolved,
    skippedEvents: run.skippedEvents,
    notificationsSent: run.notificationsSent,
    notificationsDropped: run.notificationsDropped,
    worstMailboxMeanStalenessSec: r3(worst),
    problems: run.problems,
  }
}

function cdf(run: PolicyRun): Array<[number, number]> {
  const sorted = run.staleness.slice().sort()
  const out: Array<[number, number]> = []
  const n = sorted.length
  if (n === 0) return out
  const points = Math.min(n, 200)
  for (let k = 1; k <= points; k++) {
    const q = k / points
    out.push([r3(percentile(sorted, q)), r3(q)])
  }
  return out
}

/**
 * Runs the configured scenario: first the `budgetFrom` policy, then every other policy (adaptive and
 * oracle get the basis policy's call count as their budget), then the basis policy once more under
 * each extra conflict policy. Deterministic for a seed apart from `wallSeconds`/`mailboxDaysPerSec`.
 */
export async function simulate(config: SimulationConfig, hooks: SimulationHooks = {}): Promise<SimulationReport> {
  if (config.mode === 'wire') {
    if (config.engine !== 'real') throw new SimulatorError('Usage', '--mode wire needs --engine real')
    if (config.notifications) throw new SimulatorError('Usage', '--mode wire does not simulate notifications: use --notifications off')
    if (!hooks.workload && config.mailboxes > WIRE_MAX_MAILBOXES) throw new SimulatorError('Usage', `--mailboxes ${config.mailboxes} is invalid with --mode wire: at most ${WIRE_MAX_MAILBOXES}`)
  }
  const wall = hooks.wallClock ?? (() => performance.now())
  const started = wall()
  const conflict = config.conflictPolicies.map((name) => resolveConflictPolicy(name))
  const generated = hooks.workload ?? generateWorkload({ mailboxes: config.mailboxes, days: config.days + config.warmupDays, seed: config.seed })
  const workload = config.mode === 'wire' ? wireWorkload(generated) : generated
  const trueRate = config.policies.includes('oracle') || config.budgetFrom === 'oracle' ? trueRateFunction(workload) : () => 0
  const drainMs = 30 * MIN
  const simMs = workload.durationMs + drainMs
  const order: PolicyName[] = [config.budgetFrom, ...config.policies.filter((p) => p !== config.budgetFrom)]
  const mailboxDaysPerRun = workload.mailboxes.length * (workload.durationMs / DAY)
  const totalRuns = order.length + conflict.length - 1
  let finishedRuns = 0
  const runs = new Map<string, PolicyRun>()
  let budget: SimulationReport['budget'] = null
  const runOne = async (policy: PolicyName, cp: (typeof conflict)[number]) => {
    const label = cp === conflict[0] ? policy : `${policy} (${cp.name})`
    // wire mode loads the adapters and emulators only when asked for
    const run = await (config.mode === 'wire' ? (await import('./wire.js')).runWirePolicy : runPolicy)({
      policy,
      workload,
      seed: config.seed,
      engine: config.engine,
      store: config.store,
      notifications: config.notifications,
      notificationLoss: config.notificationLoss,
      warmupMs: config.warmupDays * DAY,
      drainMs,
      budget: (policy === 'adaptive' || policy === 'oracle') && budget ? { requestsPerWindow: budget.requestsPerWindow, windowMs: budget.windowMs } : undefined,
      trueRate,
      merge: cp.merge,
      conflictRule: cp.rule,
      model: cp.model,
      requestLatencyMs: config.requestLatencyMs,
      scheduler: hooks.scheduler,
      onFinalState: hooks.onFinalState ? (state) => hooks.onFinalState!(label, state) : undefined,
      onProgress: hooks.onProgress ? (v) => hooks.onProgress!((finishedRuns + Math.min(1, v / workload.durationMs)) * mailboxDaysPerRun, totalRuns * mailboxDaysPerRun, label) : undefined,
    })
    finishedRuns++
    hooks.onProgress?.(finishedRuns * mailboxDaysPerRun, totalRuns * mailboxDaysPerRun, label)
    return run
  }
  for (const policy of order) {
    const run = await runOne(policy, conflict[0]!)
    runs.set(policy, run)
    if (policy === config.budgetFrom) budget = { from: policy, requestsPerWindow: Math.max(1, Math.round((run.schedulerRequests * DAY) / simMs)), windowMs: DAY }
  }
  const conflictPolicies: SimulationReport['conflictPolicies'] = {}
  const basis = runs.get(config.budgetFrom)!
  conflictPolicies[conflict[0]!.name] = { policy: config.budgetFrom, conflicts: basis.conflicts, lostUpdates: basis.lostUpdates, duplicates: basis.duplicates, converged: basis.converged }
  for (const cp of conflict.slice(1)) {
    const run = await runOne(config.budgetFrom, cp)
    conflictPolicies[cp.name] = { policy: config.budgetFrom, conflicts: run.conflicts, lostUpdates: run.lostUpdates, duplicates: run.duplicates, converged: run.converged }
  }
  const wallSeconds = (wall() - started) / 1000
  const policies: Record<string, PolicyReport> = {}
  const series: SimulationReport['series'] = { stalenessCdf: {}, callsPerHour: {}, perMailbox: {} }
  for (const policy of config.policies.includes(config.budgetFrom) ? config.policies : [config.budgetFrom, ...config.policies]) {
    const run = runs.get(policy)!
    policies[policy] = summarise(run)
    series.stalenessCdf[policy] = cdf(run)
    series.callsPerHour[policy] = run.callsPerHour
    const stride = Math.max(1, Math.ceil(run.perMailbox.length / 2000))
    series.perMailbox[policy] = run.perMailbox.filter((b, i) => i % stride === 0 && b.measured > 0).map((b): [number, number] => [r3(b.changes / (workload.durationMs / DAY)), r3(b.meanStalenessSec)])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1])
  }
  return {
    config: { ...config, mailboxes: workload.mailboxes.length, simulatedDays: workload.durationMs / DAY, events: workload.events.length },
    wallSeconds: r3(wallSeconds),
    mailboxDaysPerSec: r3((totalRuns * mailboxDaysPerRun) / Math.max(wallSeconds, 1e-6)),
    budget,
    policies,
    conflictPolicies,
    series,
  }
}
