import { Command, InvalidArgumentError } from 'commander'
import type { GraphEmulatorOptions } from './options.js'

function int(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer, got '${v}'`)
    return Number(v)
  }
}

/** Parses CLI flags into emulator options; throws commander's `CommanderError` (message names the flag and value) on bad input. */
export function parseCliArgs(argv: string[]): GraphEmulatorOptions {
  const program = new Command()
    .exitOverride()
    .configureOutput({ writeErr: () => undefined })
    .name('concord-graph-emulator')
    .description('Local Microsoft Graph (Outlook) emulator')
    .option('--port <n>', 'port (0 = any free port)', int('--port'), 0)
    .option('--host <host>', 'bind address', '127.0.0.1')
    .option('--mailboxes <list>', 'comma-separated mailbox UPNs', '')
    .option('--client-id <id>', 'only accept this client id at the token endpoint')
    .option('--client-secret <secret>', 'only accept this client secret at the token endpoint')
    .option('--tenant <id>', 'tenant id')
    .option('--latency-ms <n>', 'latency added to every response', int('--latency-ms'), 0)
    .option('--https', 'serve https with a self-signed certificate', false)
    .option('--data <dir>', 'persist state to a JSON snapshot in this directory')
    .option('--admin-key <key>', 'require x-emulator-admin-key on /_emulator')
    .option('--throttle-requests <n>', 'requests per window per app+mailbox', int('--throttle-requests'))
    .option('--throttle-window-ms <n>', 'throttling window', int('--throttle-window-ms'))
    .option('--throttle-concurrency <n>', 'concurrent requests per app+mailbox', int('--throttle-concurrency'))
  program.parse(argv)
  const o = program.opts<{
    port: number
    host: string
    mailboxes: string
    clientId?: string
    clientSecret?: string
    tenant?: string
    latencyMs: number
    https: boolean
    data?: string
    adminKey?: string
    throttleRequests?: number
    throttleWindowMs?: number
    throttleConcurrency?: number
  }>()
  return {
    port: o.port,
    host: o.host,
    mailboxes: o.mailboxes
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    clientId: o.clientId,
    clientSecret: o.clientSecret,
    tenant: o.tenant,
    latencyMs: o.latencyMs,
    https: o.https,
    dataDir: o.data,
    adminKey: o.adminKey,
    throttle: {
      ...(o.throttleRequests !== undefined ? { requestsPerWindow: o.throttleRequests } : {}),
      ...(o.throttleWindowMs !== undefined ? { windowMs: o.throttleWindowMs } : {}),
      ...(o.throttleConcurrency !== undefined ? { concurrentRequests: o.throttleConcurrency } : {}),
    },
  }
}
