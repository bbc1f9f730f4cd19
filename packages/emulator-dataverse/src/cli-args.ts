import { Command, InvalidArgumentError } from 'commander'
import type { DataverseEmulatorOptions } from './server.js'

const int = (name: string) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer, got '${v}'.`)
  return Number(v)
}

/** Parse CLI arguments (without node and script) into emulator options. Throws on bad flags. */
export function parseCliArgs(argv: readonly string[]): DataverseEmulatorOptions {
  const program = new Command()
    .name('concord-dataverse-emulator')
    .description('Local Dataverse (Dynamics 365) Web API emulator')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: (s) => process.stdout.write(s) })
    .option('--port <n>', 'port to listen on (0 = a free port)', int('--port'), 0)
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .option('--users <emails>', 'comma-separated system users to create (each gets a mailbox)', '')
    .option('--client-id <id>', 'OAuth client id of the application user')
    .option('--client-secret <secret>', 'OAuth client secret')
    .option('--latency-ms <n>', 'extra latency per Web API request', int('--latency-ms'), 0)
    .option('--data <dir>', 'persist to DIR (atomic JSON snapshot); default in memory')
    .option('--mailbox-state <state>', 'initial state of seeded mailboxes: enabled | pending', 'enabled')
    .option('--test-and-enable <mode>', 'who runs Test & Enable: auto (the emulator) | external (a server-side-sync runtime)', 'auto')
    .option('--retention-days <n>', 'change tracking retention (ExpireChangeTrackingInDays)', int('--retention-days'), 7)
  program.parse([...argv], { from: 'user' })
  const o = program.opts<{
    port: number
    host: string
    users: string
    clientId?: string
    clientSecret?: string
    latencyMs: number
    data?: string
    mailboxState: string
    testAndEnable: string
    retentionDays: number
  }>()
  if (o.testAndEnable !== 'auto' && o.testAndEnable !== 'external') {
    throw new InvalidArgumentError(`--test-and-enable must be 'auto' or 'external', got '${o.testAndEnable}'.`)
  }
  if (o.port > 65535) throw new InvalidArgumentError(`--port must be at most 65535, got ${o.port}.`)
  if (o.mailboxState !== 'enabled' && o.mailboxState !== 'pending') {
    throw new InvalidArgumentError(`--mailbox-state must be 'enabled' or 'pending', got '${o.mailboxState}'.`)
  }
  const mailbox: 'enabled' | 'pending' = o.mailboxState
  const users = o.users
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((email) => ({ email, mailbox }))
  return {
    port: o.port,
    host: o.host,
    users,
    ...(o.clientId ? { clientId: o.clientId } : {}),
    ...(o.clientSecret ? { clientSecret: o.clientSecret } : {}),
    latencyMs: o.latencyMs,
    ...(o.data ? { dataDir: o.data } : {}),
    changeTrackingRetentionDays: o.retentionDays,
    testAndEnable: o.testAndEnable,
  }
}
