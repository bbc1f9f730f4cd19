/**
 * A cluster instance's HTTP API: the cluster view (members, which instance owns which shard, fencing
 * tokens), this instance's mailboxes, metrics, health, and the Graph notification webhook. A webhook may
 * land on any instance (behind a load balancer): after the validation handshake and the clientState
 * check it is enqueued for the shard's owner.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Gauge } from 'prom-client'
import { z } from 'zod'
import { answerValidationHandshake, refuseWithoutAdminToken, sameToken } from '../admin/api.js'
import { ServerError } from '../errors.js'
import type { SyncServer } from '../server.js'
import type { ClusterInstance } from './instance.js'

const MailboxParams = z.strictObject({ id: z.string().min(1).max(200) })
/** Only what the edge needs; the owner's subscription manager validates the rest. */
const NotificationBody = z.object({ value: z.array(z.object({ clientState: z.string().max(256).optional() }).loose()).min(1).max(1000) }).loose()

export async function buildClusterApi(instance: ClusterInstance): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1_048_576, forceCloseConnections: 'idle' })
  const token = instance.config.admin.token
  const registry = instance.metrics.registry
  new Gauge({ name: 'concord_cluster_shards_owned', help: 'Shards this instance owns', registers: [registry], collect() { this.set(instance.ownedShards().length) } })
  new Gauge({ name: 'concord_cluster_fenced_writes', help: 'Shard state writes Redis refused because their fencing token was stale', registers: [registry], collect() { this.set(instance.fencedWrites) } })

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0] ?? ''
    if (path === '/health') return
    if (path.startsWith('/notifications/')) return answerValidationHandshake(req, reply, instance.metrics)
    await refuseWithoutAdminToken(req, reply, token)
  })

  app.setErrorHandler(async (error: unknown, req, reply) => {
    const e = error as { statusCode?: number; message?: string }
    if (typeof e.statusCode === 'number' && e.statusCode < 500) return reply.code(e.statusCode).send({ error: 'BadRequest', message: e.message ?? 'bad request' })
    instance.log.error({ err: error, url: req.url }, 'cluster API error')
    return reply.code(500).send({ error: 'Internal', message: 'internal error' })
  })

  app.get('/health', async () => ({ status: 'ok', instanceId: instance.id, shards: instance.ownedShards() }))
  app.get('/metrics', async (_req, reply) => reply.header('Content-Type', registry.contentType).send(await registry.metrics()))
  app.get('/api/cluster', async () => instance.view())
  app.get('/api/mailboxes', async () => ({ instanceId: instance.id, mailboxes: await instance.listMailboxes() }))
  /** The shard server running a mailbox here, or a reply saying which instance owns it. */
  async function serverFor(params: unknown, reply: FastifyReply): Promise<{ id: string; server: SyncServer } | undefined> {
    const parsed = MailboxParams.safeParse(params)
    if (!parsed.success) {
      await reply.code(400).send({ error: 'BadRequest', field: 'params.id', message: parsed.error.issues[0]!.message })
      return undefined
    }
    const server = instance.serverOf(parsed.data.id)
    if (server) return { id: parsed.data.id, server }
    const owner = await instance.ownerOf(parsed.data.id)
    if (owner.instanceId === instance.id) {
      await reply.code(503).header('Retry-After', '1').send({ error: 'Starting', message: `shard ${owner.shard} of mailbox ${parsed.data.id} is starting on this instance; retry shortly` })
      return undefined
    }
    await reply.code(409).send({ error: 'NotOwner', owner, message: `mailbox ${parsed.data.id} is in shard ${owner.shard}, owned by ${owner.instanceId ?? 'no instance right now'}; ask that instance` })
    return undefined
  }
  const answer = async (reply: FastifyReply, fn: () => Promise<unknown> | unknown) => {
    try {
      return await fn()
    } catch (error) {
      if (error instanceof ServerError && error.code === 'NotFound') return reply.code(404).send({ error: 'NotFound', message: error.message })
      throw error
    }
  }
  app.get('/api/mailboxes/:id', async (req, reply) => {
    const m = await serverFor(req.params, reply)
    return m && answer(reply, () => m.server.getMailbox(m.id))
  })
  app.get('/api/mailboxes/:id/history', async (req, reply) => {
    const m = await serverFor(req.params, reply)
    return m && answer(reply, async () => ({ history: await m.server.history(m.id, 50) }))
  })
  app.get('/api/mailboxes/:id/schedule', async (req, reply) => {
    const m = await serverFor(req.params, reply)
    return m && answer(reply, () => ({ explanation: m.server.scheduleExplanation(m.id) }))
  })
  app.post('/api/mailboxes/:id/sync', async (req, reply) => {
    const m = await serverFor(req.params, reply)
    return m && answer(reply, () => {
      m.server.syncNow(m.id)
      return reply.code(202).send({ status: 'scheduled' })
    })
  })
  app.post('/api/mailboxes/:id/resync', async (req, reply) => {
    const m = await serverFor(req.params, reply)
    return m && answer(reply, async () => {
      await m.server.resync(m.id)
      return reply.code(202).send({ status: 'scheduled' })
    })
  })

  app.post('/notifications/:id', async (req, reply) => {
    const params = MailboxParams.safeParse(req.params)
    const body = NotificationBody.safeParse(req.body)
    if (!params.success || !body.success) {
      instance.metrics.notifications.inc({ result: 'rejected' })
      return reply.code(400).send({ error: 'BadRequest', message: 'not a change notification' })
    }
    const expected = instance.config.push.clientState
    if (!expected || body.data.value.some((n) => n.clientState === undefined || !sameToken(n.clientState, expected))) {
      instance.metrics.notifications.inc({ result: 'rejected' })
      return reply.code(202).send() // Graph must not retry a notification we will never accept
    }
    await instance.routeNotification(params.data.id, req.body)
    return reply.code(202).send()
  })

  return app
}
