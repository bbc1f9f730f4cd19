/**
 * Leases with fencing tokens in Redis: the cluster's `LeaseManager`. A lease is a hash `{holder, token}`
 * with a TTL on Redis' clock; tokens come from a per-key counter that never goes back, so a write stamped
 * with an older token is recognisably stale. Every operation is one Lua script, hence atomic.
 *
 * `expiresAt` is on the caller's clock, counted from before the request was sent: the holder believes
 * its lease ends no later than Redis does, so `Fence` (with its margin) stops it writing first.
 */
import type { Redis } from 'ioredis'
import type { Lease, LeaseManager } from '../lease.js'

const ACQUIRE = `
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1] then return nil end
local token = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return token`

const RENEW = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`

const RELEASE = `
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1`

const CURRENT = `
local v = redis.call('HMGET', KEYS[1], 'holder', 'token')
if not v[1] then return nil end
return {v[1], v[2], redis.call('PTTL', KEYS[1])}`

/**
 * A batch applied only while `token` is the lease's current token: KEYS = lease, hash;
 * ARGV = token, number of puts n, n field/value pairs, then the fields to delete.
 */
const FENCED_HSET = `
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return redis.error_reply('FENCED token ' .. ARGV[1] .. ' is not the current token of ' .. KEYS[1])
end
local n = tonumber(ARGV[2])
for i = 3, 2 + 2 * n, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
for i = 3 + 2 * n, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
return 1`

interface LeaseScripts {
  concordLeaseAcquire(lease: string, counter: string, holder: string, ttlMs: number): Promise<number | null>
  concordLeaseRenew(lease: string, token: string, ttlMs: number): Promise<number>
  concordLeaseRelease(lease: string, token: string): Promise<number>
  concordLeaseCurrent(lease: string): Promise<[string, string, number] | null>
  concordFencedHset(lease: string, hash: string, ...args: (string | number)[]): Promise<number>
}

export type ScriptedRedis = Redis & LeaseScripts

/** Registers the lease scripts on a connection (idempotent). */
export function withLeaseScripts(redis: Redis): ScriptedRedis {
  const r = redis as ScriptedRedis
  if (typeof r.concordLeaseAcquire === 'function') return r
  redis.defineCommand('concordLeaseAcquire', { numberOfKeys: 2, lua: ACQUIRE })
  redis.defineCommand('concordLeaseRenew', { numberOfKeys: 1, lua: RENEW })
  redis.defineCommand('concordLeaseRelease', { numberOfKeys: 1, lua: RELEASE })
  redis.defineCommand('concordLeaseCurrent', { numberOfKeys: 1, lua: CURRENT })
  redis.defineCommand('concordFencedHset', { numberOfKeys: 2, lua: FENCED_HSET })
  return r
}

/** Key layout of one cluster. The hash tag keeps a lease and the state it fences in one Redis Cluster slot. */
export class ClusterKeys {
  constructor(readonly cluster: string) {}
  lease(key: string): string {
    return `concord:{${this.cluster}/${key}}:lease`
  }
  tokenCounter(key: string): string {
    return `concord:{${this.cluster}/${key}}:token`
  }
  /** The state a lease fences (a shard's key/value store). */
  state(key: string): string {
    return `concord:{${this.cluster}/${key}}:state`
  }
  members(): string {
    return `concord:{${this.cluster}}:members`
  }
  queuePrefix(): string {
    return `concord:{${this.cluster}}:bull`
  }
  ratePrefix(): string {
    return `concord:{${this.cluster}}:rate`
  }
}

export class RedisLeases implements LeaseManager {
  private readonly redis: ScriptedRedis

  constructor(
    redis: Redis,
    readonly keys: ClusterKeys,
    private readonly now: () => number = Date.now,
  ) {
    this.redis = withLeaseScripts(redis)
  }

  async acquire(key: string, holder: string, ttlMs: number): Promise<Lease | null> {
    const sentAt = this.now()
    const token = await this.redis.concordLeaseAcquire(this.keys.lease(key), this.keys.tokenCounter(key), holder, ttlMs)
    return token === null ? null : { key, holder, token: Number(token), expiresAt: sentAt + ttlMs }
  }

  async renew(lease: Lease, ttlMs: number): Promise<Lease | null> {
    const sentAt = this.now()
    const ok = await this.redis.concordLeaseRenew(this.keys.lease(lease.key), String(lease.token), ttlMs)
    return ok === 1 ? { ...lease, expiresAt: sentAt + ttlMs } : null
  }

  async release(lease: Lease): Promise<void> {
    await this.redis.concordLeaseRelease(this.keys.lease(lease.key), String(lease.token))
  }

  async current(key: string): Promise<Lease | null> {
    const at = this.now()
    const v = await this.redis.concordLeaseCurrent(this.keys.lease(key))
    if (!v) return null
    const [holder, token, pttl] = v
    return { key, holder, token: Number(token), expiresAt: at + Math.max(0, Number(pttl)) }
  }
}
