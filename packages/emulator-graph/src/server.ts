/** HTTP(S) server: Graph under /v1.0, the token endpoint, and the /_emulator control API. */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generate } from 'selfsigned'
import { z } from 'zod'
import { OAuthError } from './auth.js'
import { sleep } from './clock.js'
import { EmulatorControl, controlErrorStatus, faultSchema, notificationFaultSchema, throttleSchema } from './control.js'
import { Core } from './core.js'
import { EmulatorError, GraphHttpError, errorEnvelope } from './errors.js'
import { GraphEmulatorOptionsSchema, type GraphEmulatorOptions, type ResolvedOptions } from './options.js'
import { Persister, applySnapshot, loadSnapshot } from './persistence.js'
import { Pipeline } from './pipeline.js'
import type { GraphResponse } from './routes/context.js'
import type { ItemKind } from './store/schemas.js'

export interface GraphEmulator {
  /** Origin of the server (no trailing slash); Graph paths live under `${url}/v1.0`. */
  url: string
  /** `${url}/v1.0` */
  graphUrl: string
  /** OAuth2 client-credentials token endpoint. */
  tokenUrl: string
  tenant: string
  /** PEM of the self-signed certificate when started with `https: true`. */
  certificate: string | undefined
  /** Seeding, inspection, fault injection and observation. */
  control: EmulatorControl
  close(): Promise<void>
}

const JSON_TYPE = 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8'

/** Parses a query string without turning `+` into a space (OData date-times carry `+hh:mm`). */
export function parseQuery(qs: string): Record<string, string> {
  const out: Record<string, string> = {}
  if (!qs) return out
  for (const part of qs.split('&')) {
    if (!part) continue
    const eq = part.indexOf('=')
    const k = eq < 0 ? part : part.slice(0, eq)
    const v = eq < 0 ? '' : part.slice(eq + 1)
    let dk = k
    let dv = v
    try {
      dk = decodeURIComponent(k)
      dv = decodeURIComponent(v)
    } catch {
      // keep raw
    }
    out[dk] = dv
  }
  return out
}

function headerMap(req: FastifyRequest): Record<string, string | undefined> {
  const h: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(req.headers)) h[k] = Array.isArray(v) ? v.join(', ') : v
  return h
}

function send(reply: FastifyReply, res: GraphResponse): FastifyReply {
  reply.code(res.status)
  for (const [k, v] of Object.entries(res.headers)) reply.header(k, v)
  if (res.body === undefined) return reply.send()
  if (typeof res.body === 'string') return reply.type('text/plain; charset=utf-8').send(res.body)
  return reply.type(JSON_TYPE).send(JSON.stringify(res.body))
}

async function buildApp(core: Core, control: EmulatorControl, opts: ResolvedOptions, https: { key: string; cert: string } | undefined): Promise<FastifyInstance> {
  const pipeline = new Pipeline(core)
  const app = (https
    ? Fastify({ logger: false, bodyLimit: opts.bodyLimitBytes, https, forceCloseConnections: true })
    : Fastify({ logger: false, bodyLimit: opts.bodyLimitBytes, forceCloseConnections: true })) as unknown as FastifyInstance
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body))

  const envelope = (reply: FastifyReply, status: number, code: string, message: string, headers: Record<string, string> = {}): FastifyReply => {
    const requestId = randomUUID()
    return send(reply, {
      status,
      headers: { ...headers, 'request-id': requestId },
      body: errorEnvelope(code, message, requestId, requestId, core.clock.iso()),
    })
  }

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return envelope(reply, 413, 'RequestEntityTooLarge', `The request body exceeds the maximum of ${opts.bodyLimitBytes} bytes.`)
    }
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    return envelope(reply, status, status === 500 ? 'generalException' : 'BadRequest', err.message)
  })
  app.setNotFoundHandler((req, reply) =>
    envelope(reply, 400, 'BadRequest', `Invalid version or resource: '${req.url.split('?')[0] ?? ''}'. Graph paths live under /v1.0.`),
  )

  app.route({
    method: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'],
    url: '/v1.0/*',
    handler: async (req, reply) => {
      const raw = req.url
      const qi = raw.indexOf('?')
      const path = (qi < 0 ? raw : raw.slice(0, qi)).slice('/v1.0/'.length)
      const res = await pipeline.handle({
        method: req.method,
        path,
        query: parseQuery(qi < 0 ? '' : raw.slice(qi + 1)),
        headers: headerMap(req),
        body: req.body,
        bodyIsRaw: true,
        inBatch: false,
      })
      return send(reply, res)
    },
  })

  app.post('/:tenant/oauth2/v2.0/token', async (req, reply) => {
    const latency = opts.latencyMs + core.faults.extraLatencyMs
    if (latency > 0) await sleep(latency)
    const tenant = (req.params as { tenant: string }).tenant
    const text = typeof req.body === 'string' ? req.body : ''
    const ct = String(req.headers['content-type'] ?? '')
    let form: Record<string, unknown>
    try {
      form = ct.includes('json') ? (JSON.parse(text || '{}') as Record<string, unknown>) : Object.fromEntries(new URLSearchParams(text))
    } catch {
      form = {}
    }
    const oauthError = (e: OAuthError): FastifyReply =>
      reply.code(e.status).type('application/json; charset=utf-8').send({
        error: e.error,
        error_description: e.description,
        error_codes: [e.aadCode],
        timestamp: core.clock.iso(),
        trace_id: randomUUID(),
        correlation_id: randomUUID(),
      })
    if (tenant !== core.tenant && !tenant.includes('.') && tenant !== 'common' && tenant !== 'organizations') {
      return oauthError(new OAuthError(400, 'invalid_request', `AADSTS90002: Tenant '${tenant}' not found.`, 90002))
    }
    try {
      return reply.type('application/json; charset=utf-8').send(core.auth.issue(form))
    } catch (err) {
      if (err instanceof OAuthError) return oauthError(err)
      throw err
    }
  })

  registerAdmin(app, core, control, opts)
  return app
}

const KINDS: Record<string, ItemKind> = { messages: 'message', events: 'event', contacts: 'contact', tasks: 'task' }

function registerAdmin(app: FastifyInstance, core: Core, control: EmulatorControl, opts: ResolvedOptions): void {
  const json = (req: FastifyRequest): unknown => {
    const text = typeof req.body === 'string' ? req.body : ''
    if (text.trim() === '') return {}
    try {
      return JSON.parse(text) as unknown
    } catch (err) {
      throw new GraphHttpError(400, 'invalid-json', `malformed JSON body: ${(err as Error).message}`)
    }
  }
  const route = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, fn: (req: FastifyRequest, params: Record<string, string>) => unknown): void => {
    app.route({
      method,
      url: `/_emulator${url}`,
      handler: async (req, reply) => {
        try {
          if (opts.adminKey !== undefined && req.headers['x-emulator-admin-key'] !== opts.adminKey) {
            throw new GraphHttpError(401, 'admin-key-required', 'missing or wrong x-emulator-admin-key header')
          }
          const out = await fn(req, req.params as Record<string, string>)
          if (out === undefined) return reply.code(204).send()
          return reply.type('application/json; charset=utf-8').send(JSON.stringify(out))
        } catch (err) {
          const e = controlErrorStatus(err)
          return reply.code(e.status).type('application/json; charset=utf-8').send({ error: { code: e.code, message: e.message } })
        }
      },
    })
  }
  const body = <S extends z.ZodType>(req: FastifyRequest, schema: S): z.output<S> => schema.parse(json(req))

  route('GET', '/health', () => ({ ok: true, url: core.baseUrl, tenant: core.tenant }))
  route('GET', '/mailboxes', () => control.mailboxes())
  route('POST', '/mailboxes', (req) => {
    const b = body(req, z.strictObject({ upn: z.string().min(3), displayName: z.string().optional() }))
    return control.addMailbox(b.upn, b.displayName)
  })
  route('POST', '/mailboxes/:upn/folders', (req, p) => {
    const b = body(req, z.strictObject({ kind: z.enum(['mailFolder', 'calendar', 'contactFolder', 'todoList']), displayName: z.string().min(1), parentId: z.string().optional() }))
    return { id: control.createContainer(p['upn'] ?? '', b.kind, b.displayName, b.parentId) }
  })
  route('GET', '/mailboxes/:upn/items/:id', (_req, p) => control.getItem(p['upn'] ?? '', p['id'] ?? ''))
  route('PATCH', '/mailboxes/:upn/items/:id', (req, p) => control.updateItem(p['upn'] ?? '', p['id'] ?? '', body(req, z.record(z.string(), z.unknown()))))
  route('DELETE', '/mailboxes/:upn/items/:id', (_req, p) => {
    control.deleteItem(p['upn'] ?? '', p['id'] ?? '')
    return undefined
  })
  route('POST', '/mailboxes/:upn/items/:id/move', (req, p) => {
    const b = body(req, z.strictObject({ destination: z.string().min(1) }))
    return control.moveItem(p['upn'] ?? '', p['id'] ?? '', b.destination)
  })
  route('POST', '/mailboxes/:upn/:kind', (req, p) => {
    const kind = KINDS[p['kind'] ?? '']
    if (!kind) throw new EmulatorError('invalid-seed', `unknown kind '${p['kind']}': expected messages, events, contacts or tasks`)
    const b = body(req, z.strictObject({ items: z.array(z.record(z.string(), z.unknown())).min(1), container: z.string().optional() }))
    return { items: control.seed(p['upn'] ?? '', kind, b.items, b.container) }
  })
  route('POST', '/latency', (req) => {
    control.setLatency(body(req, z.strictObject({ ms: z.number().int().min(0) })).ms)
    return undefined
  })
  route('POST', '/faults', (req) => {
    control.failNext(body(req, faultSchema))
    return undefined
  })
  route('POST', '/hold', () => {
    control.holdRequests()
    return undefined
  })
  route('POST', '/release', () => {
    control.releaseRequests()
    return undefined
  })
  route('POST', '/delta/expire', () => {
    control.expireDeltaTokens()
    return undefined
  })
  route('POST', '/delta/empty-pages', (req) => {
    control.emptyPages(body(req, z.strictObject({ count: z.number().int().min(0) })).count)
    return undefined
  })
  route('POST', '/delta/duplicates', (req) => {
    control.setDuplicates(body(req, z.strictObject({ enabled: z.boolean() })).enabled)
    return undefined
  })
  route('POST', '/delta/processing-delay', (req) => {
    control.setProcessingDelay(body(req, z.strictObject({ calls: z.number().int().min(0) })).calls)
    return undefined
  })
  route('POST', '/delta/shuffle', (req) => {
    control.setShuffle(body(req, z.strictObject({ enabled: z.boolean() })).enabled)
    return undefined
  })
  route('POST', '/notifications', (req) => {
    control.setNotifications(body(req, notificationFaultSchema))
    return undefined
  })
  route('GET', '/subscriptions', () => control.subscriptions())
  route('POST', '/subscriptions/:id/lifecycle', (req, p) => {
    const b = body(req, z.strictObject({ event: z.enum(['reauthorizationRequired', 'subscriptionRemoved', 'missed']) }))
    return { sent: control.lifecycle(p['id'] ?? '', b.event) }
  })
  route('POST', '/throttle', (req) => {
    control.setThrottle(body(req, throttleSchema))
    return undefined
  })
  route('POST', '/clock/advance', (req) => {
    control.advanceClock(body(req, z.strictObject({ ms: z.number().int().min(0) })).ms)
    return undefined
  })
  route('POST', '/tokens/expire', () => {
    control.expireAccessTokens()
    return undefined
  })
  route('GET', '/stats', () => control.stats())
  route('GET', '/requests', () => control.requestLog())
  route('GET', '/deliveries', () => control.deliveries())
  route('POST', '/reset', () => {
    control.reset()
    return undefined
  })
}

async function generateCertificate(): Promise<{ key: string; cert: string }> {
  const keyPair = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyPair,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  })
  return { key: pems.private, cert: pems.cert }
}

/** A self-signed certificate; with a data directory it is kept there so restarts reuse it. */
async function certificate(dataDir: string | undefined): Promise<{ key: string; cert: string }> {
  if (dataDir === undefined) return generateCertificate()
  const file = join(dataDir, 'graph-emulator-tls.json')
  try {
    const saved = z.object({ key: z.string(), cert: z.string() }).parse(JSON.parse(await readFile(file, 'utf8')))
    return saved
  } catch {
    const fresh = await generateCertificate()
    await mkdir(dataDir, { recursive: true })
    await writeFile(`${file}.tmp`, JSON.stringify(fresh))
    await rename(`${file}.tmp`, file)
    return fresh
  }
}

/** Starts the emulator and resolves once it listens. */
export async function startGraphEmulator(options: GraphEmulatorOptions = {}): Promise<GraphEmulator> {
  const parsed = GraphEmulatorOptionsSchema.safeParse(options)
  if (!parsed.success) {
    const i = parsed.error.issues[0]
    throw new EmulatorError('invalid-options', `invalid option '${i?.path.join('.') ?? ''}': ${i?.message ?? 'invalid'}`)
  }
  const opts = parsed.data
  const snap = opts.dataDir === undefined ? undefined : await loadSnapshot(opts.dataDir)
  const core = snap ? new Core(opts, snap.secret, snap.tenant) : new Core(opts)
  if (snap) applySnapshot(core, snap)
  for (const upn of opts.mailboxes) core.store.createMailbox(upn)
  const control = new EmulatorControl(core, opts.mailboxes)
  const tls = opts.https ? await certificate(opts.dataDir) : undefined
  const app = await buildApp(core, control, opts, tls)
  await app.listen({ port: opts.port, host: opts.host })
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr ? addr.port : opts.port
  const linkHost = opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host === '::' ? '[::1]' : opts.host.includes(':') ? `[${opts.host}]` : opts.host
  core.baseUrl = `${opts.https ? 'https' : 'http'}://${linkHost}:${port}`
  const persister = opts.dataDir === undefined ? undefined : new Persister(core, opts.dataDir)
  let closed = false
  return {
    url: core.baseUrl,
    graphUrl: core.graphBase,
    tokenUrl: `${core.baseUrl}/${core.tenant}/oauth2/v2.0/token`,
    tenant: core.tenant,
    certificate: tls?.cert,
    control,
    async close() {
      if (closed) return
      closed = true
      await core.subs.close()
      await persister?.close()
      await app.close()
    },
  }
}
