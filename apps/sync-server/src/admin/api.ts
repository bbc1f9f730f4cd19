/**
 * The admin API (fastify): bearer-token auth, JSON in and out, every input parsed with zod (400 names the
 * field), plus the two unauthenticated endpoints a deployment needs: `/health` for liveness probes and
 * `/notifications/:mailboxId` for Graph change notifications (authenticated by their `clientState`).
 */
import { timingSafeEqual } from 'node:crypto'
import { validationTokenOf } from '@concord/adapter-exchange'
import { DirectionSchema, SyncError } from '@concord/engine'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ServerError } from '../errors.js'
import type { ServerMetrics } from '../metrics.js'
import type { SyncServer } from '../server.js'

const MailboxParams = z.strictObject({ id: z.string().min(1).max(200) })
const ExplainQuery = z.strictObject({ item: z.string().min(1).max(400), field: z.string().min(1).max(200) })
const HistoryQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(200).default(50) })
const ResolveBody = z.strictObject({ concordId: z.string().min(1).max(400), field: z.string().min(1).max(200), winner: z.enum(['crm', 'mailbox']) })
const QuarantineParams = z.strictObject({ id: z.string().min(1).max(200), qid: z.string().min(1).max(400) })
const DirectionBody = z.strictObject({ kind: z.enum(['email', 'appointment', 'contact', 'task']), field: z.string().min(1).max(200), direction: DirectionSchema })
const FiltersParams = z.strictObject({ userId: z.string().min(1).max(200) })
const FiltersBody = z.strictObject({ filters: z.unknown() })

/** 400 with the offending field named. */
class BadRequest extends ServerError {
  constructor(readonly field: string, message: string) {
    super('BadRequest', message)
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value ?? {})
  if (r.success) return r.data
  const issue = r.error.issues[0]!
  const field = [where, ...issue.path.map(String)].join('.')
  throw new BadRequest(field, `${field}: ${issue.message}`)
}

/** Constant-time comparison of a presented secret (bearer token, clientState) with the expected one. */
export function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Graph's subscription validation handshake: echo the token as text/plain before any body parsing. */
export async function answerValidationHandshake(req: FastifyRequest, reply: FastifyReply, metrics: ServerMetrics): Promise<void> {
  const validationToken = validationTokenOf(req.url)
  if (validationToken === undefined) return
  metrics.notifications.inc({ result: 'validation' })
  await reply.code(200).header('Content-Type', 'text/plain').send(validationToken)
}

/** 401 unless the request carries the admin bearer token; true when it was refused. */
export async function refuseWithoutAdminToken(req: FastifyRequest, reply: FastifyReply, token: string): Promise<boolean> {
  const header = req.headers.authorization ?? ''
  const given = header.startsWith('Bearer ') ? header.slice(7) : ''
  if (given && sameToken(given, token)) return false
  await reply.code(401).header('WWW-Authenticate', 'Bearer').send({ error: 'Unauthorized', message: 'a valid admin bearer token is required' })
  return true
}

export async function buildAdminApi(server: SyncServer): Promise<FastifyInstance> {
  // Shutdown closes idle keep-alive sockets at once and lets requests in flight finish.
  const app = Fastify({ logger: false, bodyLimit: 1_048_576, forceCloseConnections: 'idle' })
  const token = server.config.admin.token

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0] ?? ''
    if (path === '/health' || path.startsWith('/addin/')) return // the App for Outlook authenticates per user over /client
    if (path.startsWith('/notifications/')) return answerValidationHandshake(req, reply, server.metrics)
    await refuseWithoutAdminToken(req, reply, token)
  })

  app.setErrorHandler(async (error: unknown, req, reply) => {
    if (error instanceof BadRequest) return reply.code(400).send({ error: 'BadRequest', field: error.field, message: error.message })
    if (error instanceof ServerError) {
      const status = error.code === 'NotFound' ? 404 : error.code === 'LeaseLost' ? 409 : error.code === 'BadRequest' ? 400 : 500
      return reply.code(status).send({ error: error.code, message: error.message })
    }
    if (error instanceof SyncError && (error.code === 'Validation' || error.code === 'Config')) return reply.code(400).send({ error: 'BadRequest', message: error.message })
    const fastifyError = error as { statusCode?: number; message?: string }
    if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode < 500) {
      return reply.code(fastifyError.statusCode).send({ error: 'BadRequest', message: fastifyError.message ?? 'bad request' })
    }
    server.log.error({ err: error, url: req.url }, 'admin API error')
    return reply.code(500).send({ error: 'Internal', message: 'internal error' })
  })

  app.get('/health', async () => ({ status: 'ok', mailboxes: (await server.listMailboxes()).length }))

  app.get('/metrics', async (_req, reply) => {
    await server.listMailboxes() // refreshes the staleness gauge
    return reply.header('Content-Type', server.metrics.registry.contentType).send(await server.metrics.text())
  })

  app.get('/api/mailboxes', async () => ({ mailboxes: await server.listMailboxes() }))
  app.post('/api/mailboxes/refresh', async () => {
    await server.refreshMailboxes()
    return { mailboxes: await server.listMailboxes() }
  })
  app.get('/api/mailboxes/:id', async (req) => server.getMailbox(parse(MailboxParams, req.params, 'params').id))
  app.get('/api/mailboxes/:id/history', async (req) => {
    const { id } = parse(MailboxParams, req.params, 'params')
    const { limit } = parse(HistoryQuery, req.query, 'query')
    return { history: await server.history(id, limit) }
  })
  app.get('/api/mailboxes/:id/schedule', async (req) => ({ explanation: server.scheduleExplanation(parse(MailboxParams, req.params, 'params').id) }))
  app.post('/api/mailboxes/:id/sync', async (req, reply) => {
    server.syncNow(parse(MailboxParams, req.params, 'params').id)
    return reply.code(202).send({ status: 'scheduled' })
  })
  app.post('/api/mailboxes/:id/resync', async (req, reply) => {
    await server.resync(parse(MailboxParams, req.params, 'params').id)
    return reply.code(202).send({ status: 'scheduled' })
  })
  app.get('/api/mailboxes/:id/conflicts', async (req) => ({ conflicts: await server.listConflicts(parse(MailboxParams, req.params, 'params').id) }))
  app.post('/api/mailboxes/:id/conflicts/resolve', async (req) => {
    const { id } = parse(MailboxParams, req.params, 'params')
    const body = parse(ResolveBody, req.body, 'body')
    await server.resolveConflict(id, body.concordId, body.field, body.winner)
    return { status: 'resolved' }
  })
  app.get('/api/mailboxes/:id/problems', async (req) => ({ problems: await server.listMessageProblems(parse(MailboxParams, req.params, 'params').id) }))
  app.get('/api/mailboxes/:id/quarantine', async (req) => ({ quarantine: await server.listQuarantine(parse(MailboxParams, req.params, 'params').id) }))
  for (const action of ['confirm', 'reject'] as const) {
    app.post(`/api/mailboxes/:id/quarantine/:qid/${action}`, async (req) => {
      const { id, qid } = parse(QuarantineParams, req.params, 'params')
      return { status: action === 'confirm' ? 'confirmed' : 'rejected', operations: await server.settleQuarantine(id, qid, action) }
    })
  }
  app.get('/api/mailboxes/:id/explain', async (req, reply) => {
    const { id } = parse(MailboxParams, req.params, 'params')
    const { item, field } = parse(ExplainQuery, req.query, 'query')
    const decision = await server.explain(id, item, field)
    if (!decision) return reply.code(404).send({ error: 'NotFound', message: `no recorded decision for ${item}.${field}` })
    return { decision }
  })
  app.put('/api/directions', async (req) => {
    const body = parse(DirectionBody, req.body, 'body')
    const config = await server.setDirection(body.kind, body.field, body.direction)
    return { directions: config.directions }
  })
  app.put('/api/users/:userId/filters', async (req) => {
    const { userId } = parse(FiltersParams, req.params, 'params')
    const { filters } = parse(FiltersBody, req.body, 'body')
    try {
      return { filters: await server.setFilters(userId, filters) }
    } catch (error) {
      if (error instanceof SyncError) throw new BadRequest('body.filters', error.message)
      throw error
    }
  })

  // Graph change notifications: the validation handshake, then clientState-checked bodies.
  app.post('/notifications/:id', async (req, reply) => {
    const { id } = parse(MailboxParams, req.params, 'params')
    try {
      await server.handleNotification(id, req.body)
    } catch (error) {
      if (error instanceof SyncError && error.code === 'Validation') throw new BadRequest('body', error.message)
      throw error
    }
    return reply.code(202).send()
  })

  return app
}
