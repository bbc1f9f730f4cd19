/**
 * Single writer per mailbox: a lease with a fencing token. The holder checks its lease before every
 * storage write (`Fence.assertHeld`, wired into the store's `beforeWrite`), so a stale holder whose lease
 * expired or was taken over can never write. Tokens only grow per key, so a write stamped with an older
 * token is recognisably stale. `InProcessLeases` serves one process; a Redis implementation of the same
 * `LeaseManager` interface serves a cluster.
 */
import { LeaseLostError } from './errors.js'

export interface Lease {
  readonly key: string
  readonly holder: string
  /** Fencing token: strictly greater than every token issued for this key before. */
  readonly token: number
  /** Expiry on the lease manager's clock (ms). */
  readonly expiresAt: number
}

export interface LeaseManager {
  /** Takes the lease if it is free or expired; null if another holder has it. */
  acquire(key: string, holder: string, ttlMs: number): Promise<Lease | null>
  /** Extends a lease still held (same token); null if it was lost. */
  renew(lease: Lease, ttlMs: number): Promise<Lease | null>
  /** Gives the lease up (no-op if it was already lost). */
  release(lease: Lease): Promise<void>
  /** The current holder and token of `key`, if any live lease exists. */
  current(key: string): Promise<Lease | null>
}

export class InProcessLeases implements LeaseManager {
  private readonly leases = new Map<string, Lease>()
  private readonly lastToken = new Map<string, number>()
  constructor(private readonly now: () => number = Date.now) {}

  async acquire(key: string, holder: string, ttlMs: number): Promise<Lease | null> {
    const at = this.now()
    const held = this.leases.get(key)
    if (held && held.expiresAt > at && held.holder !== holder) return null
    const token = (this.lastToken.get(key) ?? 0) + 1
    this.lastToken.set(key, token)
    const lease: Lease = { key, holder, token, expiresAt: at + ttlMs }
    this.leases.set(key, lease)
    return lease
  }

  async renew(lease: Lease, ttlMs: number): Promise<Lease | null> {
    const at = this.now()
    const held = this.leases.get(lease.key)
    if (!held || held.token !== lease.token || held.expiresAt <= at) return null
    const renewed = { ...held, expiresAt: at + ttlMs }
    this.leases.set(lease.key, renewed)
    return renewed
  }

  async release(lease: Lease): Promise<void> {
    const held = this.leases.get(lease.key)
    if (held && held.token === lease.token) this.leases.delete(lease.key)
  }

  async current(key: string): Promise<Lease | null> {
    const held = this.leases.get(key)
    return held && held.expiresAt > this.now() ? held : null
  }
}

/**
 * The holder's view of its lease, checked synchronously before each write. A safety margin keeps a
 * holder from writing in the last moments of its lease, when its clock and the manager's may disagree.
 */
export class Fence {
  private lease: Lease | null = null
  constructor(
    private readonly now: () => number = Date.now,
    private readonly marginMs = 1_000,
  ) {}

  set(lease: Lease | null): void {
    this.lease = lease
  }

  get token(): number | null {
    return this.lease?.token ?? null
  }

  held(): boolean {
    return this.lease !== null && this.lease.expiresAt - this.marginMs > this.now()
  }

  assertHeld(): void {
    if (!this.held()) {
      throw new LeaseLostError(this.lease ? `lease on ${this.lease.key} (token ${this.lease.token}) expired or was lost` : 'no lease is held')
    }
  }
}
