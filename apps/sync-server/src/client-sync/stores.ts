/**
 * Client-sync state on the server's LevelDB (one sublevel): per-user client tokens (stored hashed),
 * the designated sync client with its fencing token, and personal sync intervals. Every value is JSON,
 * parsed with zod on read (a corrupt value is an error naming the key).
 *
 * Atomicity: writes of one user are serialised in-process (`KeyedMutex`), every change is one LevelDB
 * batch, and designation writes are fenced by the user's client-sync lease (`UserLeases`, through the
 * server's `LeaseManager`), so with a shared LeaseManager (Redis) two processes never write one user's
 * designation at once. A multi-process deployment whose state is not shared must in addition keep the
 * designation itself in shared storage (e.g. an atomic `INCR concord:fence:<userId>` + write in one
 * `EVAL`), so both processes read the same current designation.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { Designation, DesignationStore, IntervalStore } from '@concord/adapter-outlook'
import type { StoreDatabase } from '@concord/engine'
import { z } from 'zod'
import { ServerError } from '../errors.js'
import type { UserLeases } from './user-leases.js'

/** Serialises async work per key (one user's designation changes, token changes). */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>()

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve()
    const run = previous.then(fn, fn)
    const settled = run.catch(() => undefined)
    this.tails.set(key, settled)
    void settled.then(() => {
      if (this.tails.get(key) === settled) this.tails.delete(key)
    })
    return run
  }
}

async function getJson<T>(db: StoreDatabase, key: string, schema: z.ZodType<T>): Promise<T | undefined> {
  const raw = await db.get(key)
  if (raw === undefined) return undefined
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch (error) {
    throw new ServerError('Internal', `client-sync state ${key} is not JSON`, { cause: error })
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new ServerError('Internal', `client-sync state ${key} is malformed: ${parsed.error.issues[0]?.message}`, { cause: parsed.error })
  return parsed.data
}

const DesignationSchema = z.strictObject({ clientId: z.string().min(1), fencingToken: z.number().int().positive() })
/** The highest fencing token ever given to the user, kept apart so tokens stay increasing. */
const FenceSchema = z.number().int().nonnegative()

/**
 * `DesignationStore` on LevelDB: `d!<userId>` the designation, `f!<userId>` the last fencing token.
 * With `leases`, every write happens under the user's client-sync lease and checks its fence just
 * before the batch (`LeaseLostError` when the lease was lost; `unavailable` when another server holds it).
 */
export class LevelDesignationStore implements DesignationStore {
  private readonly lock = new KeyedMutex()

  constructor(
    private readonly db: StoreDatabase,
    private readonly leases?: UserLeases | undefined,
  ) {}

  current(userId: string): Promise<Designation | undefined> {
    return getJson(this.db, `d!${userId}`, DesignationSchema)
  }

  designate(userId: string, clientId: string): Promise<Designation> {
    return this.lock.run(userId, () => this.leased(userId, (assertHeld) => this.write(userId, clientId, assertHeld)))
  }

  /** Callers queue in call order; only a user without a designation takes the lease to write one. */
  claimIfUnassigned(userId: string, clientId: string): Promise<Designation> {
    return this.lock.run(userId, async () => (await this.current(userId)) ?? this.leased(userId, (assertHeld) => this.write(userId, clientId, assertHeld)))
  }

  /** Runs a write under the user's lease (shared with a sync running in this process), when fenced. */
  private leased<T>(userId: string, fn: (assertHeld: () => void) => Promise<T>): Promise<T> {
    const leases = this.leases
    if (!leases) return fn(() => undefined)
    return leases.run(userId, (fence) => fn(() => fence.assertHeld()))
  }

  /** Only under the user's lock (and lease). */
  private async write(userId: string, clientId: string, assertHeld: () => void): Promise<Designation> {
    const last = (await getJson(this.db, `f!${userId}`, FenceSchema)) ?? 0
    const next: Designation = { clientId, fencingToken: last + 1 }
    assertHeld()
    await this.db.batch([
      { type: 'put', key: `f!${userId}`, value: JSON.stringify(next.fencingToken) },
      { type: 'put', key: `d!${userId}`, value: JSON.stringify(next) },
    ])
    return next
  }
}

const MinutesSchema = z.number().positive()

/** `IntervalStore` on LevelDB: `i!<userId>`. */
export class LevelIntervalStore implements IntervalStore {
  constructor(private readonly db: StoreDatabase) {}

  get(userId: string): Promise<number | undefined> {
    return getJson(this.db, `i!${userId}`, MinutesSchema)
  }

  async set(userId: string, minutes: number): Promise<void> {
    MinutesSchema.parse(minutes)
    await this.db.put(`i!${userId}`, JSON.stringify(minutes))
  }
}

export const ClientTokenInfoSchema = z.strictObject({
  tokenId: z.string().min(1),
  userId: z.string().min(1),
  createdAt: z.number(),
  label: z.string().optional(),
  /** Epoch ms after which the token no longer authenticates (absent: until revoked). */
  expiresAt: z.number().optional(),
})
export type ClientTokenInfo = z.infer<typeof ClientTokenInfoSchema>

const TOKEN_PREFIX = 'cct_'

/** SHA-256 (hex) of a client token: the only form in which a token is stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/**
 * Per-user client tokens. `t!<sha256>` → info (authentication), `u!<userId>!<tokenId>` → sha256
 * (listing and revocation). The token itself is returned once, when it is issued, and never stored.
 */
export class ClientTokenStore {
  private readonly lock = new KeyedMutex()

  constructor(
    private readonly db: StoreDatabase,
    private readonly now: () => number = Date.now,
  ) {}

  issue(userId: string, options: { label?: string | undefined; ttlMs?: number | undefined } = {}): Promise<{ token: string; info: ClientTokenInfo }> {
    return this.lock.run(userId, async () => {
      const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`
      const createdAt = this.now()
      const info: ClientTokenInfo = {
        tokenId: randomUUID(),
        userId,
        createdAt,
        ...(options.label !== undefined ? { label: options.label } : {}),
        ...(options.ttlMs !== undefined ? { expiresAt: createdAt + options.ttlMs } : {}),
      }
      const hash = hashToken(token)
      await this.db.batch([
        { type: 'put', key: `t!${hash}`, value: JSON.stringify(info) },
        { type: 'put', key: `u!${userId}!${info.tokenId}`, value: hash },
      ])
      return { token, info }
    })
  }

  /** The token's user, or undefined for an unknown, revoked or expired token. */
  async authenticate(token: string): Promise<ClientTokenInfo | undefined> {
    if (!token.startsWith(TOKEN_PREFIX)) return undefined
    const info = await getJson(this.db, `t!${hashToken(token)}`, ClientTokenInfoSchema)
    if (info?.expiresAt !== undefined && this.now() >= info.expiresAt) return undefined
    return info
  }

  async list(userId: string): Promise<ClientTokenInfo[]> {
    const out: ClientTokenInfo[] = []
    for await (const hash of this.db.values({ gt: `u!${userId}!`, lt: `u!${userId}!\uffff` })) {
      const info = await getJson(this.db, `t!${hash}`, ClientTokenInfoSchema)
      if (info) out.push(info)
    }
    return out.sort((a, b) => a.createdAt - b.createdAt)
  }

  /** Revokes one token (or all of the user's when `tokenId` is undefined); returns the revoked hashes. */
  revoke(userId: string, tokenId?: string): Promise<string[]> {
    return this.lock.run(userId, async () => {
      const entries: Array<[string, string]> = []
      if (tokenId !== undefined) {
        const hash = await this.db.get(`u!${userId}!${tokenId}`)
        if (hash !== undefined) entries.push([`u!${userId}!${tokenId}`, hash])
      } else {
        for await (const [key, hash] of this.db.iterator({ gt: `u!${userId}!`, lt: `u!${userId}!\uffff` })) entries.push([key, hash])
      }
      if (entries.length === 0) return []
      await this.db.batch(entries.flatMap(([key, hash]) => [
        { type: 'del' as const, key },
        { type: 'del' as const, key: `t!${hash}` },
      ]))
      return entries.map(([, hash]) => hash)
    })
  }
}
