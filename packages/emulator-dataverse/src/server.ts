import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'
import { Admin, limitsSchema, userSeedSchema, type faultSchema, type fieldProfileSchema, type roleSchema, type SeededUser, type shareSchema, type UserSeed } from './admin.js'
import { TokenIssuer } from './auth.js'
import { errorResponse, parseBatch, runBatch } from './batch.js'
import type { Caller, EmulatorContext } from './context.js'
import { DataverseError, notFound, payloadInvalid, privilegeDenied, toDataverseError } from './errors.js'
import { parsePrefer } from './odata/query.js'
import { GUID_RE } from './records.js'
import { Security, type SecuritySnapshot } from './security.js'
import { SnapshotFile } from './store/persist.js'
import { Store, type StoreSnapshot } from './store/store.js'
import { Throttle, type ThrottleLimits } from './throttle.js'
import { WebApi, type ApiRequest, type ApiResponse } from './web-api.js'

export const API_PREFIX = '/api/data/v9.2'
export const DEFAULT_CLIENT_ID = 'concord-dataverse-client'
export const DEFAULT_CLIENT_SECRET = 'concord-dataverse-secret'
const DAY_MS = 86_400_000

export const optionsSchema = z.object({
  port: z.number().int().min(0).max(65535).default(0),
  host: z.string().min(1).default('127.0.0.1'),
  users: z.array(z.union([z.string().email(), userSeedSchema])).default([]),
  clientId: z.string().min(1).default(DEFAULT_CLIENT_ID),
  clientSecret: z.string().min(1).default(DEFAULT_CLIENT_SECRET),
  latencyMs: z.number().min(0).max(60_000).default(0),
  dataDir: z.string().min(1).optional(),
  limits: limitsSchema.optional(),
  changeTrackingRetentionDays: z.number().min(0).max(365).default(7),
  requireO365Approval: z.boolean().default(true),
  /**
   * Who runs Test & Enable when `testemailconfigurationscheduled` is set: `auto` = the emulator at once
   * (it plays server-side sync); `external` = nobody — the flag stays set until a server-side-sync
   * runtime under test tests the mailbox and records the result.
   */
  testAndEnable: z.enum(['auto', 'external']).default('auto'),
  throttleBy: z.enum(['principal', 'caller']).default('principal'),
  now: z.function().optional(),
})

export type DataverseEmulatorOptions = Omit<z.input<typeof optionsSchema>, 'now' | 'users'> & {
  users?: Array<string | UserSeed>
  /** Injectable clock (epoch ms) for tests. */
  now?: () => number
}

export interface DataverseEmulator {
  /** Organization base URL; the Web API is under `${url}/api/data/v9.2`. */
  url: string
  apiUrl: string
  tokenUrl: string
  clientId: string
  clientSecret: string
  /** Users seeded from options (in order). */
  users: SeededUser[]
  /** Seeding, inspection and fault injection. */
  admin: Admin
  /** Fetch a client-credentials token for the configured client. */
  getToken(): Promise<string>
  close(): Promise<void>
}

interface PersistedState {
  format: 1
  store: StoreSnapshot
  security: SecuritySnapshot
}

function apiResponseToReply(reply: FastifyReply, res: ApiResponse): FastifyReply {
  reply.code(res.status)
  reply.header('OData-Version', '4.0')
  for (const [k, v] of Object.entries(res.headers)) reply.header(k, v)
  if (res.body !== undefined) {
    reply.header('Content-Type', 'application/json; odata.metadata=minimal; charset=utf-8')
    return reply.send(JSON.stringify(res.body))
  }
  if (res.text !== undefined) return reply.send(res.text)
  return reply.send()
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export async function startDataverseEmulator(input: DataverseEmulatorOptions = {}): Promise<DataverseEmulator> {
  const parsed = optionsSchema.safeParse(input)
  if (!parsed.success) {
    const i = parsed.error.issues[0]
    throw new DataverseError('BadRequest', 400, `Invalid emulator option ${i?.path.join('.') ?? ''}: ${i?.message ?? 'invalid'}`)
  }
  const opts = parsed.data
  const clock = input.now ?? Date.now
  const store = new Store()
  const security = new Security(store)
  let admin: Admin | null = null
  const ctx: EmulatorContext = {
    store,
    security,
    now: () => clock() + (admin?.clockOffsetMs ?? 0),
    apiBase: '',
    retentionMs: opts.changeTrackingRetentionDays * DAY_MS,
    requireO365Approval: opts.requireO365Approval,
    testAndEnable: opts.testAndEnable,
    trackingCounters: new Map(),
  }
  const snapshotFile = opts.dataDir
    ? new SnapshotFile(opts.dataDir, (): PersistedState => ({ format: 1, store: store.snapshot(), security: security.snapshot() }))
    : null
  if (snapshotFile) {
    const state = (await snapshotFile.read()) as PersistedState | undefined
    if (state) {
      if (state.format !== 1 || !state.store || !state.security) throw new Error(`Unrecognised snapshot format in ${snapshotFile.path}`)
      store.load(state.store)
      security.load(state.security)
      store.purgeTombstones(ctx.now() - ctx.retentionMs)
    }
    store.onChange = () => snapshotFile.schedule()
  }
  const persist = (): void => snapshotFile?.schedule()
  const throttle = new Throttle(opts.limits ?? {}, ctx.now)
  const api = new WebApi(ctx)
  const clients = new Map([[opts.clientId, opts.clientSecret]])
  const issuer = new TokenIssuer(clients, 3599, ctx.now)
  const appUsers = new Map<string, string>()
  const systemCaller = (): Caller => {
    const userId = appUsers.get(opts.clientId) as string
    return { userId, principalId: userId, clientId: opts.clientId }
  }
  admin = new Admin(ctx, api, throttle, opts.latencyMs, persist, systemCaller)
  const adm = admin
  const seed = (): SeededUser[] => {
    appUsers.set(opts.clientId, adm.ensureApplicationUser(opts.clientId))
    return opts.users.map((u) => adm.addUser(typeof u === 'string' ? { email: u } : u))
  }
  const seeded = seed()

  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: 64 * 1024 * 1024,
    // close() must not wait for clients' idle keep-alive sockets (undici keeps them as long as the server's Keep-Alive allows)
    forceCloseConnections: true,
    // malformed URLs / content types detected by fastify itself still get the Dataverse error shape
    frameworkErrors: (error, _req, reply) => {
      void apiResponseToReply(reply, errorResponse(new DataverseError('BadRequest', 400, error.message, { cause: error })))
    },
    // errors before a request exists (e.g. 431 oversized request line): answer in the Dataverse shape
    clientErrorHandler: (error, socket) => {
      if (!socket.writable) return
      const status = (error as { code?: string }).code === 'HPE_HEADER_OVERFLOW' ? 431 : 400
      const body = JSON.stringify({ error: { code: '0x80040203', message: status === 431 ? 'The request line or headers are too large.' : 'Malformed HTTP request.' } })
      socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    },
  })
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body))
  app.setErrorHandler((err, _req, reply) => {
    const status = (err as { statusCode?: number }).statusCode
    const e =
      err instanceof DataverseError
        ? err
        : status && status >= 400 && status < 500
          ? new DataverseError('BadRequest', status, err instanceof Error ? err.message : String(err), { cause: err })
          : toDataverseError(err)
    void apiResponseToReply(reply, errorResponse(e))
  })
  app.setNotFoundHandler((req, reply) => {
    void apiResponseToReply(reply, errorResponse(new DataverseError('NotFound', 404, `No route for ${req.method} ${req.url.split('?')[0]}.`)))
  })

  const bodyText = (req: FastifyRequest): string => (typeof req.body === 'string' ? req.body : '')
  const headerMap = (req: FastifyRequest): Record<string, string | undefined> => {
    const out: Record<string, string | undefined> = {}
    for (const [k, v] of Object.entries(req.headers)) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
    return out
  }

  // ----- OAuth2 token endpoint -----
  const tokenHandler = async (req: FastifyRequest, reply: FastifyReply) => {
    const form = Object.fromEntries(new URLSearchParams(bodyText(req)))
    const r = issuer.issue(form)
    reply.header('Cache-Control', 'no-store')
    if (!r.ok) return reply.code(r.status).send(r.body)
    const principal = appUsers.get(form.client_id as string)
    if (!principal) appUsers.set(form.client_id as string, adm.ensureApplicationUser(form.client_id as string))
    return reply.code(200).send(r.body)
  }
  app.post('/oauth2/v2.0/token', tokenHandler)
  // tenant-qualified form, like https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token
  app.post('/:tenant/oauth2/v2.0/token', tokenHandler)

  // ----- Web API -----
  const resolveCaller = (clientId: string, headers: Record<string, string | undefined>): Caller => {
    const principalId = appUsers.get(clientId) ?? adm.ensureApplicationUser(clientId)
    appUsers.set(clientId, principalId)
    let userId = principalId
    const objectId = headers.callerobjectid
    const callerId = headers.mscrmcallerid
    if (objectId !== undefined || callerId !== undefined) {
      if (!security.depth(principalId, 'prvActOnBehalfOfAnotherUser')) throw privilegeDenied(principalId, 'prvActOnBehalfOfAnotherUser', 'systemuser')
      const raw = (objectId ?? callerId) as string
      if (!GUID_RE.test(raw)) throw payloadInvalid(`The ${objectId !== undefined ? 'CallerObjectId' : 'MSCRMCallerID'} header '${raw}' is not a GUID.`)
      const users = store.table('systemuser')
      const id = objectId !== undefined ? users.lookupIndex('azureactivedirectoryobjectid', raw)[0] : users.rows.has(raw.toLowerCase()) ? raw.toLowerCase() : undefined
      if (!id) throw notFound('systemuser', raw)
      const row = users.rows.get(id)
      if (row?.values.isdisabled === true) throw new DataverseError('PrivilegeDenied', 403, `The user with id ${id} is disabled.`)
      userId = id
    }
    return { userId, principalId, clientId }
  }

  const webApi = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const headers = headerMap(req)
    const clientId = issuer.verify(headers.authorization)
    if (!clientId) {
      reply.header('WWW-Authenticate', `Bearer authorization_uri=${tokenUrl}, resource_id=${url}`)
      return apiResponseToReply(reply, errorResponse(new DataverseError('Unauthorized', 401, 'The user is not authenticated: a valid Bearer token is required.')))
    }
    let release: (() => void) | null = null
    try {
      const caller = resolveCaller(clientId, headers)
      const fault = adm.nextFault()
      if (fault) throw fault
      release = throttle.admit(opts.throttleBy === 'caller' ? caller.userId : caller.principalId)
      reply.header('x-ms-ratelimit-burst-remaining-xrm-requests', String(throttle.lastRemaining.requests))
      reply.header('x-ms-ratelimit-time-remaining-xrm-requests', String(throttle.lastRemaining.executionMs))
      if (adm.gate) await adm.gate
      if (adm.latencyMs > 0) await sleep(adm.latencyMs)
      const rawUrl = req.url
      const q = rawUrl.indexOf('?')
      const pathPart = (q < 0 ? rawUrl : rawUrl.slice(0, q)).slice(API_PREFIX.length).replace(/^\//, '')
      const query = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1))
      if (pathPart === '$batch') {
        if (req.method !== 'POST') throw new DataverseError('MethodNotAllowed', 405, '$batch requires POST.')
        const items = parseBatch(headers['content-type'], bodyText(req))
        const prefer = parsePrefer(headers.prefer)
        // a part may carry its own CallerObjectId / MSCRMCallerID (impersonation per operation)
        const partCaller = (r: ApiRequest): Caller =>
          r.headers.callerobjectid !== undefined || r.headers.mscrmcallerid !== undefined
            ? resolveCaller(clientId, { callerobjectid: r.headers.callerobjectid, mscrmcallerid: r.headers.mscrmcallerid })
            : caller
        const out = runBatch(items, (r) => api.handle(r, partCaller(r)), store, prefer.has('odata.continue-on-error'))
        reply.code(200).header('OData-Version', '4.0').header('Content-Type', `multipart/mixed; boundary=${out.boundary}`)
        return reply.send(out.body)
      }
      const apiReq: ApiRequest = { method: req.method, path: pathPart, query, headers, body: bodyText(req) }
      return apiResponseToReply(reply, api.handle(apiReq, caller))
    } catch (err) {
      return apiResponseToReply(reply, errorResponse(err))
    } finally {
      release?.()
    }
  }
  app.all(API_PREFIX, webApi)
  app.all(`${API_PREFIX}/*`, webApi)

  // ----- Emulator control API -----
  const control = (fn: (req: FastifyRequest) => unknown, status = 200) => async (req: FastifyRequest, reply: FastifyReply) => {
    try {
      let body: unknown = {}
      const text = bodyText(req)
      if (text.trim() !== '') {
        try {
          body = JSON.parse(text)
        } catch (err) {
          throw payloadInvalid(`The request body is not valid JSON: ${(err as Error).message}`, err)
        }
      }
      ;(req as FastifyRequest & { json?: unknown }).json = body
      const result = fn(req)
      if (result === undefined) return reply.code(204).send()
      return reply.code(status).header('Content-Type', 'application/json; charset=utf-8').send(JSON.stringify(result))
    } catch (err) {
      return apiResponseToReply(reply, errorResponse(err))
    }
  }
  const jsonOf = (req: FastifyRequest): Record<string, unknown> => {
    const b = (req as FastifyRequest & { json?: unknown }).json
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw payloadInvalid('The body must be a JSON object.')
    return b as Record<string, unknown>
  }
  const param = (req: FastifyRequest, name: string): string => String((req.params as Record<string, string>)[name])
  const numberField = (b: Record<string, unknown>, name: string): number => {
    const v = b[name]
    if (typeof v !== 'number') throw payloadInvalid(`'${name}' must be a number, got ${JSON.stringify(v)}.`)
    return v
  }

  app.post('/_emulator/users', control((req) => {
    const b = jsonOf(req)
    const list = z.array(z.union([z.string(), z.record(z.string(), z.unknown())])).safeParse(b.users)
    if (!list.success) throw payloadInvalid("'users' must be an array of e-mail strings or user objects.")
    return { users: list.data.map((u) => adm.addUser(typeof u === 'string' ? { email: u } : (u as UserSeed))) }
  }, 201))
  app.put('/_emulator/users/:id/roles', control((req) => {
    const b = jsonOf(req)
    const roles = z.array(z.string()).safeParse(b.roles)
    if (!roles.success) throw payloadInvalid("'roles' must be an array of role names.")
    adm.assignRoles(param(req, 'id'), roles.data)
    return undefined
  }))
  app.post('/_emulator/roles', control((req) => adm.upsertRole(jsonOf(req) as z.input<typeof roleSchema>), 201))
  app.post('/_emulator/records/:set', control((req) => {
    const b = jsonOf(req)
    const records = Array.isArray(b.records) ? (b.records as unknown[]) : [b]
    const asUserId = typeof b.asUserId === 'string' ? b.asUserId : undefined
    return {
      ids: records.map((r) => {
        if (typeof r !== 'object' || r === null) throw payloadInvalid('Each record must be a JSON object.')
        return adm.createRecord(param(req, 'set'), r as Record<string, unknown>, asUserId).id
      }),
    }
  }, 201))
  app.get('/_emulator/records/:set', control((req) => {
    const filter = (req.query as Record<string, string>).filter
    return { value: adm.rows(param(req, 'set'), filter) }
  }))
  app.post('/_emulator/field-security/columns', control((req) => {
    const b = jsonOf(req)
    if (typeof b.table !== 'string' || typeof b.column !== 'string') throw payloadInvalid("'table' and 'column' are required strings.")
    adm.secureColumn(b.table, b.column)
    return undefined
  }))
  app.post('/_emulator/field-security/profiles', control((req) => ({ id: adm.addFieldSecurityProfile(jsonOf(req) as z.input<typeof fieldProfileSchema>) }), 201))
  app.post('/_emulator/shares', control((req) => {
    adm.share(jsonOf(req) as z.input<typeof shareSchema>)
    return undefined
  }))
  app.post('/_emulator/latency', control((req) => {
    adm.setLatency(numberField(jsonOf(req), 'ms'))
    return undefined
  }))
  app.post('/_emulator/faults', control((req) => {
    adm.injectFaults(jsonOf(req) as z.input<typeof faultSchema>)
    return undefined
  }))
  app.delete('/_emulator/faults', control(() => {
    adm.faults = []
    return undefined
  }))
  app.post('/_emulator/limits', control((req) => adm.setLimits(jsonOf(req) as Partial<ThrottleLimits>)))
  app.post('/_emulator/change-tracking/expire', control(() => {
    adm.expireChangeTracking()
    return undefined
  }))
  app.post('/_emulator/change-tracking/retention', control((req) => {
    adm.setRetention(numberField(jsonOf(req), 'ms'))
    return undefined
  }))
  app.post('/_emulator/clock', control((req) => {
    adm.advanceClock(numberField(jsonOf(req), 'advanceMs'))
    return { now: new Date(ctx.now()).toISOString() }
  }))
  app.get('/_emulator/stats', control(() => adm.stats()))
  app.post('/_emulator/reset', control(() => {
    store.clear()
    security.reset()
    throttle.reset()
    adm.faults = []
    adm.latencyMs = opts.latencyMs
    appUsers.clear()
    ctx.trackingCounters.clear()
    persist()
    return { users: seed() }
  }))

  await app.listen({ port: opts.port, host: opts.host })
  const addr = app.server.address()
  if (!addr || typeof addr === 'string') throw new Error('fastify did not report a TCP address')
  const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  const url = `http://${hostForUrl}:${addr.port}`
  const tokenUrl = `${url}/oauth2/v2.0/token`
  ctx.apiBase = `${url}${API_PREFIX}`

  return {
    url,
    apiUrl: ctx.apiBase,
    tokenUrl,
    clientId: opts.clientId,
    clientSecret: opts.clientSecret,
    users: seeded,
    admin: adm,
    async getToken() {
      const res = await fetch(tokenUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: opts.clientId, client_secret: opts.clientSecret, scope: `${url}/.default` }),
      })
      const body = (await res.json()) as { access_token?: string }
      if (!res.ok || !body.access_token) throw new Error(`token request failed with ${res.status}`)
      return body.access_token
    },
    async close() {
      await app.close()
      await snapshotFile?.flush()
    },
  }
}
