/**
 * The server's configuration: a YAML (or JSON) file validated with zod. Secrets may be given inline, as
 * `{ env: NAME }` or as `{ file: PATH }`; they are resolved once at load time and never logged.
 */
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { DeletionGuardThresholdSchema, MergePolicyConfigSchema } from '@concord/engine'
import { BudgetSchema, PolicyNameSchema } from '@concord/scheduler'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { ConfigError } from './errors.js'

const SecretSchema = z.union([
  z.string().min(1),
  z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name') }),
  z.strictObject({ file: z.string().min(1) }),
])
export type SecretInput = z.input<typeof SecretSchema>

const ms = (def: number) => z.number().int().positive().default(def)
const ItemKindSchema = z.enum(['email', 'appointment', 'contact', 'task'])
const LogLevelSchema = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

export const ServerConfigSchema = z.strictObject({
  crm: z.strictObject({
    /** Organization URL; the Web API is under `/api/data/v9.2`. */
    url: z.url(),
    tokenUrl: z.url(),
    clientId: z.string().min(1),
    clientSecret: SecretSchema,
    /** Only approved mailboxes sync ("Process emails only for approved users/queues"). */
    requireApproval: z.boolean().default(true),
    /**
     * `organization` (default): one change-tracking feed for the whole organization, read by every
     * mailbox for its own user; `per-user`: each mailbox runs its own change tracking as its owner
     * (CRM traffic grows with mailboxes × organization changes; for comparison and small setups).
     */
    changeFeed: z.enum(['organization', 'per-user']).default('organization'),
    /** How often the organization feed polls the CRM when no mailbox sync asked for it. */
    feedIntervalMs: z.number().int().min(1_000).default(30_000),
  }),
  graph: z.strictObject({
    /** Graph origin (no version), https. */
    url: z.url({ protocol: /^https$/, error: 'expected an https URL' }).default('https://graph.microsoft.com'),
    tokenUrl: z.url().optional(),
    tenantId: z.string().min(1),
    clientId: z.string().min(1),
    clientSecret: SecretSchema,
    /** PEM file of an extra CA to trust (the Graph emulator's self-signed certificate). */
    caFile: z.string().min(1).optional(),
  }),
  /** Directory of the server's LevelDB (change logs, bases, cursors, server state). */
  dataDir: z.string().min(1),
  scheduler: z
    .strictObject({
      policy: PolicyNameSchema.refine((p) => p !== 'oracle', 'oracle is a simulator-only policy').default('adaptive'),
      budget: BudgetSchema.optional(),
      /** Delay between a change notification (or "sync now") and the sync, so a burst becomes one sync. */
      debounceMs: z.number().int().min(0).max(600_000).default(3_000),
      /** Mailbox syncs running at once across the server. */
      maxConcurrentSyncs: z.number().int().min(1).max(1000).default(16),
    })
    .prefault({}),
  admin: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8787),
    /** Bearer token of the admin API (at least 16 characters). */
    token: SecretSchema,
  }),
  push: z
    .strictObject({
      /** Public https URL Graph posts change notifications to (the server's `/notifications` route). Absent: no push, polling only. */
      notificationUrl: z.url().optional(),
      /** Secret echoed in every notification; checked on receipt. */
      clientState: SecretSchema.optional(),
    })
    .prefault({}),
  mailboxes: z
    .strictObject({
      /** How often the CRM `mailboxes` table is re-read. */
      refreshIntervalMs: ms(60_000),
      /** Transient failures in a row before a mailbox is disabled (server-side sync: 10). */
      maxTransientFailures: z.number().int().min(1).max(100).default(10),
      /** Wait between retries of a failing mailbox (server-side sync: 5 minutes). */
      retryDelayMs: ms(300_000),
      /** Item kinds synced for mailboxes enabled for appointments, contacts and tasks. */
      kinds: z.array(ItemKindSchema).min(1).default(['email', 'appointment', 'contact', 'task']),
    })
    .prefault({}),
  outgoing: z.strictObject({ intervalMs: ms(300_000) }).prefault({}),
  /** Organization merge policy: directions, conflict policies, default sync filters (engine `MergePolicyConfig`); per-user filters are set through the admin API. */
  merge: MergePolicyConfigSchema.prefault({}),
  /** Mass-deletion guard: a cycle deleting at least `min` items and more than `share` of a mailbox's items waits in quarantine. */
  deletionGuard: DeletionGuardThresholdSchema.optional(),
  logLevel: LogLevelSchema.default('info'),
})
export type ServerConfigInput = z.input<typeof ServerConfigSchema>
type ParsedConfig = z.output<typeof ServerConfigSchema>

type WithSecret<T, K extends keyof T> = Omit<T, K> & { [P in K]: string }
/** The configuration with defaults applied and every secret resolved to its value. */
export type ServerConfig = Omit<ParsedConfig, 'crm' | 'graph' | 'admin' | 'push'> & {
  crm: WithSecret<ParsedConfig['crm'], 'clientSecret'>
  graph: WithSecret<ParsedConfig['graph'], 'clientSecret'>
  admin: WithSecret<ParsedConfig['admin'], 'token'>
  push: Omit<ParsedConfig['push'], 'clientState'> & { clientState?: string | undefined }
}

function keyOf(path: readonly PropertyKey[]): string {
  return path.map(String).join('.') || '(root)'
}

async function resolveSecret(value: SecretInput, key: string, env: NodeJS.ProcessEnv, baseDir: string): Promise<string> {
  if (typeof value === 'string') return value
  if ('env' in value) {
    const v = env[value.env]
    if (v === undefined || v === '') throw new ConfigError(key, `environment variable ${value.env} is not set`)
    return v
  }
  const path = isAbsolute(value.file) ? value.file : resolve(baseDir, value.file)
  try {
    const v = (await readFile(path, 'utf8')).trim()
    if (v === '') throw new ConfigError(key, `secret file ${path} is empty`)
    return v
  } catch (error) {
    if (error instanceof ConfigError) throw error
    throw new ConfigError(key, `cannot read secret file ${path}`, { cause: error })
  }
}

/**
 * Validates a configuration object (already parsed from YAML/JSON) and resolves its secrets.
 * Throws `ConfigError` naming the first offending key; touches no state.
 */
export async function parseServerConfig(input: unknown, options: { env?: NodeJS.ProcessEnv; baseDir?: string } = {}): Promise<ServerConfig> {
  const parsed = ServerConfigSchema.safeParse(input)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const rest = parsed.error.issues.length > 1 ? ` (and ${parsed.error.issues.length - 1} more)` : ''
    throw new ConfigError(keyOf(issue.path), `${issue.message}${rest}`, { cause: parsed.error })
  }
  const c = parsed.data
  const env = options.env ?? process.env
  const baseDir = options.baseDir ?? process.cwd()
  const admin = { ...c.admin, token: await resolveSecret(c.admin.token, 'admin.token', env, baseDir) }
  if (admin.token.length < 16) throw new ConfigError('admin.token', 'must be at least 16 characters')
  const clientState = c.push.clientState === undefined ? undefined : await resolveSecret(c.push.clientState, 'push.clientState', env, baseDir)
  return {
    ...c,
    dataDir: isAbsolute(c.dataDir) ? c.dataDir : resolve(baseDir, c.dataDir),
    crm: { ...c.crm, clientSecret: await resolveSecret(c.crm.clientSecret, 'crm.clientSecret', env, baseDir) },
    graph: {
      ...c.graph,
      clientSecret: await resolveSecret(c.graph.clientSecret, 'graph.clientSecret', env, baseDir),
      ...(c.graph.caFile ? { caFile: isAbsolute(c.graph.caFile) ? c.graph.caFile : resolve(baseDir, c.graph.caFile) } : {}),
    },
    admin,
    push: { ...(c.push.notificationUrl ? { notificationUrl: c.push.notificationUrl } : {}), ...(clientState === undefined ? {} : { clientState }) },
  }
}

/** Reads and validates a YAML or JSON config file; relative paths in it are relative to the file. */
export async function loadServerConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<ServerConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new ConfigError('(file)', `cannot read ${file}: ${(error as Error).message}`, { cause: error })
  }
  let doc: unknown
  try {
    doc = parseYaml(text, { prettyErrors: true })
  } catch (error) {
    throw new ConfigError('(file)', `${file} is not valid YAML: ${(error as Error).message}`, { cause: error })
  }
  return parseServerConfig(doc, { env, baseDir: dirname(resolve(file)) })
}
