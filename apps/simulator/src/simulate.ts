import { LimitsSchema, type PolicyName } from '@concord/scheduler'
import { type ConflictPolicyName, resolveConflictPolicy } from './conflict-policies.js'
import { SimulatorError } from './errors.js'
import { type Runner, ChildRunner, ThreadRunner, cloneable } from './policy-runners.js'
import type { RunSettings, WorkerTask } from './policy-worker.js'
import { type FinalState, type MailboxShard, type PolicyRun, WIRE_MAX_MAILBOXES, crmLimitsHeld, mergeShardRuns, percentile, wireWorkload } from './policy-run.js'
import { runPolicy } from './run.js'
import { type BlockPlan, RunPrefixes, blockKey } from './sim-world.js'
import { type EventColumns, type GeneratorOptions, type Workload, DAY, MIN, TRUE_RATE_STEP_MS, columnsWorkload, eventCount, generateColumns, generateWorkload, mergeColumns, sharedColumnsWorkload, trueRateFunction } from './workload.js'

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
  /**
   * Policy runs in parallel, each in a child process (default 1: all in this process). Results do
   * not depend on it. Ignored when `scheduler` holds functions (they cannot cross a process boundary).
   */
  jobs?: number | undefined
  /** Each run's final live records per mailbox and side (canonical contact fields as sorted JSON); `label` is the policy (and conflict policy). */
  onFinalState?: ((label: string, state: FinalState[]) => void) | undefined
}

const r3 = (x: number) => Math.round(x * 1000) / 1000

/** Parts a splittable run is split into (by mailbox) when runs go in parallel: the basis run one per slot, the others finer, so that the slots end together. */
const BASIS_SHARDS = 2
const RUN_SHARDS = 4

/** Generates the lower half of the mailboxes here and the upper half in `helper`'s thread at the same time. */
async function generateInHalves(options: GeneratorOptions, helper: ThreadRunner): Promise<Workload> {
  const half = Math.floor(options.mailboxes / 2)
  const upper = helper.generate(options, half, options.mailboxes)
  let lower: EventColumns
  try {
    lower = generateColumns(options, 0, half)
  } catch (error) {
    upper.catch(() => undefined) // (the thread's own failure, if any, is not the one to report)
    throw error
  }
  return columnsWorkload(options, mergeColumns(lower, await upper))
}

/** Policies under which no mailbox's schedule depends on another's (no budget to share). */
function splittable(policy: PolicyName): boolean {
  return policy === 'sss' || policy.startsWith('fixed:')
}

/** `run.staleness` sorted (summarise and cdf read the same order: sorted once per run). */
function sortedStaleness(run: PolicyRun): Float64Array {
  return run.staleness.slice().sort()
}

function summarise(run: PolicyRun, sorted: Float64Array): PolicyReport {
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

function cdf(sorted: Float64Array): Array<[number, number]> {
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

/** Whether a run waits for the basis run's call count (its budget). */
function needsBudget(policy: PolicyName, basis: boolean): boolean {
  return !basis && (policy === 'adaptive' || policy === 'oracle')
}

/** What `nextTask` chooses from. */
export interface PendingTask {
  policy: PolicyName
  basis: boolean
}

/**
 * The run (or part of one) a free slot takes next. The basis run (or its parts) first; once its budget is known,
 * the runs that need it, oracle first (the longest run: it re-plans over the true rates of every mailbox); the runs
 * and parts that need no budget fill the time before and after, so the long runs start as early as they can and
 * the slots end together. `preferUnbudgeted` (this process's slot, while the basis run is whole): a child process
 * starts its first run 1.5-3 s later (loading its modules, generating the workload again), so it takes the basis
 * run, which has time to spare, and this slot the runs that need no budget.
 */
export function nextTask<T extends PendingTask>(pending: readonly T[], state: { budgetKnown: boolean; preferUnbudgeted: boolean }): T | undefined {
  const budgeted = (t: T) => needsBudget(t.policy, t.basis)
  return (
    (state.preferUnbudgeted ? pending.find((t) => !t.basis && !budgeted(t)) : undefined) ??
    pending.find((t) => t.basis) ??
    (state.budgetKnown ? (pending.find((t) => budgeted(t) && t.policy === 'oracle') ?? pending.find(budgeted)) : undefined) ??
    pending.find((t) => !budgeted(t)) ??
    pending.find((t) => t.policy === 'oracle') ??
    pending[0]
  )
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
  // the stub engine reads only when, where and which side: columns, no event objects (most of a large workload's time and memory)
  const generatorOptions: GeneratorOptions = { mailboxes: config.mailboxes, days: config.days + config.warmupDays, seed: config.seed, eventsAs: config.engine === 'stub' ? 'columns' : 'objects' }
  const order: PolicyName[] = [config.budgetFrom, ...config.policies.filter((p) => p !== config.budgetFrom)]
  // Every run is independent and seeded; only adaptive/oracle wait for the basis run's call count
  // (their budget). With `jobs` > 1 up to that many runs go in parallel, each in a child process.
  type Task = { policy: PolicyName; cp: (typeof conflict)[number]; key: string; basis: boolean; shard?: MailboxShard & { of: string; index: number; parts: number } }
  const tasks: Task[] = [
    ...order.map((policy) => ({ policy, cp: conflict[0]!, key: policy, basis: policy === config.budgetFrom })),
    ...conflict.slice(1).map((cp) => ({ policy: config.budgetFrom, cp, key: `${config.budgetFrom} (${cp.name})`, basis: false })),
  ]
  const jobs = Math.max(1, Math.floor(hooks.jobs ?? 1))
  // a single run gains nothing from a child process
  const parallel = Math.min(jobs, tasks.length) > 1 && cloneable(hooks.scheduler)
  // the stub engine runs each task in a fresh worker thread that shares the workload's columns; the real
  // engine keeps slot 0 in this process and one child process per other slot (it needs event objects).
  // Both start before the workload is generated, so that their start-up (loading modules) overlaps it.
  const threads = parallel && config.engine === 'stub'
  const slots = parallel ? Math.min(jobs, tasks.length) : 1
  const runners: Array<Runner | undefined> = parallel ? Array.from({ length: slots }, (_, slot) => (threads ? new ThreadRunner() : slot === 0 ? undefined : new ChildRunner())) : []
  let workload: Workload
  try {
    // worker threads: the second one generates half of the mailboxes meanwhile (the runs wait for the workload)
    const helper = threads && !hooks.workload && config.mailboxes >= 2 ? (runners[1] as ThreadRunner) : undefined
    const generated = hooks.workload ?? (helper ? await generateInHalves(generatorOptions, helper) : generateWorkload(generatorOptions))
    workload = config.mode === 'wire' ? wireWorkload(generated) : generated
  } catch (error) {
    for (const r of runners) r?.close()
    throw error
  }
  // (only runs in this process ask the true rates; worker threads derive their own)
  const oracle = (config.policies.includes('oracle') || config.budgetFrom === 'oracle') && !threads
  const trueRate = oracle ? trueRateFunction(workload) : () => 0
  const trueCrmRate = oracle ? trueRateFunction(workload, 'crm') : () => 0
  const drainMs = 30 * MIN
  const simMs = workload.durationMs + drainMs
  const mailboxDaysPerRun = workload.mailboxes.length * (workload.durationMs / DAY)
  const totalRuns = order.length + conflict.length - 1
  const runs = new Map<string, PolicyRun>()
  let budget: SimulationReport['budget'] = null
  // progress: each run's fraction done, summed
  const fractions: number[] = []
  // (a split run repeated whole counts twice: hence the cap)
  const progress = (label: string) => hooks.onProgress?.(Math.min(totalRuns, fractions.reduce((a, b) => a + b, 0)) * mailboxDaysPerRun, totalRuns * mailboxDaysPerRun, label)
  let shared: Workload | undefined
  // The runs of a process share the start every policy builds alike (initial sync, warm-up data, its
  // sync) when a process gets more than one run: forking it costs about a tenth of building it.
  const shareStart = config.mode === 'fast' && tasks.length > slots
  const prefixes = shareStart ? new RunPrefixes() : undefined
  // Runs under a policy that couples no mailbox to another (fixed:N, sss: no budget; each mailbox draws from its
  // own random stream) are split by mailbox when they run in parallel, so that the slots end together: whole
  // runs are too coarse to share two cores evenly. The parts merge into exactly the whole run's result unless
  // the CRM limits, shared by every mailbox, held a sync back (`crmLimitsHeld`): then the run is repeated whole.
  // The basis run is split too: its parts run at once, so the budget, and with it the two longest runs, comes
  // sooner.
  // (invalid scheduler limits: nothing is split, and the scheduler reports them)
  const crmLimits = LimitsSchema.safeParse((hooks.scheduler as { limits?: unknown } | undefined)?.limits ?? {}).data
  // With the runs split, each process builds the start of one block of mailboxes (the basis run's parts) and reads the
  // others' from the process that built it (see `RunPrefixes`): a part needs only its block, and building the whole start
  // in every process cost each of them about a fifth of its time.
  let blocks: BlockPlan | undefined
  const n = workload.mailboxes.length
  const range = (index: number, parts: number) => ({ from: Math.floor((index * n) / parts), to: Math.floor(((index + 1) * n) / parts) })
  if (crmLimits && parallel && !threads && shareStart && config.engine === 'real' && !config.notifications && !hooks.onFinalState && n >= 2) {
    const split = (t: Task, parts: number): Task[] => Array.from({ length: parts }, (_, index) => ({ ...t, key: `${t.key} #${index + 1}`, shard: { of: t.key, index, parts, ...range(index, parts) } }))
    const expanded = tasks.flatMap((t) => (t.cp === conflict[0] && splittable(t.policy) ? split(t, Math.min(n, t.basis ? BASIS_SHARDS : RUN_SHARDS)) : [t]))
    tasks.length = 0
    tasks.push(...expanded)
    if (config.store === 'leveldb') blocks = { ranges: Array.from({ length: Math.min(n, BASIS_SHARDS) }, (_, index) => range(index, Math.min(n, BASIS_SHARDS))), available: {} }
  }
  /** The blocks of the start a task forks (none when the start is not built in blocks). */
  const blocksOf = (t: Task): string[] => (blocks && t.cp === conflict[0] ? blocks.ranges.filter((r) => !t.shard || (r.from < t.shard.to && t.shard.from < r.to)).map(blockKey) : [])
  /** Blocks each slot's process holds (built or read). */
  const held = Array.from({ length: slots }, () => new Set<string>())
  const shardParts = new Map<string, PolicyRun[]>()
  const runOne = async (index: number, policy: PolicyName, cp: (typeof conflict)[number], runner: Runner | undefined, shard?: MailboxShard): Promise<PolicyRun> => {
    const plan = blocks && cp === conflict[0] ? { ranges: blocks.ranges, available: { ...blocks.available } } : undefined
    const exported = (list: ReadonlyArray<{ key: string; file: string }> | undefined) => {
      for (const e of list ?? []) blocks!.available[e.key] = e.file
    }
    const label = cp === conflict[0] ? policy : `${policy} (${cp.name})`
    const weight = shard ? (shard.to - shard.from) / workload.mailboxes.length : 1
    fractions[index] = 0
    const onProgress = (v: number) => {
      fractions[index] = weight * Math.min(1, v / workload.durationMs)
      progress(label)
    }
    const runBudget = (policy === 'adaptive' || policy === 'oracle') && budget ? { requestsPerWindow: budget.requestsPerWindow, windowMs: budget.windowMs } : undefined
    const settings: RunSettings = {
      policy,
      seed: config.seed,
      engine: config.engine,
      store: config.store,
      notifications: config.notifications,
      notificationLoss: config.notificationLoss,
      warmupMs: config.warmupDays * DAY,
      drainMs,
      budget: runBudget,
      requestLatencyMs: config.requestLatencyMs,
      scheduler: hooks.scheduler,
      shard: shard && { from: shard.from, to: shard.to },
    }
    let run: PolicyRun
    if (runner) {
      const task: WorkerTask = {
        ...settings,
        workload: threads ? { events: (shared ??= sharedColumnsWorkload(workload)) } : hooks.workload ? { events: workload } : { generate: generatorOptions, wire: config.mode === 'wire' },
        mode: config.mode,
        conflictPolicy: cp.name,
        oracle: policy === 'oracle',
        finalState: hooks.onFinalState !== undefined,
        shareStart,
        blocks: plan,
      }
      const result = await runner.run(task, onProgress)
      if (result.finalState) hooks.onFinalState?.(label, result.finalState)
      exported(result.exported)
      run = result.run
    } else {
      // wire mode loads the adapters and emulators only when asked for
      run = await (config.mode === 'wire' ? (await import('./wire.js')).runWirePolicy : runPolicy)({
        ...settings,
        workload,
        trueRate,
        trueCrmRate,
        trueRateStepMs: TRUE_RATE_STEP_MS,
        merge: cp.merge,
        conflictRule: cp.rule,
        model: cp.model,
        onFinalState: hooks.onFinalState ? (state) => hooks.onFinalState!(label, state) : undefined,
        onProgress: hooks.onProgress ? onProgress : undefined,
        prefixes,
        blocks: plan,
      })
      exported(prefixes?.takeExports())
    }
    fractions[index] = weight
    progress(label)
    return run
  }
  /** A shard's run arrived: when it is the last of its run, the merged run (else undefined; a repeat is queued if the parts are not exact). */
  const settleShard = (task: Task, run: PolicyRun): PolicyRun | undefined => {
    const shard = task.shard!
    let parts = shardParts.get(shard.of)
    if (!parts) shardParts.set(shard.of, (parts = new Array<PolicyRun>(shard.parts)))
    parts[shard.index] = run
    if (parts.filter(Boolean).length < shard.parts) return undefined
    if (crmLimitsHeld(parts, crmLimits!)) {
      tasks.push({ policy: task.policy, cp: task.cp, key: shard.of, basis: task.basis })
      return undefined
    }
    const merged = mergeShardRuns(parts)
    results.set(shard.of, merged)
    return merged
  }
  let basisDone!: () => void
  const basisReady = new Promise<void>((resolve) => (basisDone = resolve))
  const results = new Map<string, PolicyRun>()
  const sortedRuns = new Map<PolicyRun, Float64Array>()
  let next = 0
  const started_ = new Set<string>()
  // Without threads, slot 0 runs in this process (its modules are loaded already), the others each in a child process
  // (see `nextTask`). A split basis run goes first in every slot.
  const preferUnbudgeted = slots > 1 && !threads && !tasks.some((t) => t.basis && t.shard)
  const worker = async (slot: number) => {
    const runner = runners[slot]
    for (;;) {
      const pending = tasks.filter((t) => !results.has(t.key) && !started_.has(t.key))
      if (pending.length === 0) return
      // (a run whose blocks this process neither holds nor can read yet would build them again: the others first)
      const ready = pending.filter((t) => blocksOf(t).every((k) => held[slot]!.has(k) || k in blocks!.available))
      const pick = nextTask(ready.length > 0 ? ready : pending, { budgetKnown: budget !== null, preferUnbudgeted: preferUnbudgeted && slot === 0 })!
      started_.add(pick.key)
      const index = next++
      if (needsBudget(pick.policy, pick.basis)) await basisReady
      const run = await runOne(index, pick.policy, pick.cp, runner, pick.shard)
      for (const k of blocksOf(pick)) held[slot]!.add(k)
      results.set(pick.key, run)
      const whole = pick.shard ? settleShard(pick, run) : run
      // (while the other runs go on: this thread is idle otherwise)
      if (whole) sortedRuns.set(whole, sortedStaleness(whole))
      if (whole && pick.basis) {
        budget = { from: config.budgetFrom, requestsPerWindow: Math.max(1, Math.round((whole.schedulerRequests * DAY) / simMs)), windowMs: DAY }
        basisDone()
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: slots }, (_, slot) => worker(slot)))
  } finally {
    for (const r of runners) r?.close()
    await prefixes?.close()
  }
  for (const policy of order) runs.set(policy, results.get(policy)!)
  const conflictPolicies: SimulationReport['conflictPolicies'] = {}
  const basis = runs.get(config.budgetFrom)!
  conflictPolicies[conflict[0]!.name] = { policy: config.budgetFrom, conflicts: basis.conflicts, lostUpdates: basis.lostUpdates, duplicates: basis.duplicates, converged: basis.converged }
  for (const cp of conflict.slice(1)) {
    const run = results.get(`${config.budgetFrom} (${cp.name})`)!
    conflictPolicies[cp.name] = { policy: config.budgetFrom, conflicts: run.conflicts, lostUpdates: run.lostUpdates, duplicates: run.duplicates, converged: run.converged }
  }
  const wallSeconds = (wall() - started) / 1000
  const policies: Record<string, PolicyReport> = {}
  const series: SimulationReport['series'] = { stalenessCdf: {}, callsPerHour: {}, perMailbox: {} }
  for (const policy of config.policies.includes(config.budgetFrom) ? config.policies : [config.budgetFrom, ...config.policies]) {
    const run = runs.get(policy)!
    const sorted = sortedRuns.get(run) ?? sortedStaleness(run)
    policies[policy] = summarise(run, sorted)
    series.stalenessCdf[policy] = cdf(sorted)
    series.callsPerHour[policy] = run.callsPerHour
    const stride = Math.max(1, Math.ceil(run.perMailbox.length / 2000))
    series.perMailbox[policy] = run.perMailbox.filter((b, i) => i % stride === 0 && b.measured > 0).map((b): [number, number] => [r3(b.changes / (workload.durationMs / DAY)), r3(b.meanStalenessSec)])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1])
  }
  return {
    config: { ...config, mailboxes: workload.mailboxes.length, simulatedDays: workload.durationMs / DAY, events: eventCount(workload) },
    wallSeconds: r3(wallSeconds),
    mailboxDaysPerSec: r3((totalRuns * mailboxDaysPerRun) / Math.max(wallSeconds, 1e-6)),
    budget,
    policies,
    conflictPolicies,
    series,
  }
}
