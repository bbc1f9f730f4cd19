/**
 * A shard's state, owned by Redis and cached in the owner's memory (the Kafka Streams model: local state
 * plus a changelog, here the changelog IS the state). Every write of the shard's engine stores, server
 * state and CRM feed goes first to Redis through a Lua script that applies it only while the writer's
 * fencing token is the shard lease's current one, then to the in-memory copy. A paused or partitioned
 * old owner therefore cannot change the shard after losing it, and the next owner loads exactly what
 * was committed: failover and rebalancing move the state, never resync it.
 *
 * A batch is one script call, so it is atomic in Redis as the engine expects of LevelDB batches.
 */
import { MemoryLevel } from 'memory-level'
import { LeaseLostError } from '../errors.js'
import type { Fence } from '../lease.js'
import type { ClusterKeys, ScriptedRedis } from './redis-leases.js'

type Op = { type: 'put'; key: string; value: string } | { type: 'del'; key: string }

/** The storage hooks abstract-level calls (not in its public typings). */
interface StorageHooks {
  _put(key: string, value: string, options: object): Promise<void>
  _del(key: string, options: object): Promise<void>
  _batch(operations: Op[], options: object): Promise<void>
  _clear(options: object): Promise<void>
}
const memory = MemoryLevel.prototype as unknown as StorageHooks

export interface ShardStoreOptions {
  redis: ScriptedRedis
  keys: ClusterKeys
  /** The shard's lease key (e.g. `shard-3`). */
  leaseKey: string
  /** The holder's view of the shard lease: checked before each write, its token sent with it. */
  fence: Fence
  /** Writes refused by Redis because the token was stale (for metrics and tests). */
  onFenced?: (() => void) | undefined
}

const LOAD_PAGE = 1_000

export class FencedShardStore extends MemoryLevel<string, string> {
  private readonly o: ShardStoreOptions
  private loading = false

  constructor(options: ShardStoreOptions) {
    super({ keyEncoding: 'utf8', valueEncoding: 'utf8', storeEncoding: 'utf8' })
    this.o = options
  }

  /** Opens the store and loads the shard's committed state from Redis. */
  static async load(options: ShardStoreOptions): Promise<FencedShardStore> {
    const store = new FencedShardStore(options)
    await store.open()
    store.loading = true
    try {
      let cursor = '0'
      do {
        const [next, flat] = await options.redis.hscan(options.keys.state(options.leaseKey), cursor, 'COUNT', LOAD_PAGE)
        cursor = next
        const ops: Op[] = []
        for (let i = 0; i + 1 < flat.length; i += 2) ops.push({ type: 'put', key: flat[i]!, value: flat[i + 1]! })
        if (ops.length > 0) await store.batch(ops as never)
      } while (cursor !== '0')
    } finally {
      store.loading = false
    }
    return store
  }

  private async commit(puts: [string, string][], dels: string[]): Promise<void> {
    if (this.loading) return
    const fence = this.o.fence
    fence.assertHeld()
    const args: string[] = [String(fence.token), String(puts.length)]
    for (const [k, v] of puts) args.push(k, v)
    args.push(...dels)
    try {
      await this.o.redis.concordFencedHset(this.o.keys.lease(this.o.leaseKey), this.o.keys.state(this.o.leaseKey), ...args)
    } catch (error) {
      if (error instanceof Error && error.message.includes('FENCED')) {
        this.o.onFenced?.()
        throw new LeaseLostError(`shard ${this.o.leaseKey}: a write with fencing token ${fence.token} was refused (${error.message})`)
      }
      throw error
    }
  }

  async _put(key: string, value: string, options: object): Promise<void> {
    await this.commit([[key, value]], [])
    return memory._put.call(this, key, value, options)
  }

  async _del(key: string, options: object): Promise<void> {
    await this.commit([], [key])
    return memory._del.call(this, key, options)
  }

  async _batch(operations: Op[], options: object): Promise<void> {
    const puts: [string, string][] = []
    const dels: string[] = []
    for (const op of operations) {
      if (op.type === 'put') puts.push([op.key, op.value])
      else dels.push(op.key)
    }
    await this.commit(puts, dels)
    return memory._batch.call(this, operations, options)
  }

  async _clear(options: Record<string, unknown>): Promise<void> {
    if (!this.loading) {
      const range: Record<string, unknown> = {}
      for (const k of ['gt', 'gte', 'lt', 'lte', 'reverse', 'limit']) if (options[k] !== undefined) range[k] = options[k]
      const keys = await this.keys(range).all()
      if (keys.length > 0) await this.commit([], keys)
    }
    return memory._clear.call(this, options)
  }
}
