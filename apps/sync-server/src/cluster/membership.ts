/**
 * Cluster membership: each instance heartbeats into a Redis sorted set scored by Redis' own clock; the
 * live members are those seen within the member TTL. One script does heartbeat, expiry and listing, so
 * every instance sees the same list at the same Redis time.
 */
import type { Redis } from 'ioredis'
import type { ClusterKeys } from './redis-leases.js'

const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], now, ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)`

const LEAVE = `redis.call('ZREM', KEYS[1], ARGV[1]) return 1`

interface MembershipScripts {
  concordHeartbeat(key: string, member: string, ttlMs: number): Promise<string[]>
  concordLeave(key: string, member: string): Promise<number>
}

export class Membership {
  private readonly redis: Redis & MembershipScripts

  constructor(
    redis: Redis,
    private readonly keys: ClusterKeys,
    readonly member: string,
    private readonly ttlMs: number,
  ) {
    this.redis = redis as Redis & MembershipScripts
    if (typeof this.redis.concordHeartbeat !== 'function') {
      redis.defineCommand('concordHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT })
      redis.defineCommand('concordLeave', { numberOfKeys: 1, lua: LEAVE })
    }
  }

  /** Records this instance as alive and returns the live members, sorted. */
  async heartbeat(): Promise<string[]> {
    return (await this.redis.concordHeartbeat(this.keys.members(), this.member, this.ttlMs)).sort()
  }

  /** The live members without heartbeating (e.g. for a read-only cluster view). */
  async list(): Promise<string[]> {
    return (await this.redis.concordHeartbeat(this.keys.members(), '', this.ttlMs)).sort()
  }

  async leave(): Promise<void> {
    await this.redis.concordLeave(this.keys.members(), this.member)
  }
}
