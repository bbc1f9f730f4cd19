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

const MailEndpointSchema = z.strictObject({
  host: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
  /** Implicit TLS (IMAPS 993, POP3S 995, SMTPS 465). */
  tls: z.boolean().default(false),
  /** SMTP only: refuse to send unless STARTTLS succeeds. */
  requireTls: z.boolean().default(false),
  timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
})

const MailboxCredentialsSchema = z.strictObject({
  /** IMAP/POP3 login. */
  user: z.string().min(1).max(320),
  password: SecretSchema,
  /** SMTP login (default: none, an unauthenticated relay); `smtpPassword` goes with it. */
  smtpUser: z.string().min(1).max(320).optional(),
  smtpPassword: SecretSchema.optional(),
})

/**
 * An email server profile (server-side sync's `emailserverprofile`): `name` matches the CRM profile
 * the mailbox row points at. `exchange` = Graph (the `graph` section); `imap`/`pop3` = a plain mail
 * server for incoming email plus SMTP for outgoing, with credentials per mailbox address.
 */
const EmailServerProfileSchema = z
  .strictObject({
    name: z.string().min(1).max(200),
    type: z.enum(['exchange', 'imap', 'pop3']),
    incoming: MailEndpointSchema.optional(),
    outgoing: MailEndpointSchema.optional(),
    /** IMAP: folders synced (the Sent folder always is too). */
    folders: z.array(z.string().min(1).max(1000)).min(1).max(100).default(['INBOX']),
    /** IMAP: where sent copies are filed. */
    sentFolder: z.string().min(1).max(1000).default('Sent'),
    /** POP3: keep messages on the server. */
    leaveOnServer: z.boolean().default(true),
    /** Credentials per mailbox address (lower-cased when matched). */
    mailboxes: z.record(z.string().min(3).max(320), MailboxCredentialsSchema).default({}),
  })
  .superRefine((p, ctx) => {
    if (p.type !== 'exchange' && !p.incoming) ctx.addIssue({ code: 'custom', path: ['incoming'], message: `an ${p.type} profile needs an incoming server` })
    if (p.type === 'exchange' && (p.incoming || p.outgoing || Object.keys(p.mailboxes).length > 0)) ctx.addIssue({ code: 'custom', path: ['type'], message: 'an exchange profile uses the graph section; incoming, outgoing and mailboxes are for imap/pop3' })
  })

const BudgetLimitSchema = z.strictObject({ requests: z.number().int().min(1), perMs: z.number().int().min(1_000) })

const ClusterConfigSchema = z.strictObject({
  /** Redis URL; `--cluster` overrides it. */
  url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL').optional(),
  /** Cluster name: instances with the same Redis and name share the mailboxes. */
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)').default('concord'),
  /** Shards the mailboxes are partitioned into; fixed for the life of a cluster. */
  shards: z.number().int().min(1).max(4096).default(64),
  /** Shard lease lifetime: a dead instance's shards move after at most this long. */
  leaseTtlMs: z.number().int().min(1_000).max(600_000).default(15_000),
  /** This instance's name in the cluster (default hostname:pid). */
  instanceId: z.string().min(1).max(200).optional(),
  /** Cluster-wide request budgets (Redis-backed): Graph per app and per mailbox, Dataverse per user. */
  budgets: z
    .strictObject({
      graphPerApp: BudgetLimitSchema.default({ requests: 1_000_000, perMs: 600_000 }),
      graphPerMailbox: BudgetLimitSchema.default({ requests: 10_000, perMs: 600_000 }),
      crmPerUser: BudgetLimitSchema.default({ requests: 6_000, perMs: 300_000 }),
    })
    .prefault({}),
})
export type ClusterConfig = z.output<typeof ClusterConfigSchema>

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
  store: z
    .strictObject({
      /**
       * Read-cache entries of each engine store — one per mailbox and one per client-sync user — so the
       * caches take about (mailboxes + client-sync users) × cacheEntries × ~1.5 KB of heap at most. A
       * mailbox item takes ~5 entries; a miss costs one LevelDB read. 0 = no cache.
       */
      cacheEntries: z.number().int().min(0).max(1_000_000).default(5_000),
    })
    .prefault({}),
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
  /**
   * Scale-out (`concord serve --cluster redis://…`): instances sharing the mailboxes through Redis. Only
   * read when the server runs in cluster mode; the single-process mode needs no Redis.
   */
  cluster: ClusterConfigSchema.prefault({}),
  /** Email server profiles by CRM profile name; a mailbox without a CRM profile uses Exchange (Graph). */
  profiles: z
    .array(EmailServerProfileSchema)
    .max(100)
    .default([])
    .refine((list) => new Set(list.map((p) => p.name.toLowerCase())).size === list.length, 'profile names must be unique'),
})
export type ServerConfigInput = z.input<typeof ServerConfigSchema>
type ParsedConfig = z.output<typeof ServerConfigSchema>

type WithSecret<T, K extends keyof T> = Omit<T, K> & { [P in K]: string }
export type MailEndpoint = z.output<typeof MailEndpointSchema>
/** Resolved mailbox credentials of an imap/pop3 profile (secrets are values here: never log them). */
export interface MailboxCredentials {
  user: string
  password: string
  smtpUser?: string | undefined
  smtpPassword?: string | undefined
}
export type EmailServerProfile = Omit<z.output<typeof EmailServerProfileSchema>, 'mailboxes'> & { mailboxes: Record<string, MailboxCredentials> }
/** The configuration with defaults applied and every secret resolved to its value. */
export type ServerConfig = Omit<ParsedConfig, 'crm' | 'graph' | 'admin' | 'push' | 'profiles'> & {
  crm: WithSecret<ParsedConfig['crm'], 'clientSecret'>
  graph: WithSecret<ParsedConfig['graph'], 'clientSecret'>
  admin: WithSecret<ParsedConfig['admin'], 'token'>
  push: Omit<ParsedConfig['push'], 'clientState'> & { clientState?: string | undefined }
  profiles: EmailServerProfile[]
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
  const profiles: EmailServerProfile[] = []
  for (const [i, p] of c.profiles.entries()) {
    const mailboxes: Record<string, MailboxCredentials> = {}
    for (const [address, cred] of Object.entries(p.mailboxes)) {
      const key = `profiles.${i}.mailboxes.${address}`
      if ((cred.smtpUser === undefined) !== (cred.smtpPassword === undefined)) throw new ConfigError(key, 'smtpUser and smtpPassword go together')
      mailboxes[address.toLowerCase()] = {
        user: cred.user,
        password: await resolveSecret(cred.password, `${key}.password`, env, baseDir),
        ...(cred.smtpUser !== undefined && cred.smtpPassword !== undefined ? { smtpUser: cred.smtpUser, smtpPassword: await resolveSecret(cred.smtpPassword, `${key}.smtpPassword`, env, baseDir) } : {}),
      }
    }
    profiles.push({ ...p, mailboxes })
  }
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
    profiles,
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
