/**
 * Where policy runs execute when `simulate()` runs them in parallel: a worker thread per stub-engine run,
 * a long-lived child process per extra slot for the real engine. Both speak `policy-worker.ts`'s messages.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { SimulatorError, SimulatorErrorCodes } from './errors.js'
import { POLICY_PROCESS_FLAGS } from './process-flags.js'
import { type GenerateRequest, type TaskResult, type WorkerMessage, type WorkerTask, THREAD_WORKER_DATA } from './policy-worker.js'
import type { EventColumns, GeneratorOptions } from './workload.js'

/** Whether scheduler options can be sent to a child process (no functions). */
export function cloneable(value: unknown): boolean {
  if (typeof value === 'function') return false
  if (value === null || typeof value !== 'object') return true
  return Object.values(value).every(cloneable)
}

/** Where a worker runs policy tasks. */
export interface Runner {
  run(task: WorkerTask, onProgress: (virtualMs: number) => void): Promise<TaskResult>
  close(): void
}

const WORKER_ENTRY = new URL('../bin/policy-worker.js', import.meta.url)


/** The error a worker reported, as a `SimulatorError` (with its code when it had one). */
function workerError(m: Extract<WorkerMessage, { type: 'error' }>, what: string): SimulatorError {
  const code = SimulatorErrorCodes.find((x) => x === m.code)
  return code ? new SimulatorError(code, m.message) : new SimulatorError('Internal', `${what} failed in its worker: ${m.stack ?? m.message}`)
}

/** Settles a task from the worker's messages: relays progress, resolves on `done`, rejects on `error`. */
function onWorkerMessage(task: WorkerTask, onProgress: (virtualMs: number) => void, resolve: (r: TaskResult) => void, reject: (e: Error) => void) {
  return (m: WorkerMessage): boolean => {
    if (m.type === 'progress') {
      onProgress(m.virtualMs)
      return false
    }
    if (m.type === 'done') resolve({ run: m.run, finalState: m.finalState, exported: m.exported })
    else if (m.type === 'error') reject(workerError(m, `policy ${task.policy}`))
    else reject(new SimulatorError('Internal', `policy ${task.policy}: unexpected '${m.type}' from its worker`))
    return true
  }
}

/** A worker thread (`bin/policy-worker.js`) for one task; its handlers are attached from the start, so a failure before the task is kept for it. */
class ThreadWorker {
  private readonly worker = new Worker(WORKER_ENTRY, { workerData: THREAD_WORKER_DATA })
  private settle: ((m: WorkerMessage) => boolean) | undefined
  private fail: ((e: Error) => void) | undefined
  private failure: Error | undefined

  constructor() {
    this.worker.on('message', (m: WorkerMessage) => void this.settle?.(m))
    const failed = (error: Error) => {
      this.failure ??= error
      this.fail?.(error)
    }
    this.worker.on('error', (error) => failed(new SimulatorError('Internal', `worker thread failed: ${error.message}`, { cause: error })))
    this.worker.on('exit', (code) => failed(new SimulatorError('Internal', `worker thread exited (${code}) before reporting`)))
  }

  run(task: WorkerTask, onProgress: (virtualMs: number) => void): Promise<TaskResult> {
    return this.request<TaskResult>(task, (resolve, reject) => onWorkerMessage(task, onProgress, resolve, reject))
  }

  /** The columns of mailboxes [from, to) of the workload `options` generate, built in this thread. */
  generate(options: GeneratorOptions, from: number, to: number): Promise<EventColumns> {
    return this.request<EventColumns>({ type: 'generate', options, from, to } satisfies GenerateRequest, (resolve, reject) => (m) => {
      if (m.type === 'generated') resolve(m.columns)
      else if (m.type === 'error') reject(workerError(m, 'generating the workload'))
      else return false
      return true
    })
  }

  /** Sends `message`; the promise settles as `settler`'s handler decides (it returns true once it has), or when the thread fails. */
  private request<T>(message: WorkerTask | GenerateRequest, settler: (resolve: (value: T) => void, reject: (e: Error) => void) => (m: WorkerMessage) => boolean): Promise<T> {
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      this.settle = settler(resolve, reject)
      this.fail = reject
      this.worker.postMessage(message)
    })
  }

  close(): void {
    this.settle = undefined
    this.fail = undefined
    void this.worker.terminate()
  }
}

/**
 * Runs each task in a fresh worker thread, ended after the task: a run starts on an empty heap, and a workload held
 * in `SharedArrayBuffer`s is shared, not copied. The first thread starts right away, so it loads its modules while
 * the parent generates the workload. (Reusing a thread for the next run measured no different since session 14
 * fixed the compiles a second run used to lose: see `stubRun` in run-stub.ts.)
 */
export class ThreadRunner implements Runner {
  private spare: ThreadWorker | undefined = new ThreadWorker()
  private current: ThreadWorker | undefined

  async run(task: WorkerTask, onProgress: (virtualMs: number) => void): Promise<TaskResult> {
    const worker = (this.current = this.spare ?? new ThreadWorker())
    this.spare = undefined
    try {
      return await worker.run(task, onProgress)
    } finally {
      worker.close()
      this.current = undefined
    }
  }

  /** Generates part of a workload in the thread that will run this runner's next task (see `generateColumns`). */
  generate(options: GeneratorOptions, from: number, to: number): Promise<EventColumns> {
    return (this.spare ??= new ThreadWorker()).generate(options, from, to)
  }

  close(): void {
    this.current?.close()
    this.spare?.close()
  }
}

/** A child process (`bin/policy-worker.js`) that runs policies one after the other, relaying progress. */
export class ChildRunner implements Runner {
  private readonly child: ChildProcess
  private current: { task: WorkerTask; onProgress: (virtualMs: number) => void; resolve: (r: TaskResult) => void; reject: (e: Error) => void } | undefined
  private failure: Error | undefined

  constructor() {
    this.child = fork(fileURLToPath(WORKER_ENTRY), [], {
      serialization: 'advanced',
      execArgv: [...POLICY_PROCESS_FLAGS],
      env: { ...process.env, CONCORD_SIM_WORKER: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    this.child.on('message', (m: WorkerMessage) => {
      const c = this.current
      if (c && onWorkerMessage(c.task, c.onProgress, c.resolve, c.reject)(m)) this.current = undefined
    })
    const fail = (error: Error) => {
      this.failure ??= error
      const c = this.current
      this.current = undefined
      c?.reject(error)
    }
    this.child.on('error', (error) => fail(new SimulatorError('Internal', `worker process failed: ${error.message}`, { cause: error })))
    this.child.on('exit', (code, signal) => fail(new SimulatorError('Internal', `worker process exited (${signal ?? code}) before reporting`)))
  }

  run(task: WorkerTask, onProgress: (virtualMs: number) => void): Promise<TaskResult> {
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      this.current = { task, onProgress, resolve, reject }
      this.child.send(task)
    })
  }

  close(): void {
    if (this.child.connected) this.child.disconnect()
  }
}
