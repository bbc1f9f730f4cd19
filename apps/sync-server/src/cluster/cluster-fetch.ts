/**
 * The fetch a cluster shard talks to Graph and the CRM with:
 * - fenced: the shard lease is checked right before every request, and the request carries the shard's
 *   fencing token (`X-Concord-Fence: shard-3:17`), so a stale owner stops at its next request and the
 *   far side (or a proxy in front of it) can see which owner sent what;
 * - budgeted cluster-wide: Redis-backed rate limits (rate-limiter-flexible) per app, per mailbox (Graph)
 *   and per CRM user, shared by every instance. Over budget, the request is not sent and a 429 with
 *   `Retry-After` comes back, so the adapters and the scheduler back off exactly as for a real 429.
 */
import type { Redis } from 'ioredis'
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import type { Fence } from '../lease.js'

export const FENCE_HEADER = 'x-concord-fence'

export interface Budget {
  requests: number
  perMs: number
}

export interface ClusterBudgets {
  /** All Graph requests of the application, across tenants' mailboxes and instances. */
  graphPerApp: Budget
  /** Graph per app + mailbox (10,000 / 10 min). */
  graphPerMailbox: Budget
  /** Dataverse per user (6,000 / 5 min), the application user included. */
  crmPerUser: Budget
}

export const DEFAULT_BUDGETS: ClusterBudgets = {
  graphPerApp: { requests: 1_000_000, perMs: 600_000 },
  graphPerMailbox: { requests: 10_000, perMs: 600_000 },
  crmPerUser: { requests: 6_000, perMs: 300_000 },
}

function limiter(redis: Redis, keyPrefix: string, budget: Budget): RateLimiterRedis {
  return new RateLimiterRedis({ storeClient: redis, keyPrefix, points: budget.requests, duration: Math.max(1, Math.ceil(budget.perMs / 1000)), rejectIfRedisNotReady: true })
}

/** Cluster-wide request budgets; `consume` resolves to 0 when a request may go, else the ms to wait. */
export class ClusterRateLimits {
  private readonly app: RateLimiterRedis
  private readonly mailbox: RateLimiterRedis
  private readonly crmUser: RateLimiterRedis

  constructor(redis: Redis, prefix: string, budgets: ClusterBudgets) {
    this.app = limiter(redis, `${prefix}:graph-app`, budgets.graphPerApp)
    this.mailbox = limiter(redis, `${prefix}:graph-mailbox`, budgets.graphPerMailbox)
    this.crmUser = limiter(redis, `${prefix}:crm-user`, budgets.crmPerUser)
  }

  async consumeGraph(mailbox: string | undefined): Promise<number> {
    const waits = await Promise.all([waitOf(this.app.consume('app')), mailbox ? waitOf(this.mailbox.consume(mailbox.toLowerCase())) : 0])
    return Math.max(...waits)
  }

  consumeCrm(user: string): Promise<number> {
    return waitOf(this.crmUser.consume(user))
  }
}

async function waitOf(p: Promise<RateLimiterRes>): Promise<number> {
  try {
    await p
    return 0
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) return Math.max(1, rejection.msBeforeNext)
    throw rejection
  }
}

/** The mailbox a Graph request addresses (`/users/{id-or-upn}/…`). */
export function graphMailboxOf(url: string): string | undefined {
  const m = /\/users\/([^/?#]+)/.exec(url)
  return m ? decodeURIComponent(m[1]!) : undefined
}

/** The CRM user a Dataverse request runs as (impersonation headers; else the application user). */
export function crmUserOf(headers: Headers): string {
  return headers.get('CallerObjectId') ?? headers.get('MSCRMCallerID') ?? 'application'
}

function throttledResponse(waitMs: number, side: 'graph' | 'crm'): Response {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000))
  const body =
    side === 'graph'
      ? { error: { code: 'TooManyRequests', message: `Concord cluster budget exhausted; retry after ${seconds} s` } }
      : { error: { code: '0x80072322', message: `Concord cluster budget exhausted; retry after ${seconds} s` } }
  return new Response(JSON.stringify(body), { status: 429, headers: { 'Content-Type': 'application/json', 'Retry-After': String(seconds) } })
}

export interface ClusterFetchOptions {
  base: typeof fetch
  fence: Fence
  shardKey: string
  side: 'graph' | 'crm'
  limits?: ClusterRateLimits | undefined
  /** Token endpoints are neither fenced nor budgeted (they change nothing and count for no mailbox). */
  isTokenRequest: (url: string) => boolean
}

export function clusterFetch(o: ClusterFetchOptions): typeof fetch {
  return (async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    if (o.isTokenRequest(url)) return o.base(input, init)
    o.fence.assertHeld()
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined))
    headers.set(FENCE_HEADER, `${o.shardKey}:${o.fence.token}`)
    if (o.limits) {
      const wait = o.side === 'graph' ? await o.limits.consumeGraph(graphMailboxOf(url)) : await o.limits.consumeCrm(crmUserOf(headers))
      if (wait > 0) return throttledResponse(wait, o.side)
      o.fence.assertHeld()
    }
    return o.base(input, { ...init, headers })
  }) as typeof fetch
}
