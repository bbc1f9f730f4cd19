/**
 * One Graph request from start to end: auth, mailbox resolution, injected faults, throttling,
 * routing, error envelope, latency and statistics. HTTP requests and $batch sub-requests both go
 * through `handle`.
 */
import { randomUUID } from 'node:crypto'
import { runBatch } from './batch.js'
import { sleep } from './clock.js'
import type { Core } from './core.js'
import { EmulatorError, GraphHttpError, badRequest, errorEnvelope } from './errors.js'
import { parsePrefer } from './odata/query.js'
import { Router, splitPath } from './router.js'
import type { Ctx, GraphRequest, GraphResponse, Handler } from './routes/context.js'
import { registerContainerRoutes } from './routes/containers.js'
import { registerItemRoutes } from './routes/items.js'
import { registerSendRoutes } from './routes/send.js'
import { registerSubscriptionRoutes } from './routes/subscriptions.js'
import type { Mailbox } from './store/types.js'

export function buildRouter(): Router<Handler> {
  const r = new Router<Handler>()
  registerSendRoutes(r)
  registerItemRoutes(r)
  registerContainerRoutes(r)
  registerSubscriptionRoutes(r)
  return r
}

function throttledBody(requestId: string, date: string): unknown {
  return {
    error: {
      code: 'TooManyRequests',
      innerError: { code: '429', date, message: 'Please retry after', 'request-id': requestId, status: '429' },
      message: 'Please retry again later.',
    },
  }
}

export class Pipeline {
  private readonly router = buildRouter()
  constructor(private readonly core: Core) {}

  async handle(req: GraphRequest): Promise<GraphResponse> {
    const core = this.core
    const requestId = randomUUID()
    // Graph always reports a client-request-id: the one sent, or the request id.
    const clientRequestId = req.headers['client-request-id'] ?? requestId
    const date = core.clock.iso()
    let throttleKey: string | undefined
    let throttled = false
    let mb: Mailbox | undefined
    let res: GraphResponse
    let inFlight = 0
    try {
      const segs = splitPath(req.path)
      const first = segs[0]?.toLowerCase()
      if (first === '$batch' && segs.length === 1 && !req.inBatch) {
        if (req.method !== 'POST') throw new GraphHttpError(405, 'Request_BadRequest', 'Only POST is supported on $batch.')
        const appId = core.auth.verify(req.headers['authorization'])
        void appId
        res = await runBatch(this, req)
      } else {
        const appId = core.auth.verify(req.headers['authorization'])
        if (first === 'me') throw badRequest('/me request is only valid with delegated authentication flow.')
        if (first === 'users' && segs.length >= 2) {
          mb = core.store.findMailbox(segs[1] as string)
          if (!mb) throw new GraphHttpError(404, 'ErrorInvalidUser', `The requested user '${segs[1]}' is invalid.`)
        }
        const forced = core.faults.takeForced(mb?.id)
        if (forced) {
          throttled = forced.status === 429
          const ra = forced.retryAfterSeconds
          const headers: Record<string, string> = ra === undefined ? {} : { 'retry-after': String(ra) }
          if (forced.status === 429) throw Object.assign(new GraphHttpError(429, 'TooManyRequests', 'Please retry again later.', { headers }), { throttle: true })
          throw new GraphHttpError(forced.status, forced.status === 503 ? 'ServiceUnavailable' : 'GatewayTimeout', forced.status === 503 ? 'Service Unavailable' : 'Gateway Timeout', { headers })
        }
        if (mb) {
          const key = `${appId}|${mb.id}`
          const upload =
            req.method === 'POST' || req.method === 'PATCH' || req.method === 'PUT'
              ? typeof req.body === 'string'
                ? Buffer.byteLength(req.body)
                : req.body === undefined
                  ? 0
                  : Buffer.byteLength(JSON.stringify(req.body))
              : 0
          const adm = core.throttle.acquire(key, upload)
          if (!adm.ok) {
            throttled = true
            const headers = { 'retry-after': String(adm.retryAfterSeconds) }
            if (adm.reason === 'rate') throw Object.assign(new GraphHttpError(429, 'TooManyRequests', 'Please retry again later.', { headers }), { throttle: true })
            throw new GraphHttpError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { headers })
          }
          throttleKey = key
          inFlight = core.throttle.inFlight(key)
        }
        const m = this.router.match(req.method, segs)
        if (m === 'method') throw new GraphHttpError(405, 'Request_BadRequest', `The HTTP method '${req.method}' is not allowed for '/${req.path}'.`)
        if (!m) throw badRequest(`Resource not found for the segment '${segs[segs.length - 1] ?? ''}'.`)
        const prefer = parsePrefer(req.headers['prefer'])
        const ctx: Ctx = { core, req, params: m.params, appId, prefer, immutable: prefer.immutableId, mailbox: mb }
        res = await m.handler(ctx)
        if (prefer.timeZone !== undefined && res.status < 400) {
          const tz = `outlook.timezone="${prefer.timeZone.name}"`
          const prev = res.headers['preference-applied']
          res.headers['preference-applied'] = prev ? `${prev}, ${tz}` : tz
        }
      }
    } catch (err) {
      res = this.errorResponse(err, requestId, clientRequestId, date)
    }
    const latency = core.options.latencyMs + core.faults.extraLatencyMs
    if (latency > 0) await sleep(latency)
    if (core.faults.gate && throttleKey !== undefined) await core.faults.gate
    if (throttleKey !== undefined) core.throttle.release(throttleKey)
    res.headers['request-id'] = requestId
    res.headers['client-request-id'] = clientRequestId
    core.stats.record(
      { at: date, method: req.method, path: req.path, status: res.status, mailbox: mb?.upn, inBatch: req.inBatch },
      throttled,
      inFlight,
    )
    return res
  }

  errorResponse(err: unknown, requestId: string, clientRequestId: string | undefined, date: string): GraphResponse {
    if (err instanceof GraphHttpError) {
      const body =
        err.status === 429 && (err as GraphHttpError & { throttle?: boolean }).throttle
          ? throttledBody(requestId, date)
          : errorEnvelope(err.code, err.message, requestId, clientRequestId, date, err.innerExtra)
      return { status: err.status, headers: { ...err.headers }, body }
    }
    if (err instanceof EmulatorError && err.code === 'unknown-mailbox') {
      return { status: 404, headers: {}, body: errorEnvelope('ErrorInvalidUser', err.message, requestId, clientRequestId, date) }
    }
    const message = err instanceof Error ? err.message : String(err)
    return {
      status: 500,
      headers: {},
      body: errorEnvelope('generalException', `An internal emulator error occurred: ${message}`, requestId, clientRequestId, date),
    }
  }
}
