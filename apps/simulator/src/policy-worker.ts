/**
 * Policy runs in a child process (`simulate(…, { jobs })`): the parent sends {@link WorkerTask}s one
 * at a time, the child runs each with `runPolicy` and answers with progress messages and the
 * `PolicyRun`. Runs are independent and seeded, so where a run executes does not change its result.
 */
import { type ConflictPolicyName, resolveConflictPolicy } from './conflict-policies.js'
import type { FinalState, PolicyRun } from './policy-run.js'
import { type RunOptions, runPolicy } from './run.js'
import { type GeneratorOptions, type Workload, generateWorkload, trueRateFunction } from './workload.js'

/** The run settings that are plain data, shared by in-process runs and worker tasks. */
export type RunSettings = Pick<RunOptions, 'policy' | 'seed' | 'engine' | 'store' | 'notifications' | 'notificationLoss' | 'warmupMs' | 'drainMs' | 'budget' | 'requestLatencyMs' | 'scheduler'>

/** Everything a run needs, as structured-cloneable data (functions are rebuilt in the child). */
export interface WorkerTask extends RunSettings {
  /** A generated workload is regenerated in the child (deterministic); a loaded one is sent whole. */
  workload: { generate: GeneratorOptions; wire: boolean } | { events: Workload }
  mode: 'fast' | 'wire'
  conflictPolicy: ConflictPolicyName
  oracle: boolean
  finalState: boolean
}

export type WorkerMessage =
  | { type: 'progress'; virtualMs: number }
  | { type: 'done'; run: PolicyRun; finalState?: FinalState[] | undefined }
  | { type: 'error'; code?: string | undefined; message: string; stack?: string | undefined }

/** Runs one task (in whatever process this is). */
export async function runTask(task: WorkerTask, onProgress?: (virtualMs: number) => void): Promise<{ run: PolicyRun; finalState?: FinalState[] | undefined }> {
  let workload: Workload
  if ('generate' in task.workload) {
    workload = generateWorkload(task.workload.generate)
    if (task.workload.wire) workload = (await import('./policy-run.js')).wireWorkload(workload)
  } else workload = task.workload.events
  const cp = resolveConflictPolicy(task.conflictPolicy)
  let finalState: FinalState[] | undefined
  const options = {
    policy: task.policy,
    workload,
    seed: task.seed,
    engine: task.engine,
    store: task.store,
    notifications: task.notifications,
    notificationLoss: task.notificationLoss,
    warmupMs: task.warmupMs,
    drainMs: task.drainMs,
    budget: task.budget,
    trueRate: task.oracle ? trueRateFunction(workload) : () => 0,
    trueCrmRate: task.oracle ? trueRateFunction(workload, 'crm') : () => 0,
    merge: cp.merge,
    conflictRule: cp.rule,
    model: cp.model,
    requestLatencyMs: task.requestLatencyMs,
    scheduler: task.scheduler,
    onFinalState: task.finalState ? (state: FinalState[]) => void (finalState = state) : undefined,
    onProgress,
  }
  const run = await (task.mode === 'wire' ? (await import('./wire.js')).runWirePolicy : runPolicy)(options)
  return { run, finalState }
}

// Child-process side: tasks one after the other, until the parent disconnects.
if (process.send && process.env.CONCORD_SIM_WORKER === '1') {
  const send = (m: WorkerMessage) => new Promise<void>((resolve) => process.send!(m, undefined, {}, () => resolve()))
  process.on('message', (task: WorkerTask) => {
    runTask(task, (virtualMs) => void process.send!({ type: 'progress', virtualMs } satisfies WorkerMessage))
      .then((r) => send({ type: 'done', run: r.run, finalState: r.finalState }))
      .catch((error: unknown) => {
        const e = error as { code?: unknown; message?: unknown; stack?: unknown }
        return send({ type: 'error', code: typeof e.code === 'string' ? e.code : undefined, message: String(e.message ?? error), stack: typeof e.stack === 'string' ? e.stack : undefined })
      })
  })
  process.on('disconnect', () => process.exit(0))
}
