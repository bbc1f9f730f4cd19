/**
 * The scheduler loop in real time: asks the scheduler which mailboxes are due, runs their syncs (at most
 * `maxConcurrent` at once, one per mailbox), and reports each result back. A slow or throttled mailbox
 * only occupies its own slot; the others keep going. `stop()` stops dispatching, signals running syncs to
 * end at their next atomic step, and waits for them.
 */
import { setMaxListeners } from 'node:events'
import type { Logger } from '@concord/engine'
import { type DueSync, type PollResult, type Scheduler, type SchedulerConfigInput, createScheduler } from '@concord/scheduler'

export interface SyncRunResult {
  poll: Omit<PollResult, 'at'>
  /** Remove the mailbox from scheduling (it was disabled). */
  remove?: boolean | undefined
}

export interface SyncLoopOptions {
  scheduler: SchedulerConfigInput
  maxConcurrent: number
  now?: (() => number) | undefined
  logger: Logger
  run: (due: DueSync, signal: AbortSignal) => Promise<SyncRunResult>
}

const MAX_SLEEP_MS = 1_000

export class SyncLoop {
  readonly scheduler: Scheduler
  private readonly now: () => number
  private readonly running = new Map<string, Promise<void>>()
  private readonly abort = new AbortController()
  private timer: NodeJS.Timeout | undefined
  private started = false
  private stopped = false

  constructor(private readonly options: SyncLoopOptions) {
    // Every running sync hands this stop signal down, and each of its in-flight requests holds one abort
    // listener on it until the request settles (adapter-crm's linkedSignal): with many mailboxes syncing at
    // once that is more than Node's default warning threshold of 10, without any leak.
    setMaxListeners(1000, this.abort.signal)
    this.now = options.now ?? Date.now
    this.scheduler = createScheduler({ staggerInitial: false, ...options.scheduler })
  }

  /** Registers a mailbox; its first sync is due at once unless `firstSyncAt` is later. */
  add(mailboxId: string, info: { requestsPerSync: number; firstSyncAt?: number | undefined }): void {
    if (this.scheduler.hasMailbox(mailboxId)) return
    this.scheduler.addMailbox(mailboxId, this.now(), { requestsPerSync: info.requestsPerSync, firstSyncAt: info.firstSyncAt ?? this.now() })
    this.wake()
  }

  remove(mailboxId: string): void {
    if (this.scheduler.hasMailbox(mailboxId)) this.scheduler.removeMailbox(mailboxId)
  }

  has(mailboxId: string): boolean {
    return this.scheduler.hasMailbox(mailboxId)
  }

  /** A change notification (or a manual "sync now"): the scheduler syncs it within its debounce. */
  notify(mailboxId: string): void {
    if (!this.scheduler.hasMailbox(mailboxId)) return
    this.scheduler.recordNotification(mailboxId, this.now())
    this.wake()
  }

  /** The CRM has `count` writes waiting for this mailbox (e.g. emails to send). */
  pendingCrmWrites(mailboxId: string, count: number): void {
    if (!this.scheduler.hasMailbox(mailboxId)) return
    this.scheduler.setPendingCrmWrites(mailboxId, count, this.now())
    this.wake()
  }

  isRunning(mailboxId: string): boolean {
    return this.running.has(mailboxId)
  }

  start(): void {
    if (this.started) return
    this.started = true
    this.wake()
  }

  /** Stops dispatching and waits for running syncs to end (they see an aborted signal). */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.abort.abort()
    await Promise.allSettled([...this.running.values()])
  }

  /** Resolves when no sync is running (tests, graceful shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()])
  }

  private wake(): void {
    if (!this.started || this.stopped) return
    if (this.timer) clearTimeout(this.timer)
    this.timer = setTimeout(() => this.pump(), 0)
  }

  private pump(): void {
    this.timer = undefined
    if (this.stopped) return
    const free = this.options.maxConcurrent - this.running.size
    if (free > 0) {
      for (const due of this.scheduler.due(this.now(), free)) this.dispatch(due)
    }
    const next = this.scheduler.nextWakeAt()
    const sleep = next === null ? MAX_SLEEP_MS : Math.min(MAX_SLEEP_MS, Math.max(10, next - this.now()))
    this.timer = setTimeout(() => this.pump(), sleep)
  }

  private dispatch(due: DueSync): void {
    const id = due.mailboxId
    const task = (async () => {
      let result: SyncRunResult
      try {
        result = await this.options.run(due, this.abort.signal)
      } catch (error) {
        this.options.logger.error({ mailboxId: id, err: error }, 'sync run failed unexpectedly')
        result = { poll: { error: true } }
      }
      if (!this.scheduler.hasMailbox(id)) return
      if (result.remove) this.scheduler.removeMailbox(id)
      else this.scheduler.recordPoll(id, { ...result.poll, at: this.now() })
    })().finally(() => {
      this.running.delete(id)
      this.wake()
    })
    this.running.set(id, task)
  }
}
