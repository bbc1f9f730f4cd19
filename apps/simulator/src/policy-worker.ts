/**
 * Policy runs in a child process or a worker thread (`simulate(…, { jobs })`): the parent sends
 * {@link WorkerTask}s one at a time, the worker runs each with `runPolicy` and answers with progress
 * messages and the `PolicyRun`. Runs are independent and seeded, so where a run executes does not
 * change its result.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads'
import type { ConflictPolicy, ConflictPolicyName } from './conflict-policies.js'
import type { BlockPlan, ExportedBlock, RunPrefixes } from './sim-world.js'
import { exitOnSignals } from './store-dirs.js'
import type { FinalState, PolicyRun } from './policy-run.js'
import type { RunOptions } from './run.js'
import { type EventColumns, type GeneratorOptions, type Workload, TRUE_RATE_STEP_MS, generateColumns, generateWorkload, trueRateFunction } from './workload.js'

/** The run settings that are plain data, shared by in-process runs and worker tasks. */
export type RunSettings = Pick<RunOptions, 'policy' | 'seed' | 'engine' | 'store' | 'notifications' | 'notificationLoss' | 'warmupMs' | 'drainMs' | 'budget' | 'requestLatencyMs' | 'scheduler' | 'shard'>

/** Everything a run needs, as structured-cloneable data (functions are rebuilt in the child). */
export interface WorkerTask extends RunSettings {
  /**
   * A generated workload is regenerated in the child (deterministic); a loaded one is sent whole (a worker
   * thread shares the memory of columns in `SharedArrayBuffer`s instead of copying them).
   */
  workload: { generate: GeneratorOptions; wire: boolean } | { events: Workload }
  mode: 'fast' | 'wire'
  conflictPolicy: ConflictPolicyName
  oracle: boolean
  finalState: boolean
  /** Keep the start of a real-engine run for this process's next runs (see `RunPrefixes`). */
  shareStart: boolean
  /** With `shareStart`: the blocks the start is built in (see `RunPrefixes`). */
  blocks?: BlockPlan | undefined
}

/** What a worker answers for one task. */
export interface TaskResult {
  run: PolicyRun
  finalState?: FinalState[] | undefined
  /** Blocks of the start this process built and exported during the task (see `RunPrefixes`). */
  exported?: ExportedBlock[] | undefined
}

/** Asks a worker thread for the columns of mailboxes [from, to) of a generated workload (see `generateColumns`). */
export interface GenerateRequest {
  type: 'generate'
  options: GeneratorOptions
  from: number
  to: number
}

export type WorkerMessage =
  | { type: 'progress'; virtualMs: number }
  | ({ type: 'done' } & TaskResult)
  | { type: 'generated'; columns: EventColumns }
  | { type: 'error'; code?: string | undefined; message: string; stack?: string | undefined }

/** The last generated workload (a worker's tasks usually share it: the runs of one simulation). */
let lastGenerated: { key: string; workload: Workload } | undefined
/** Conflict policies by name (one object each, so runs can share their start: see `RunPrefixes`). */
const conflictPolicies = new Map<ConflictPolicyName, ConflictPolicy>()
/** The start the real-engine runs of this process share. */
let prefixes: RunPrefixes | undefined

async function workloadOf(task: WorkerTask): Promise<Workload> {
  if (!('generate' in task.workload)) return task.workload.events
  const key = JSON.stringify(task.workload)
  if (lastGenerated?.key !== key) {
    let workload = generateWorkload(task.workload.generate)
    if (task.workload.wire) workload = (await import('./policy-run.js')).wireWorkload(workload)
    lastGenerated = { key, workload }
  }
  return lastGenerated.workload
}

/** Runs one task (in whatever process this is). */
export async function runTask(task: WorkerTask, onProgress?: (virtualMs: number) => void): Promise<TaskResult> {
  const workload = await workloadOf(task)
  const settings = {
    policy: task.policy,
    workload,
    seed: task.seed,
    notifications: task.notifications,
    notificationLoss: task.notificationLoss,
    warmupMs: task.warmupMs,
    drainMs: task.drainMs,
    budget: task.budget,
    trueRate: task.oracle ? trueRateFunction(workload) : () => 0,
    trueCrmRate: task.oracle ? trueRateFunction(workload, 'crm') : () => 0,
    trueRateStepMs: TRUE_RATE_STEP_MS,
    requestLatencyMs: task.requestLatencyMs,
    scheduler: task.scheduler,
    shard: task.shard,
    onProgress,
  }
  // the stub engine loads neither the engine nor the conflict policies (a worker thread per run starts faster)
  if (task.engine === 'stub' && task.mode === 'fast') return { run: await (await import('./run-stub.js')).runStubPolicy(settings) }
  const [{ resolveConflictPolicy }, { runPolicy }, { RunPrefixes }] = await Promise.all([import('./conflict-policies.js'), import('./run.js'), import('./sim-world.js')])
  let cp = conflictPolicies.get(task.conflictPolicy)
  if (!cp) conflictPolicies.set(task.conflictPolicy, (cp = resolveConflictPolicy(task.conflictPolicy)))
  let finalState: FinalState[] | undefined
  const options = {
    ...settings,
    engine: task.engine,
    store: task.store,
    merge: cp.merge,
    conflictRule: cp.rule,
    model: cp.model,
    onFinalState: task.finalState ? (state: FinalState[]) => void (finalState = state) : undefined,
    prefixes: task.shareStart ? (prefixes ??= new RunPrefixes()) : undefined,
    blocks: task.blocks,
  }
  const run = await (task.mode === 'wire' ? (await import('./wire.js')).runWirePolicy : runPolicy)(options)
  return { run, finalState, exported: options.prefixes?.takeExports() }
}

/** An error as a message (the code survives, so the parent can rethrow a `SimulatorError` with it). */
function errorMessage(error: unknown): WorkerMessage {
  const e = error as { code?: unknown; message?: unknown; stack?: unknown }
  return { type: 'error', code: typeof e.code === 'string' ? e.code : undefined, message: String(e.message ?? error), stack: typeof e.stack === 'string' ? e.stack : undefined }
}

/** Marks a worker thread started to run policy tasks (its `workerData`). */
export const THREAD_WORKER_DATA = { concordSimWorker: true } as const

// Worker-thread side: tasks one after the other from the parent port (the thread ends when the parent terminates it).
const threadPort = !isMainThread && (workerData as Partial<typeof THREAD_WORKER_DATA> | null)?.concordSimWorker === true ? parentPort : null
if (threadPort) {
  threadPort.on('message', (task: WorkerTask | GenerateRequest) => {
    if ('type' in task) {
      try {
        const columns = generateColumns(task.options, task.from, task.to)
        threadPort.postMessage({ type: 'generated', columns } satisfies WorkerMessage, [columns.t.buffer, columns.box.buffer, columns.crm.buffer] as ArrayBuffer[]) // (fresh buffers of `sortColumns`: moved, not copied)
      } catch (error) {
        threadPort.postMessage(errorMessage(error))
      }
      return
    }
    runTask(task, (virtualMs) => threadPort.postMessage({ type: 'progress', virtualMs } satisfies WorkerMessage))
      .then((r) => threadPort.postMessage({ type: 'done', run: r.run, finalState: r.finalState } satisfies WorkerMessage))
      .catch((error: unknown) => threadPort.postMessage(errorMessage(error)))
  })
}

// Child-process side: tasks one after the other, until the parent disconnects.
if (!threadPort && process.send && process.env.CONCORD_SIM_WORKER === '1') {
  exitOnSignals() // Ctrl-C reaches the whole process group
  const send = (m: WorkerMessage) => new Promise<void>((resolve) => process.send!(m, undefined, {}, () => resolve()))
  process.on('message', (task: WorkerTask) => {
    runTask(task, (virtualMs) => void process.send!({ type: 'progress', virtualMs } satisfies WorkerMessage))
      .then((r) => send({ type: 'done', run: r.run, finalState: r.finalState, exported: r.exported }))
      .catch((error: unknown) => send(errorMessage(error)))
  })
  // The parent is gone: end now (the shared start's store files go with the process, see store-dirs),
  // not after the start being built — minutes at 10,000 mailboxes, holding gigabytes.
  process.on('disconnect', () => process.exit(0))
}
