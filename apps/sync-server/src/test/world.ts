/** A test world: both emulators in process, seeded users, and a sync server over them (all on 127.0.0.1). */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTrustedFetch } from '@concord/adapter-exchange'
import { type DataverseEmulator, startDataverseEmulator } from '@concord/emulator-dataverse'
import { type GraphEmulator, startGraphEmulator } from '@concord/emulator-graph'
import { freePort } from '@concord/tools'
import { type ServerConfig, type ServerConfigInput, parseServerConfig } from '../config.js'
import { DEMO_ROLE, dataverseApi, salespersonPrivileges } from '../demo.js'
import { CrmMailboxDirectory } from '../mailbox/crm-directory.js'
import { graphMailboxTester } from '../mailbox/graph-tester.js'
import { SyncServer } from '../server.js'
import { createLogger } from '../logging.js'

export interface WorldUser {
  email: string
  /** Mailbox row state in the CRM (default enabled). */
  mailbox?: 'enabled' | 'pending' | 'none'
  /** The mailbox exists in the Graph emulator (default true). */
  inGraph?: boolean
  /** Roles (default the salesperson role that may sync). */
  roles?: string[]
}

export interface WorldOptions {
  users?: WorldUser[]
  push?: boolean
  config?: Partial<ServerConfigInput>
  /** Start the server (default true). */
  start?: boolean
  /** Security roles to create before the users (besides the salesperson role). */
  roles?: Array<{ name: string; privileges: Record<string, string> }>
}

export interface World {
  graph: GraphEmulator
  dv: DataverseEmulator
  server: SyncServer
  config: ServerConfig
  users: Array<{ email: string; systemuserid: string; mailboxid: string | null }>
  dataDir: string
  trustedFetch: typeof fetch
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test responses are inspected field by field
  api(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; body: any }>
  /** Asks for a sync of the mailbox and waits until a cycle that started after the request has ended. */
  syncAndWait(mailboxId: string): Promise<void>
  /** Syncs until a cycle pulls nothing new on either side (bounded). */
  syncUntilQuiet(mailboxId: string): Promise<void>
  startServer(): Promise<SyncServer>
  stop(): Promise<void>
}

export const GRAPH_CLIENT = { clientId: 'concord-test', clientSecret: 'graph-test-secret' }

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms))
}

/** Polls `check` until it returns a value other than undefined/false (bounded by attempts, not by time). */
export async function until<T>(check: () => Promise<T | undefined | false> | T | undefined | false, what: string, attempts = 600, everyMs = 50): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const v = await check()
    if (v !== undefined && v !== false) return v
    await sleep(everyMs)
  }
  throw new Error(`gave up waiting for ${what}`)
}

export async function startWorld(options: WorldOptions = {}): Promise<World> {
  const users = options.users ?? [{ email: 'alice@contoso.test' }, { email: 'bob@contoso.test' }]
  const graph = await startGraphEmulator({ mailboxes: users.filter((u) => u.inGraph !== false).map((u) => u.email), https: true, ...GRAPH_CLIENT })
  const dv = await startDataverseEmulator({ users: [], testAndEnable: 'external' })
  const dataDir = await mkdtemp(join(tmpdir(), 'concord-server-test-'))
  dv.admin.upsertRole({ name: DEMO_ROLE, privileges: salespersonPrivileges() as never })
  for (const role of options.roles ?? []) dv.admin.upsertRole({ name: role.name, privileges: role.privileges as never })
  const seeded = users.map((u) => {
    const s = dv.admin.addUser({ email: u.email, roles: u.roles ?? [DEMO_ROLE], mailbox: u.mailbox ?? 'enabled' })
    return { email: u.email, systemuserid: s.systemuserid, mailboxid: s.mailboxid }
  })
  const token = randomBytes(18).toString('base64url')
  const trusted = createTrustedFetch({ ca: graph.certificate! })
  let server: SyncServer | undefined
  let config: ServerConfig | undefined
  let pushPort: number | undefined
  const clientState = randomBytes(24).toString('base64url')
  const world: World = {
    graph, dv, users: seeded, dataDir, trustedFetch: trusted.fetch,
    get server() {
      if (!server) throw new Error('server not started')
      return server
    },
    get config() {
      if (!config) throw new Error('server not started')
      return config
    },
    async startServer() {
      // A restarted server keeps its admin port, so Graph subscriptions (which name the URL) stay valid.
      pushPort ??= options.push ? await freePort() : 0
      const port = pushPort
      config = await parseServerConfig({
        crm: { url: dv.url, tokenUrl: dv.tokenUrl, clientId: dv.clientId, clientSecret: dv.clientSecret },
        graph: { url: graph.url, tokenUrl: graph.tokenUrl, tenantId: graph.tenant, ...GRAPH_CLIENT },
        dataDir,
        admin: { port, token },
        ...(options.push ? { push: { notificationUrl: `http://127.0.0.1:${port}/notifications`, clientState } } : {}),
        scheduler: { policy: 'adaptive', debounceMs: 20 },
        mailboxes: { refreshIntervalMs: 3_600_000, retryDelayMs: 50, maxTransientFailures: 3 },
        logLevel: 'silent',
        deletionGuard: { share: 0.3, min: 5 },
        ...options.config,
      })
      server = await SyncServer.start({
        config,
        directory: new CrmMailboxDirectory({ ...config.crm }),
        tester: graphMailboxTester({ ...config.graph, fetch: trusted.fetch }),
        graphFetch: trusted.fetch,
        logger: createLogger(config.logLevel),
      })
      return server
    },
    async api(method, path, body, givenToken) {
      const t = givenToken === undefined ? token : givenToken
      const res = await fetch(`${world.server.adminUrl}${path}`, {
        method,
        headers: { ...(t === null ? {} : { Authorization: `Bearer ${t}` }), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      })
      const text = await res.text()
      let parsed: unknown = text
      try {
        parsed = text ? JSON.parse(text) : undefined
      } catch {
        // not JSON (e.g. /metrics)
      }
      return { status: res.status, body: parsed }
    },
    async syncAndWait(mailboxId) {
      const before = (await world.server.history(mailboxId, 1))[0]?.at ?? 0
      const asked = Date.now()
      world.server.syncNow(mailboxId)
      await until(async () => {
        const last = (await world.server.history(mailboxId, 1))[0]
        return last !== undefined && last.at > before && last.at - last.durationMs >= asked - 5 && !world.server.loop.isRunning(mailboxId)
      }, `a sync of ${mailboxId}`)
    },
    async syncUntilQuiet(mailboxId) {
      for (let i = 0; i < 20; i++) {
        await world.syncAndWait(mailboxId)
        const last = (await world.server.history(mailboxId, 1))[0]!
        if (last.outcome === 'ok' && last.pulled.crm + last.pulled.mailbox + last.pushed.crm + last.pushed.mailbox + last.rejected.crm + last.rejected.mailbox === 0) return
      }
      throw new Error(`mailbox ${mailboxId} did not become quiet`)
    },
    async stop() {
      await server?.stop()
      await graph.close()
      await dv.close()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
  if (options.start !== false) await world.startServer()
  return world
}

export { dataverseApi }

/** Live records of one kind in a mailbox, read through a separate Exchange adapter (not counted by the server). */
export async function mailboxRecords(world: World, email: string, kind: 'email' | 'appointment' | 'contact' | 'task'): Promise<Array<{ nativeId: string; fields: Record<string, unknown> }>> {
  const { ExchangeAdapter } = await import('@concord/adapter-exchange')
  const { pullAll } = await import('@concord/engine/testing')
  const reader = new ExchangeAdapter(
    { replicaId: `reader:${email}`, mailbox: email, tenantId: world.graph.tenant, graphBaseUrl: world.graph.url, tokenUrl: world.graph.tokenUrl, kinds: [kind], ...GRAPH_CLIENT },
    { fetch: world.trustedFetch },
  )
  const { ThrottledError } = await import('@concord/engine')
  let changes: Awaited<ReturnType<typeof pullAll>>['changes'] | undefined
  for (let attempt = 0; changes === undefined; attempt++) {
    try {
      changes = (await pullAll(reader, null)).changes
    } catch (error) {
      if (!(error instanceof ThrottledError) || attempt >= 20) throw error
      await sleep(Math.min(error.retryAfterMs, 1_000))
    }
  }
  const live = new Map<string, Record<string, unknown>>()
  for (const c of changes) {
    if (c.type === 'upsert') live.set(c.nativeId, c.fields)
    else live.delete(c.nativeId)
  }
  return [...live].map(([nativeId, fields]) => ({ nativeId, fields }))
}

/** Graph item id (immutable) of a native id produced by the Exchange adapter. */
export function graphIdOf(nativeId: string): string {
  return nativeId.split('~').at(-1)!
}
