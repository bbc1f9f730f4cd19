/**
 * `concord`: `serve` runs the sync server from a config file; `demo` runs it against in-process
 * emulators; the other commands talk to a running server's admin API.
 */
import { Command, CommanderError } from 'commander'
import { loadServerConfig } from './config.js'
import { startDemo } from './demo.js'
import { ConfigError, ServerError } from './errors.js'
import { CrmMailboxDirectory } from './mailbox/crm-directory.js'
import { graphMailboxTester } from './mailbox/graph-tester.js'
import { SyncServer } from './server.js'
import { ClusterInstance } from './cluster/instance.js'
import { createTrustedFetch } from '@concord/adapter-exchange'
import { readFile } from 'node:fs/promises'
import { settlesWithin } from './util/deadline.js'

interface Io {
  out: (s: string) => void
  err: (s: string) => void
}

const defaultIo: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }

const SHUTDOWN_DEADLINE_MS = 60_000

/** Resolves on SIGTERM or SIGINT. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => () => resolve(sig)
    process.once('SIGTERM', on('SIGTERM'))
    process.once('SIGINT', on('SIGINT'))
  })
}

async function serve(configPath: string, clusterUrl: string | undefined, io: Io): Promise<number> {
  const config = await loadServerConfig(configPath)
  const graphFetch = config.graph.caFile ? createTrustedFetch({ ca: await readFile(config.graph.caFile, 'utf8') }).fetch : globalThis.fetch.bind(globalThis)
  const redisUrl = clusterUrl ?? config.cluster.url
  if (redisUrl !== undefined) {
    if (!/^rediss?:\/\//.test(redisUrl)) throw new ServerError('Usage', `--cluster: expected a redis:// or rediss:// URL, got '${redisUrl}'`)
    const instance = await ClusterInstance.start({
      config,
      redisUrl,
      directory: (crmFetch) => new CrmMailboxDirectory({ ...config.crm, fetch: crmFetch }),
      tester: graphMailboxTester({ ...config.graph, fetch: graphFetch }),
      graphFetch,
    })
    io.out(`${JSON.stringify({ adminUrl: instance.adminUrl, instanceId: instance.id, cluster: instance.keys.cluster })}\n`)
    const signal = await untilSignal()
    instance.log.info({ signal }, 'shutting down')
    return stoppedInTime(instance.stop(), instance.log)
  }
  const server = await SyncServer.start({
    config,
    directory: new CrmMailboxDirectory({ ...config.crm }),
    tester: graphMailboxTester({ ...config.graph, fetch: graphFetch }),
    graphFetch,
  })
  io.out(`${JSON.stringify({ adminUrl: server.adminUrl })}\n`)
  const signal = await untilSignal()
  server.log.info({ signal }, 'shutting down')
  return stoppedInTime(server.stop(), server.log)
}

/** A graceful stop gets SHUTDOWN_DEADLINE_MS; past it the process exits anyway (1), saying so. */
async function stoppedInTime(stopping: Promise<void>, log: { error: (o: object, msg: string) => void }): Promise<number> {
  if (await settlesWithin(stopping, SHUTDOWN_DEADLINE_MS)) {
    await stopping
    return 0
  }
  log.error({ deadlineMs: SHUTDOWN_DEADLINE_MS }, 'the graceful shutdown did not finish in time; exiting anyway')
  return 1
}

async function demo(port: number, io: Io): Promise<number> {
  const d = await startDemo({ port, logLevel: 'warn' })
  const token = d.config.admin.token
  io.out(
    `Concord demo: syncing ${d.users.length} mailboxes (${d.users.map((u) => u.email).join(', ')}) between the Dataverse emulator (${d.dataverse.url}) and the Graph emulator (${d.graph.url}).\n` +
      `Admin API at ${d.server.adminUrl} (token ${token}) — try:\n` +
      `  curl -H 'Authorization: Bearer ${token}' ${d.server.adminUrl}/api/mailboxes\n` +
      `  CONCORD_ADMIN_URL=${d.server.adminUrl} CONCORD_ADMIN_TOKEN=${token} npx concord mailboxes\n` +
      ('email' in d.imap
        ? `IMAP mailbox ${d.imap.email} on a local Dovecot (${d.imap.host}:${d.imap.imapPort}), outgoing mail into an in-process SMTP sink.\n`
        : `No IMAP mailbox in this demo: ${d.imap.skipped}.\n`) +
      `Press Ctrl+C to stop.\n`,
  )
  await untilSignal()
  await d.stop()
  return 0
}

/** A JSON request to the admin API; errors print the server's message. */
async function adminCall(opts: { url: string; token: string | undefined }, method: string, path: string, body?: unknown): Promise<unknown> {
  if (!opts.token) throw new ServerError('Usage', 'an admin token is required: --token or CONCORD_ADMIN_TOKEN')
  let res: Response
  try {
    res = await fetch(`${opts.url.replace(/\/$/, '')}${path}`, {
      method,
      headers: { Authorization: `Bearer ${opts.token}`, Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
  } catch (error) {
    throw new ServerError('Usage', `cannot reach the admin API at ${opts.url}: ${(error as Error).message}`, { cause: error })
  }
  const text = await res.text()
  const json: unknown = text ? JSON.parse(text) : {}
  if (!res.ok) throw new ServerError(res.status === 404 ? 'NotFound' : res.status === 401 ? 'Auth' : 'BadRequest', `${res.status}: ${(json as { message?: string }).message ?? text}`)
  return json
}

function mailboxTable(list: Array<Record<string, unknown>>): string {
  const rows = list.map((m) => [String(m['mailboxId']), String(m['email'] ?? ''), String(m['state']), String(m['failures']), m['lastSuccessAt'] ? new Date(Number(m['lastSuccessAt'])).toISOString() : '-', String(m['reason'] ?? '')])
  const head = ['MAILBOX', 'EMAIL', 'STATE', 'FAILURES', 'LAST SUCCESS', 'REASON']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n'
}

export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  let exit = 0
  const program = new Command('concord')
    .description('Concord sync server')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .option('--url <url>', 'admin API URL', process.env['CONCORD_ADMIN_URL'] ?? 'http://127.0.0.1:8787')
    .option('--token <token>', 'admin API token (default: $CONCORD_ADMIN_TOKEN)', process.env['CONCORD_ADMIN_TOKEN'])
  const admin = () => program.opts<{ url: string; token?: string }>() as { url: string; token: string | undefined }
  const print = (v: unknown) => io.out(`${JSON.stringify(v, null, 2)}\n`)

  program
    .command('serve')
    .description('run the sync server (with --cluster: as one instance of a cluster sharing the mailboxes through Redis)')
    .requiredOption('--config <file>', 'YAML config file')
    .option('--cluster <redis-url>', 'join the cluster on this Redis (redis://host:port); default: single process, no Redis')
    .action(async (o: { config: string; cluster?: string }) => {
      exit = await serve(o.config, o.cluster, io)
    })
  program.command('demo').description('run the server against in-process emulators with seeded users').option('--port <n>', 'admin API port (0 = any)', '8787').action(async (o: { port: string }) => {
    exit = await demo(Number(o.port), io)
  })
  program.command('mailboxes').description('list mailboxes and their state').option('--json', 'print JSON').action(async (o: { json?: boolean }) => {
    const r = (await adminCall(admin(), 'GET', '/api/mailboxes')) as { mailboxes: Array<Record<string, unknown>> }
    if (o.json) print(r)
    else io.out(mailboxTable(r.mailboxes))
  })
  program.command('cluster').description('cluster mode: members, which instance owns which shard, fencing tokens').action(async () => print(await adminCall(admin(), 'GET', '/api/cluster')))
  program.command('mailbox').argument('<id>').description('one mailbox: state and scheduler view').action(async (id: string) => print(await adminCall(admin(), 'GET', `/api/mailboxes/${encodeURIComponent(id)}`)))
  program.command('history').argument('<id>').description('recent sync cycles of a mailbox').action(async (id: string) => print(await adminCall(admin(), 'GET', `/api/mailboxes/${encodeURIComponent(id)}/history`)))
  program.command('schedule').argument('<id>').description('why the scheduler synced the mailbox when it did').action(async (id: string) => print(await adminCall(admin(), 'GET', `/api/mailboxes/${encodeURIComponent(id)}/schedule`)))
  program.command('sync').argument('<id>').description('sync a mailbox now').action(async (id: string) => print(await adminCall(admin(), 'POST', `/api/mailboxes/${encodeURIComponent(id)}/sync`)))
  program.command('resync').argument('<id>').description('re-list both sides of a mailbox (no duplicates)').action(async (id: string) => print(await adminCall(admin(), 'POST', `/api/mailboxes/${encodeURIComponent(id)}/resync`)))
  program.command('conflicts').argument('<id>').description('conflicts kept for the user (keep-both)').action(async (id: string) => print(await adminCall(admin(), 'GET', `/api/mailboxes/${encodeURIComponent(id)}/conflicts`)))
  program.command('resolve').arguments('<id> <concordId> <field> <winner>').description('resolve a conflict: winner crm|mailbox').action(async (id: string, concordId: string, field: string, winner: string) =>
    print(await adminCall(admin(), 'POST', `/api/mailboxes/${encodeURIComponent(id)}/conflicts/resolve`, { concordId, field, winner })))
  program.command('quarantine').argument('<id>').description('mass deletions held for confirmation').option('--confirm <qid>', 'apply the held deletes').option('--reject <qid>', 'restore instead of deleting').action(async (id: string, o: { confirm?: string; reject?: string }) => {
    const base = `/api/mailboxes/${encodeURIComponent(id)}/quarantine`
    if (o.confirm) print(await adminCall(admin(), 'POST', `${base}/${encodeURIComponent(o.confirm)}/confirm`))
    else if (o.reject) print(await adminCall(admin(), 'POST', `${base}/${encodeURIComponent(o.reject)}/reject`))
    else print(await adminCall(admin(), 'GET', base))
  })
  program.command('explain').arguments('<id> <concordId> <field>').description('why a field of an item has its value').action(async (id: string, item: string, field: string) =>
    print(await adminCall(admin(), 'GET', `/api/mailboxes/${encodeURIComponent(id)}/explain?item=${encodeURIComponent(item)}&field=${encodeURIComponent(field)}`)))
  program.command('direction').arguments('<kind> <field> <direction>').description('set a field direction: both|toCrm|toExchange|none').action(async (kind: string, field: string, direction: string) =>
    print(await adminCall(admin(), 'PUT', '/api/directions', { kind, field, direction })))
  program.command('filters').arguments('<userId> <json>').description("set a user's sync filters (JSON)").action(async (userId: string, json: string) => {
    let filters: unknown
    try {
      filters = JSON.parse(json)
    } catch {
      throw new ServerError('Usage', 'filters must be JSON')
    }
    print(await adminCall(admin(), 'PUT', `/api/users/${encodeURIComponent(userId)}/filters`, { filters }))
  })

  try {
    await program.parseAsync(argv, { from: 'user' })
    return exit
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2
    if (error instanceof ConfigError) {
      io.err(`concord: ${error.message}\n`)
      return 2
    }
    if (error instanceof ServerError) {
      io.err(`concord: ${error.message}\n`)
      return error.code === 'Usage' || error.code === 'BadRequest' ? 2 : 1
    }
    io.err(`concord: ${(error as Error).message}\n`)
    return 1
  }
}
