/**
 * A shard's job queue (BullMQ). The shard owner's scheduler decides when a mailbox is due; the sync then
 * runs as a BullMQ job `sync-<mailboxId>` — the job id makes it one per mailbox cluster-wide (a second
 * dispatch while one is queued or running joins it). Change notifications received by ANY instance are
 * enqueued as `notify` jobs on the owning shard's queue. Only the shard's owner runs a worker on it,
 * and every job first checks the shard fence: a job taken by an old owner after it lost the shard fails
 * and is retried by the new owner. A job whose worker died mid-run is recovered by BullMQ's stalled-job
 * check once its lock (one lease period) expires, so a kill -9 mid-cycle loses no sync.
 */
import type { DueSync } from '@concord/scheduler'
import { type ConnectionOptions, type Job, Queue, Worker } from 'bullmq'
import type { Logger as PinoLogger } from 'pino'
import { LeaseLostError } from '../errors.js'
import { settlesWithin } from '../util/deadline.js'
import type { Fence } from '../lease.js'
import type { SyncRunResult } from '../sync-loop.js'

export interface SyncJobData {
  mailboxId: string
  reason: string
}
export interface NotifyJobData {
  mailboxId: string
  body: unknown
}

type Run = (due: DueSync, signal: AbortSignal) => Promise<SyncRunResult>

export interface ShardJobsOptions {
  connection: ConnectionOptions
  prefix: string
  shard: number
  fence: Fence
  concurrency: number
  /** Job lock duration: a job whose worker stopped renewing it is recovered after this (one lease period). */
  lockDurationMs: number
  logger: PinoLogger
  /** A notification body for one of the shard's mailboxes (checked against its subscriptions). */
  notify: (mailboxId: string, body: unknown) => Promise<void>
  /** A sync job vanished without running (e.g. Redis lost it in a restart): ask for the mailbox again. */
  resync: (mailboxId: string) => void
}

export function shardQueueName(shard: number): string {
  return `shard-${shard}`
}

const JOB_DEFAULTS = { removeOnComplete: true, removeOnFail: true, attempts: 5, backoff: { type: 'fixed', delay: 1_000 } } as const

export class ShardJobs {
  private readonly queue: Queue
  private readonly worker: Worker
  private readonly waiters = new Map<string, { resolve: (r: SyncRunResult) => void; signal: AbortSignal; due: DueSync; watchdog: NodeJS.Timeout }>()
  private readonly abort = new AbortController()
  private run: Run | undefined

  constructor(private readonly o: ShardJobsOptions) {
    const name = shardQueueName(o.shard)
    this.queue = new Queue(name, { connection: o.connection, prefix: o.prefix })
    this.worker = new Worker(name, (job) => this.process(job), {
      connection: o.connection,
      prefix: o.prefix,
      concurrency: o.concurrency,
      lockDuration: o.lockDurationMs,
      stalledInterval: Math.max(1_000, Math.floor(o.lockDurationMs / 2)),
      maxStalledCount: 100,
      autorun: true,
    })
    this.worker.on('error', (error) => o.logger.warn({ shard: o.shard, err: error }, 'shard job worker error'))
    this.queue.on('error', (error) => o.logger.warn({ shard: o.shard, err: error }, 'shard job queue error'))
    this.worker.on('failed', (job, error) => {
      if (!job || job.name !== 'sync') return
      if (job.attemptsMade < (job.opts.attempts ?? 1)) return
      this.settle(job.id!, { poll: { error: true } })
      o.logger.warn({ shard: o.shard, jobId: job.id, err: error }, 'a sync job failed for good')
    })
  }

  /** The `SyncServer.dispatch` hook: the due sync becomes the mailbox's job; resolves with its result. */
  dispatch = (due: DueSync, signal: AbortSignal, run: Run): Promise<SyncRunResult> => {
    this.run = run
    const jobId = `sync-${due.mailboxId}` // BullMQ ids may not contain ':'
    return new Promise<SyncRunResult>((resolve) => {
      // A job can vanish (Redis restarted and lost it): the scheduler must not wait for it forever.
      const watchdog = setInterval(() => {
        this.queue
          .getJobState(jobId)
          .then((state) => {
            if (state !== 'unknown' || !this.waiters.has(jobId)) return
            this.o.logger.warn({ shard: this.o.shard, mailboxId: due.mailboxId }, 'a sync job vanished from the queue; asking for the mailbox again')
            this.settle(jobId, { poll: {} })
            this.o.resync(due.mailboxId)
          })
          .catch(() => {})
      }, this.o.lockDurationMs)
      this.waiters.set(jobId, { resolve, signal, due, watchdog })
      // Stopping the shard must not wait for a job no worker here will take: it stays queued for the next owner.
      signal.addEventListener('abort', () => this.settle(jobId, { poll: {} }), { once: true })
      this.queue.add('sync', { mailboxId: due.mailboxId, reason: due.reason } satisfies SyncJobData, { ...JOB_DEFAULTS, jobId }).catch((error: unknown) => {
        this.o.logger.warn({ shard: this.o.shard, mailboxId: due.mailboxId, err: error }, 'could not enqueue a sync job')
        this.settle(jobId, { poll: { error: true } })
      })
    })
  }

  private settle(jobId: string, result: SyncRunResult): void {
    const waiter = this.waiters.get(jobId)
    if (!waiter) return
    this.waiters.delete(jobId)
    clearInterval(waiter.watchdog)
    waiter.resolve(result)
  }

  private async process(job: Job): Promise<SyncRunResult | void> {
    if (!this.o.fence.held()) throw new LeaseLostError(`shard ${this.o.shard} is not held here; the job is retried by its owner`)
    if (job.name === 'notify') {
      const data = job.data as NotifyJobData
      await this.o.notify(data.mailboxId, data.body)
      return
    }
    const data = job.data as SyncJobData
    const waiter = this.waiters.get(job.id!)
    const run = this.run
    if (!run) throw new LeaseLostError(`shard ${this.o.shard} is not running yet`)
    // A job inherited from a previous owner has no waiter: it runs, and this owner's scheduler goes on.
    const due: DueSync = waiter?.due ?? ({ mailboxId: data.mailboxId, reason: data.reason } as DueSync)
    const result = await run(due, waiter?.signal ?? this.abort.signal)
    this.settle(job.id!, result)
    return result
  }

  /** Stops taking jobs; running ones see an aborted signal. Bounded: a close stuck on a dead Redis link is forced. */
  async close(graceMs = this.o.lockDurationMs): Promise<void> {
    this.abort.abort()
    for (const id of [...this.waiters.keys()]) this.settle(id, { poll: {} })
    if (!(await settlesWithin(Promise.allSettled([this.worker.close(), this.queue.close()]), graceMs))) {
      this.o.logger.warn({ shard: this.o.shard }, 'the shard queue did not close in time; forcing it')
      await settlesWithin(this.worker.close(true), 1_000)
    }
  }
}

/** Enqueues notifications for any shard (every instance receives webhooks, only owners process them). */
export class NotificationRouter {
  private readonly queues = new Map<number, Queue>()

  constructor(
    private readonly connection: ConnectionOptions,
    private readonly prefix: string,
    /** Connection errors (e.g. while Redis restarts); the queue reconnects by itself. */
    private readonly onError: (error: Error) => void,
  ) {}

  async enqueue(shard: number, data: NotifyJobData): Promise<void> {
    let queue = this.queues.get(shard)
    if (!queue) {
      queue = new Queue(shardQueueName(shard), { connection: this.connection, prefix: this.prefix })
      queue.on('error', (error) => this.onError(error))
      this.queues.set(shard, queue)
    }
    await queue.add('notify', data, JOB_DEFAULTS)
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()))
  }
}
