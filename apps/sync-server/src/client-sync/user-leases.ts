/**
 * Fencing of a user's client-sync state (the designated sync client and the client pair's engine store):
 * the state is written only under the user's lease `client-sync:<userId>`, taken through the server's
 * `LeaseManager` (in-process, or Redis in a cluster), and every write checks `Fence.assertHeld` first. So
 * two sync servers can never both change one user's designation or client pair.
 *
 * In one process the lease is shared: concurrent holders of the same user (a sync and a designation
 * change) use one lease, counted, renewed every third of its lifetime, and released by the last one.
 */
import { OutlookProtocolError } from '@concord/adapter-outlook'
import type { Logger } from '@concord/engine'
import { Fence, type Lease, type LeaseManager } from '../lease.js'

export interface UserLeasesOptions {
  leases: LeaseManager
  /** This process's identity as a lease holder. */
  holder: string
  /** Lease lifetime (ms); renewed every third of it while held. */
  ttlMs: number
  now?: (() => number) | undefined
  logger?: Logger | undefined
}

interface Held {
  lease: Lease
  fence: Fence
  users: number
  timer: NodeJS.Timeout | undefined
  /** Set when a renewal found the lease lost: the fence refuses every write from then on. */
  lost: boolean
}

/** The lease key of a user's client-sync state. */
export const clientSyncLeaseKey = (userId: string) => `client-sync:${userId}`

export class UserLeases {
  private readonly held = new Map<string, Held>()
  /** Acquisitions in progress, so concurrent first users of a user share one. */
  private readonly acquiring = new Map<string, Promise<Held>>()
  /** A fence per user, stable across leases, for stores that check it on every write. */
  private readonly fences = new Map<string, Fence>()
  private readonly now: () => number

  constructor(private readonly options: UserLeasesOptions) {
    this.now = options.now ?? Date.now
  }

  /** The user's fence: held only while some `run` for the user holds its lease. */
  fence(userId: string): Fence {
    let fence = this.fences.get(userId)
    if (!fence) this.fences.set(userId, (fence = new Fence(this.now, Math.min(1_000, Math.floor(this.options.ttlMs / 10)))))
    return fence
  }

  /**
   * Runs `fn` while this process holds the user's lease. Another holder → `unavailable` (retryable),
   * naming it; nothing is written.
   */
  async run<T>(userId: string, fn: (fence: Fence) => Promise<T>): Promise<T> {
    const held = await this.enter(userId)
    try {
      held.fence.assertHeld()
      return await fn(held.fence)
    } finally {
      await this.leave(userId, held)
    }
  }

  private async enter(userId: string): Promise<Held> {
    const existing = this.held.get(userId)
    if (existing && !existing.lost) {
      existing.users++
      return existing
    }
    let pending = this.acquiring.get(userId)
    if (!pending) {
      pending = this.acquire(userId).finally(() => this.acquiring.delete(userId))
      this.acquiring.set(userId, pending)
      const held = await pending
      return held
    }
    const held = await pending
    held.users++
    return held
  }

  private async acquire(userId: string): Promise<Held> {
    const key = clientSyncLeaseKey(userId)
    const lease = await this.options.leases.acquire(key, this.options.holder, this.options.ttlMs)
    if (!lease) {
      const other = await this.options.leases.current(key).catch(() => null)
      throw new OutlookProtocolError('unavailable', `the client-sync state of user ${userId} is held by another sync server${other ? ` (${other.holder})` : ''}; retry later`)
    }
    const fence = this.fence(userId)
    fence.set(lease)
    const held: Held = { lease, fence, users: 1, timer: undefined, lost: false }
    this.held.set(userId, held)
    this.scheduleRenewal(userId, held)
    return held
  }

  private scheduleRenewal(userId: string, held: Held): void {
    held.timer = setTimeout(() => {
      void this.options.leases.renew(held.lease, this.options.ttlMs).then(
        (renewed) => {
          if (this.held.get(userId) !== held) return
          if (!renewed) {
            held.lost = true
            held.fence.set(null)
            this.options.logger?.warn({ userId, token: held.lease.token }, 'the client-sync lease was lost; writes are refused')
            return
          }
          held.lease = renewed
          held.fence.set(renewed)
          this.scheduleRenewal(userId, held)
        },
        (error: unknown) => {
          // The manager is unreachable: keep the lease until it expires (the fence refuses writes then).
          this.options.logger?.warn({ userId, err: error }, 'renewing the client-sync lease failed')
          if (this.held.get(userId) === held) this.scheduleRenewal(userId, held)
        },
      )
    }, Math.max(1, Math.floor(this.options.ttlMs / 3)))
    held.timer.unref?.()
  }

  private async leave(userId: string, held: Held): Promise<void> {
    held.users--
    if (held.users > 0) return
    clearTimeout(held.timer)
    if (this.held.get(userId) === held) this.held.delete(userId)
    if (held.fence === this.fences.get(userId) && !this.held.has(userId)) held.fence.set(null)
    await this.options.leases.release(held.lease).catch((error: unknown) => this.options.logger?.warn({ userId, err: error }, 'releasing the client-sync lease failed'))
  }
}
