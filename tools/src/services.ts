/**
 * Test helpers that provide a real Redis and a real Dovecot (IMAP + POP3 + LMTP) to a test.
 *
 * Each helper tries, in order: a running service named by the environment, a container (testcontainers, only
 * when a container runtime answers), then the local binary started through tools/services/*-start.sh on free
 * ports in a temp dir. When nothing works it throws a ServiceError whose message says how to install the
 * binary: tests never skip silently.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { appendFile, chmod, mkdtemp, rm } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { ServiceError } from './errors.js'

export type ServiceVia = 'env' | 'testcontainers' | 'local-binary'

export const DOVECOT_INSTALL_COMMAND = 'apt-get install -y dovecot-imapd dovecot-pop3d dovecot-lmtpd'
export const REDIS_INSTALL_COMMAND = 'apt-get install -y redis-server'

/** Absolute path of tools/services (the start/stop scripts). */
export const SERVICES_DIR = fileURLToPath(new URL('../services/', import.meta.url))

export interface DovecotUser {
  readonly name: string
  readonly password: string
}

/** Users every Dovecot started by these helpers (or by dovecot-start.sh) has. */
export const DEFAULT_DOVECOT_USERS: readonly DovecotUser[] = [
  { name: 'alice', password: 'alicepw' },
  { name: 'bob', password: 'bobpw' },
]

export interface ServiceOptions {
  /** Strategies to try, in order. Default: ['env', 'testcontainers', 'local-binary']. */
  readonly via?: readonly ServiceVia[]
  /** Environment to read REDIS_URL / IMAP_PORT ... from. Default: process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** local-binary: state directory. Default: a fresh temp dir, removed by stop(). */
  readonly dir?: string
  /** local-binary: directory holding the *-start.sh / *-stop.sh scripts. Default: tools/services. */
  readonly scriptsDir?: string
  /** local-binary: readiness polls (100 ms apart) before giving up. Default 150. */
  readonly startAttempts?: number
}

export interface RedisOptions extends ServiceOptions {
  /** local-binary: path of redis-server. Default: found on PATH, else /usr/bin/redis-server. */
  readonly redisBin?: string
  /** testcontainers: image. Default redis:7-alpine. */
  readonly image?: string
}

export interface DovecotOptions extends ServiceOptions {
  /** local-binary: path of dovecot. Default: found on PATH, else /usr/sbin/dovecot. */
  readonly dovecotBin?: string
  /** Users in addition to alice/alicepw and bob/bobpw (local-binary and testcontainers). */
  readonly users?: readonly DovecotUser[]
  /** testcontainers: image. Default dovecot/dovecot:2.3.21. */
  readonly image?: string
}

export interface RedisService {
  readonly via: ServiceVia
  readonly host: string
  readonly port: number
  /** redis://host:port */
  readonly url: string
  /** local-binary only: state directory and server pid. */
  readonly dir?: string | undefined
  readonly pid?: number | undefined
  /** Variables describing this service, e.g. for a child process: REDIS_URL, REDIS_HOST, REDIS_PORT. */
  readonly env: Readonly<Record<string, string>>
  /** Stops what this helper started (no-op for 'env'). Idempotent. */
  stop(): Promise<void>
}

export interface DovecotService {
  readonly via: ServiceVia
  readonly host: string
  readonly imapPort: number
  readonly pop3Port: number
  readonly lmtpPort: number
  readonly ports: { readonly imap: number; readonly pop3: number; readonly lmtp: number }
  /** Accounts known to exist (alice, bob, plus extras). */
  readonly users: readonly DovecotUser[]
  readonly dir?: string | undefined
  readonly pid?: number | undefined
  /** IMAP_HOST, IMAP_PORT, POP3_PORT, LMTP_PORT (+ DOVECOT_DIR for local-binary). */
  readonly env: Readonly<Record<string, string>>
  /**
   * Adds an account to the running server (appends to DIR/users, which Dovecot re-reads on change), e.g. to
   * give a test its own mailbox. Needs the state dir: local-binary, or env with DOVECOT_DIR set.
   */
  addUser(user: DovecotUser): Promise<void>
  stop(): Promise<void>
}

const DEFAULT_VIA: readonly ServiceVia[] = ['env', 'testcontainers', 'local-binary']
const LOCALHOST = '127.0.0.1'

// ---------------------------------------------------------------------------------------------------------
// ports

/** A TCP port that was free on `host` a moment ago (bind port 0, read it, close). */
export async function freePort(host: string = LOCALHOST): Promise<number> {
  return (await freePorts(1, host))[0]!
}

/**
 * `count` distinct TCP ports that were free on `host` a moment ago. They are bound all at once before any is
 * closed: picked one after the other, the port just closed could come back (Dovecot then refused its
 * configuration with "duplicate listener").
 */
export async function freePorts(count: number, host: string = LOCALHOST): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer())
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolve, reject) => {
            server.unref()
            server.once('error', reject)
            server.listen(0, host, () => {
              const address = server.address()
              if (typeof address === 'object' && address !== null && address.port > 0) resolve(address.port)
              else reject(new Error('could not read the bound port'))
            })
          }),
      ),
    )
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))))
  }
}

export interface WaitForPortOptions {
  readonly host?: string
  /** Connection attempts before giving up. Default 100. */
  readonly attempts?: number
  /** Pause between attempts. Default 100 ms. */
  readonly intervalMs?: number
}

function tryConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    const done = (ok: boolean) => {
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2000, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/** Resolves once host:port accepts a TCP connection; throws ServiceError('Timeout') after `attempts` tries. */
export async function waitForPort(port: number, options: WaitForPortOptions = {}): Promise<void> {
  const parsed = z
    .object({
      port: portSchema,
      host: z.string().min(1).default(LOCALHOST),
      attempts: z.number().int().min(1).default(100),
      intervalMs: z.number().int().min(0).default(100),
    })
    .safeParse({ port, ...options })
  if (!parsed.success) throw new ServiceError('InvalidOptions', `waitForPort: ${describeZodError(parsed.error)}`)
  const { host, attempts, intervalMs } = parsed.data
  for (let i = 0; i < attempts; i++) {
    if (await tryConnect(host, port)) return
    if (i + 1 < attempts) await sleep(intervalMs)
  }
  throw new ServiceError('Timeout', `nothing accepted connections on ${host}:${port} after ${attempts} attempts`)
}

// ---------------------------------------------------------------------------------------------------------
// public helpers

/** A Redis for a test: REDIS_URL from the env, else a container, else a local redis-server. */
export async function useRedis(options: RedisOptions = {}): Promise<RedisService> {
  const env = options.env ?? process.env
  const via = options.via ?? DEFAULT_VIA
  for (const strategy of via) {
    if (strategy === 'env') {
      const fromEnv = await redisFromEnv(env)
      if (fromEnv) return fromEnv
    } else if (strategy === 'testcontainers') {
      if (await containerRuntimeAvailable(env)) return startRedisContainer(options)
    } else {
      return startLocalRedis(options)
    }
  }
  throw new ServiceError(
    'NotInstalled',
    `no Redis available via ${via.join(', ')}: set REDIS_URL to a running server, or install redis-server ` +
      `(${REDIS_INSTALL_COMMAND}) and allow the 'local-binary' strategy`,
  )
}

/** A Dovecot for a test: IMAP_PORT/POP3_PORT/LMTP_PORT from the env, else a container, else the local binary. */
export async function useDovecot(options: DovecotOptions = {}): Promise<DovecotService> {
  const env = options.env ?? process.env
  const via = options.via ?? DEFAULT_VIA
  for (const strategy of via) {
    if (strategy === 'env') {
      const fromEnv = await dovecotFromEnv(env)
      if (fromEnv) return fromEnv
    } else if (strategy === 'testcontainers') {
      if (await containerRuntimeAvailable(env)) return startDovecotContainer(options)
    } else {
      return startLocalDovecot(options)
    }
  }
  throw new ServiceError(
    'NotInstalled',
    `no Dovecot available via ${via.join(', ')}: set IMAP_PORT, POP3_PORT and LMTP_PORT to a running server, ` +
      `or install Dovecot (${DOVECOT_INSTALL_COMMAND}) and allow the 'local-binary' strategy`,
  )
}

// ---------------------------------------------------------------------------------------------------------
// env strategy

const portSchema = z.number().int().min(1).max(65535)

function envPort(env: Readonly<Record<string, string | undefined>>, name: string): number {
  const raw = env[name]
  if (raw === undefined || raw === '') {
    throw new ServiceError('InvalidEnv', `${name} is not set (it is required together with IMAP_PORT)`)
  }
  const parsed = portSchema.safeParse(/^\d+$/.test(raw) ? Number(raw) : Number.NaN)
  if (!parsed.success) throw new ServiceError('InvalidEnv', `${name}='${raw}' is not a TCP port (1-65535)`)
  return parsed.data
}

async function ensureReachable(what: string, host: string, port: number, hint: string): Promise<void> {
  try {
    await waitForPort(port, { host, attempts: 10, intervalMs: 100 })
  } catch (error) {
    throw new ServiceError('EnvUnreachable', `${what} but nothing accepts connections on ${host}:${port}. ${hint}`, {
      cause: error,
    })
  }
}

async function redisFromEnv(env: Readonly<Record<string, string | undefined>>): Promise<RedisService | undefined> {
  let host: string
  let port: number
  let source: string
  if (env.REDIS_URL) {
    source = `REDIS_URL=${env.REDIS_URL}`
    let url: URL
    try {
      url = new URL(env.REDIS_URL)
    } catch (error) {
      throw new ServiceError('InvalidEnv', `REDIS_URL='${env.REDIS_URL}' is not a URL (expected redis://host:port)`, {
        cause: error,
      })
    }
    if (url.protocol !== 'redis:') {
      throw new ServiceError('InvalidEnv', `REDIS_URL='${env.REDIS_URL}' must use the redis: scheme`)
    }
    host = url.hostname.replace(/^\[(.*)\]$/, '$1') || LOCALHOST
    port = url.port === '' ? 6379 : Number(url.port)
  } else if (env.REDIS_PORT) {
    source = `REDIS_PORT=${env.REDIS_PORT}`
    host = env.REDIS_HOST || LOCALHOST
    port = envPort(env, 'REDIS_PORT')
  } else {
    return undefined
  }
  await ensureReachable(`${source} is set`, host, port, 'Unset it, or start Redis: tools/services/redis-start.sh DIR')
  const url = env.REDIS_URL ?? `redis://${host}:${port}`
  return {
    via: 'env',
    host,
    port,
    url,
    env: { REDIS_URL: url, REDIS_HOST: host, REDIS_PORT: String(port) },
    stop: async () => {},
  }
}

/** Parses DOVECOT_USERS="carol:carolpw,dave:davepw". */
function parseUserList(raw: string | undefined, field: string): DovecotUser[] {
  if (!raw) return []
  return raw
    .split(',')
    .filter((entry) => entry !== '')
    .map((entry) => {
      const i = entry.indexOf(':')
      const user = { name: i < 0 ? '' : entry.slice(0, i), password: i < 0 ? '' : entry.slice(i + 1) }
      const parsed = userSchema.safeParse(user)
      if (!parsed.success) {
        throw new ServiceError('InvalidEnv', `${field} entry '${entry}' is invalid: ${describeZodError(parsed.error)}`)
      }
      return parsed.data
    })
}

const userSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'name must match [A-Za-z0-9._-]+'),
  password: z.string().regex(/^[^\s:"\\]+$/, 'password must be non-empty without whitespace, ":", \'"\' or "\\"'),
})

async function dovecotFromEnv(
  env: Readonly<Record<string, string | undefined>>,
): Promise<DovecotService | undefined> {
  if (!env.IMAP_PORT) return undefined
  const host = env.IMAP_HOST || LOCALHOST
  const imap = envPort(env, 'IMAP_PORT')
  const pop3 = envPort(env, 'POP3_PORT')
  const lmtp = envPort(env, 'LMTP_PORT')
  const hint = 'Unset IMAP_PORT, or start Dovecot: tools/services/dovecot-start.sh DIR'
  await ensureReachable(`IMAP_PORT=${imap} is set`, host, imap, hint)
  await ensureReachable(`POP3_PORT=${pop3} is set`, host, pop3, hint)
  await ensureReachable(`LMTP_PORT=${lmtp} is set`, host, lmtp, hint)
  const users = [...DEFAULT_DOVECOT_USERS, ...parseUserList(env.DOVECOT_USERS, 'DOVECOT_USERS')]
  return {
    via: 'env',
    host,
    imapPort: imap,
    pop3Port: pop3,
    lmtpPort: lmtp,
    ports: { imap, pop3, lmtp },
    users,
    dir: env.DOVECOT_DIR,
    env: { IMAP_HOST: host, IMAP_PORT: String(imap), POP3_PORT: String(pop3), LMTP_PORT: String(lmtp) },
    addUser: userAdder(env.DOVECOT_DIR || undefined, users, { host, port: imap }),
    stop: async () => {},
  }
}

/** One IMAP LOGIN over a raw socket: true on OK, false on NO/BAD or a connection problem. */
function imapLoginWorks(host: string, port: number, user: DovecotUser): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    let buffer = ''
    let sent = false
    const finish = (ok: boolean) => {
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.end()
      socket.destroy()
      resolve(ok)
    }
    socket.setEncoding('utf8')
    socket.setTimeout(5000, () => finish(false))
    socket.once('error', () => finish(false))
    socket.once('close', () => finish(false))
    socket.on('data', (chunk: string) => {
      buffer += chunk
      if (!sent && buffer.includes('\r\n')) {
        sent = true
        socket.write(`a LOGIN "${user.name}" "${user.password}"\r\n`)
      }
      const m = /^a (OK|NO|BAD)\b/m.exec(buffer)
      if (m) {
        if (m[1] === 'OK') socket.write('b LOGOUT\r\n')
        finish(m[1] === 'OK')
      }
    })
  })
}

function userAdder(
  dir: string | undefined,
  users: DovecotUser[],
  imap: { host: string; port: number },
): (user: DovecotUser) => Promise<void> {
  return async (user) => {
    const parsed = userSchema.safeParse(user)
    if (!parsed.success) throw new ServiceError('InvalidOptions', `addUser: ${describeZodError(parsed.error)}`)
    if (dir === undefined) {
      throw new ServiceError(
        'Unsupported',
        'addUser needs the Dovecot state dir: use the local-binary strategy or set DOVECOT_DIR next to IMAP_PORT',
      )
    }
    const file = join(dir, 'users')
    if (!existsSync(file)) throw new ServiceError('Unsupported', `addUser: ${file} does not exist`)
    const existing = users.find((u) => u.name === parsed.data.name)
    if (existing) {
      if (existing.password === parsed.data.password) return
      throw new ServiceError('InvalidOptions', `addUser: user '${parsed.data.name}' already exists with another password`)
    }
    await appendFile(file, `${parsed.data.name}:{PLAIN}${parsed.data.password}::::::\n`)
    users.push(parsed.data)
    // Dovecot re-reads a changed passwd-file at most once per second: resolve only once the account works.
    for (let attempt = 0; attempt < 50; attempt++) {
      if (await imapLoginWorks(imap.host, imap.port, parsed.data)) return
      await sleep(100)
    }
    throw new ServiceError('Timeout', `addUser: '${parsed.data.name}' still cannot log in after 50 attempts`)
  }
}

// ---------------------------------------------------------------------------------------------------------
// testcontainers strategy

const runtimeProbes = new Map<string, Promise<boolean>>()

/**
 * True when a container runtime answers. Cheap when there is none: without DOCKER_HOST, a known socket or a
 * ~/.testcontainers.properties file it does not even import testcontainers. CONCORD_NO_CONTAINERS=1 disables.
 */
export function containerRuntimeAvailable(env: Readonly<Record<string, string | undefined>> = process.env): Promise<boolean> {
  if (env.CONCORD_NO_CONTAINERS === '1') return Promise.resolve(false)
  const home = env.HOME ?? homedir()
  const runtimeDir = env.XDG_RUNTIME_DIR
  const hints = [
    '/var/run/docker.sock',
    '/run/podman/podman.sock',
    join(home, '.docker', 'run', 'docker.sock'),
    join(home, '.docker', 'desktop', 'docker.sock'),
    join(home, '.testcontainers.properties'),
    ...(runtimeDir ? [join(runtimeDir, 'docker.sock'), join(runtimeDir, 'podman', 'podman.sock')] : []),
  ]
  const present = hints.filter((path) => existsSync(path))
  if (!env.DOCKER_HOST && present.length === 0) return Promise.resolve(false)
  // testcontainers itself reads process.env (DOCKER_HOST, TESTCONTAINERS_*); the probe is cached per set-up.
  const key = `${process.env.DOCKER_HOST ?? ''}|${env.DOCKER_HOST ?? ''}|${present.join(',')}`
  let probe = runtimeProbes.get(key)
  if (!probe) {
    probe = (async () => {
      try {
        const { getContainerRuntimeClient } = await import('testcontainers')
        await getContainerRuntimeClient()
        return true
      } catch {
        return false // "Could not find a working container runtime strategy": fall back to the local binary
      }
    })()
    runtimeProbes.set(key, probe)
  }
  return probe
}

async function startRedisContainer(options: RedisOptions): Promise<RedisService> {
  const { GenericContainer } = await import('testcontainers')
  let container
  try {
    container = await new GenericContainer(options.image ?? 'redis:7-alpine')
      .withExposedPorts(6379)
      .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
      .start()
  } catch (error) {
    throw new ServiceError('StartFailed', `could not start a Redis container: ${errorMessage(error)}`, { cause: error })
  }
  const started = container
  const host = started.getHost()
  const port = started.getMappedPort(6379)
  const url = `redis://${host}:${port}`
  return {
    via: 'testcontainers',
    host,
    port,
    url,
    env: { REDIS_URL: url, REDIS_HOST: host, REDIS_PORT: String(port) },
    stop: once(async () => {
      await started.stop()
    }),
  }
}

/** The same Dovecot set-up as dovecot-start.sh, with in-container paths. */
function containerDovecotConfig(): string {
  return [
    'base_dir = /run/dovecot',
    'protocols = imap pop3 lmtp',
    'listen = *',
    'ssl = no',
    'disable_plaintext_auth = no',
    'auth_mechanisms = plain login',
    'first_valid_uid = 1',
    'log_path = /dev/stderr',
    'mail_location = maildir:/tmp/mail/%n/Maildir',
    'mail_uid = nobody',
    'mail_gid = nogroup',
    'passdb {',
    '  driver = passwd-file',
    '  args = scheme=PLAIN username_format=%n /etc/dovecot/concord-users',
    '}',
    'userdb {',
    '  driver = passwd-file',
    '  args = username_format=%n /etc/dovecot/concord-users',
    '  default_fields = home=/tmp/mail/%n',
    '}',
    'namespace inbox {',
    '  inbox = yes',
    '  separator = /',
    '}',
    'service imap-login {',
    '  inet_listener imap {',
    '    port = 143',
    '  }',
    '}',
    'service pop3-login {',
    '  inet_listener pop3 {',
    '    port = 110',
    '  }',
    '}',
    'service lmtp {',
    '  inet_listener lmtp {',
    '    port = 24',
    '  }',
    '}',
    'protocol lmtp {',
    '  postmaster_address = postmaster@localhost',
    '}',
    '',
  ].join('\n')
}

async function startDovecotContainer(options: DovecotOptions): Promise<DovecotService> {
  const users = dovecotUsers(options)
  const { GenericContainer } = await import('testcontainers')
  let container
  try {
    container = await new GenericContainer(options.image ?? 'dovecot/dovecot:2.3.21')
      .withExposedPorts(143, 110, 24)
      .withCopyContentToContainer([
        { content: containerDovecotConfig(), target: '/etc/dovecot/concord.conf' },
        {
          content: users.map((u) => `${u.name}:{PLAIN}${u.password}::::::\n`).join(''),
          target: '/etc/dovecot/concord-users',
        },
      ])
      .withCommand(['/usr/sbin/dovecot', '-F', '-c', '/etc/dovecot/concord.conf'])
      .start()
  } catch (error) {
    throw new ServiceError('StartFailed', `could not start a Dovecot container: ${errorMessage(error)}`, {
      cause: error,
    })
  }
  const started = container
  const host = started.getHost()
  const ports = { imap: started.getMappedPort(143), pop3: started.getMappedPort(110), lmtp: started.getMappedPort(24) }
  return {
    via: 'testcontainers',
    host,
    imapPort: ports.imap,
    pop3Port: ports.pop3,
    lmtpPort: ports.lmtp,
    ports,
    users,
    env: {
      IMAP_HOST: host,
      IMAP_PORT: String(ports.imap),
      POP3_PORT: String(ports.pop3),
      LMTP_PORT: String(ports.lmtp),
    },
    addUser: userAdder(undefined, users, { host, port: ports.imap }),
    stop: once(async () => {
      await started.stop()
    }),
  }
}

// ---------------------------------------------------------------------------------------------------------
// local-binary strategy (the tools/services scripts)

function findOnPath(name: string, fallback: string): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, name))) return join(dir, name)
  }
  return fallback
}

function dovecotUsers(options: DovecotOptions): DovecotUser[] {
  const extra = (options.users ?? []).map((user, i) => {
    const parsed = userSchema.safeParse(user)
    if (!parsed.success) {
      throw new ServiceError('InvalidOptions', `users[${i}] is invalid: ${describeZodError(parsed.error)}`)
    }
    return parsed.data
  })
  return [...DEFAULT_DOVECOT_USERS, ...extra]
}

const localOptionsSchema = z.object({
  startAttempts: z.number().int().min(1).optional(),
  dir: z.string().min(1).optional(),
  scriptsDir: z.string().min(1).optional(),
})

interface ScriptRun {
  readonly values: Readonly<Record<string, string>>
  readonly child: ChildProcess
  readonly exited: Promise<void>
}

/** Live local services, killed (process group) if the process exits without stop(). */
const running = new Set<ChildProcess>()
let exitHookInstalled = false
function trackChild(child: ChildProcess): void {
  running.add(child)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once('exit', () => {
      for (const c of running) {
        if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
          try {
            process.kill(-c.pid, 'SIGTERM')
          } catch {
            // already gone
          }
        }
      }
    })
  }
}

/**
 * Runs SCRIPT DIR with SERVICE_FOREGROUND=1: the script stays the server's parent (so the server is reaped
 * when it stops) and prints KEY=VALUE lines; resolves once `lastKey` was printed (the server is ready).
 */
function runStartScript(
  script: string,
  dir: string,
  env: Record<string, string>,
  lastKey: string,
  installHint: string,
): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, dir], {
      env: { ...process.env, ...env, SERVICE_FOREGROUND: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group: a Ctrl-C aimed at the test runner does not hit the server first
    })
    const values: Record<string, string> = {}
    let stdout = ''
    let stderr = ''
    let ready = false
    const exited = new Promise<void>((res) => child.once('close', () => res()))
    child.stdout?.setEncoding('utf8')
    child.stderr?.setEncoding('utf8')
    child.stdout?.on('data', (chunk: string) => {
      if (ready) return
      stdout += chunk
      let nl: number
      while ((nl = stdout.indexOf('\n')) >= 0) {
        const line = stdout.slice(0, nl)
        stdout = stdout.slice(nl + 1)
        const m = /^([A-Z0-9_]+)=(.*)$/.exec(line)
        if (m?.[1] !== undefined && m[2] !== undefined) values[m[1]] = m[2]
        if (m?.[1] === lastKey && !ready) {
          ready = true
          trackChild(child)
          child.unref()
          resolve({ values, child, exited })
        }
      }
    })
    child.stderr?.on('data', (chunk: string) => {
      if (stderr.length < 20_000) stderr += chunk
    })
    child.once('error', (error) => {
      if (!ready) reject(new ServiceError('StartFailed', `could not run ${script}: ${error.message}`, { cause: error }))
    })
    child.once('close', (code, signal) => {
      running.delete(child)
      if (ready) return
      const detail = stderr.trim() || `(no output; exit ${code ?? signal})`
      if (code === 3) reject(new ServiceError('NotInstalled', `${detail}\n${installHint}`))
      else reject(new ServiceError('StartFailed', `${script} ${dir} failed (exit ${code ?? signal}):\n${detail}`))
    })
  })
}

function runStopScript(script: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('bash', [script, dir], (error, _stdout, stderr) => {
      if (error) reject(new ServiceError('StartFailed', `${script} ${dir} failed: ${stderr.trim() || error.message}`))
      else resolve()
    })
  })
}

async function prepareDir(prefix: string, dir: string | undefined): Promise<{ dir: string; temporary: boolean }> {
  if (dir !== undefined) return { dir, temporary: false }
  const created = await mkdtemp(join(tmpdir(), prefix))
  await chmod(created, 0o755) // as root, Dovecot's unprivileged mail user must reach DIR/mail
  return { dir: created, temporary: true }
}

function isPortClash(error: unknown): boolean {
  return error instanceof ServiceError && error.code === 'StartFailed' && /already in use|Address in use/i.test(error.message)
}

async function startWithRetry<T>(start: () => Promise<T>): Promise<T> {
  // freePort() can race with another process grabbing the port before the server binds it: retry on clashes.
  for (let attempt = 1; ; attempt++) {
    try {
      return await start()
    } catch (error) {
      if (attempt >= 3 || !isPortClash(error)) throw error
    }
  }
}

function stopLocal(run: ScriptRun, stopScript: string, dir: string, temporary: boolean): () => Promise<void> {
  return once(async () => {
    try {
      await runStopScript(stopScript, dir)
      await run.exited
    } finally {
      running.delete(run.child)
      if (temporary) await rm(dir, { recursive: true, force: true })
    }
  })
}

/** Starts redis-server through tools/services/redis-start.sh on a free port (the 'local-binary' strategy). */
export async function startLocalRedis(options: RedisOptions = {}): Promise<RedisService> {
  const parsed = localOptionsSchema.safeParse(options)
  if (!parsed.success) throw new ServiceError('InvalidOptions', `useRedis: ${describeZodError(parsed.error)}`)
  const bin = options.redisBin ?? findOnPath('redis-server', '/usr/bin/redis-server')
  const installHint = `Install Redis with: ${REDIS_INSTALL_COMMAND}`
  if (!existsSync(bin)) {
    throw new ServiceError(
      'NotInstalled',
      `redis-server is not installed (no executable at '${bin}'). Install it with: apt-get update && ${REDIS_INSTALL_COMMAND}`,
    )
  }
  const scripts = options.scriptsDir ?? SERVICES_DIR
  return startWithRetry(async () => {
    const { dir, temporary } = await prepareDir('concord-redis-', options.dir)
    const port = await freePort()
    const env: Record<string, string> = { REDIS_PORT: String(port), REDIS_BIN: bin }
    if (options.startAttempts !== undefined) env.SERVICE_START_ATTEMPTS = String(options.startAttempts)
    let run: ScriptRun
    try {
      run = await runStartScript(join(scripts, 'redis-start.sh'), dir, env, 'REDIS_PID', installHint)
    } catch (error) {
      if (temporary) await rm(dir, { recursive: true, force: true })
      throw error
    }
    const url = `redis://${LOCALHOST}:${port}`
    return {
      via: 'local-binary' as const,
      host: LOCALHOST,
      port,
      url,
      dir,
      pid: Number(run.values.REDIS_PID),
      env: { REDIS_URL: url, REDIS_HOST: LOCALHOST, REDIS_PORT: String(port) },
      stop: stopLocal(run, join(scripts, 'redis-stop.sh'), dir, temporary),
    }
  })
}

/** Starts Dovecot through tools/services/dovecot-start.sh on free ports (the 'local-binary' strategy). */
export async function startLocalDovecot(options: DovecotOptions = {}): Promise<DovecotService> {
  const parsed = localOptionsSchema.safeParse(options)
  if (!parsed.success) throw new ServiceError('InvalidOptions', `useDovecot: ${describeZodError(parsed.error)}`)
  const users = dovecotUsers(options)
  const bin = options.dovecotBin ?? findOnPath('dovecot', '/usr/sbin/dovecot')
  const installHint = `Install Dovecot with: ${DOVECOT_INSTALL_COMMAND}`
  if (!existsSync(bin)) {
    throw new ServiceError(
      'NotInstalled',
      `dovecot is not installed (no executable at '${bin}'). Install it with: apt-get update && ${DOVECOT_INSTALL_COMMAND}`,
    )
  }
  const scripts = options.scriptsDir ?? SERVICES_DIR
  return startWithRetry(async () => {
    const { dir, temporary } = await prepareDir('concord-dovecot-', options.dir)
    const [imap, pop3, lmtp] = await freePorts(3)
    const ports = { imap: imap!, pop3: pop3!, lmtp: lmtp! }
    const env: Record<string, string> = {
      IMAP_PORT: String(ports.imap),
      POP3_PORT: String(ports.pop3),
      LMTP_PORT: String(ports.lmtp),
      DOVECOT_USERS: users
        .slice(DEFAULT_DOVECOT_USERS.length)
        .map((u) => `${u.name}:${u.password}`)
        .join(','),
    }
    // Only override the binary when asked: the script also checks Debian's split protocol packages by default.
    if (options.dovecotBin !== undefined) env.DOVECOT_BIN = options.dovecotBin
    if (options.startAttempts !== undefined) env.SERVICE_START_ATTEMPTS = String(options.startAttempts)
    let run: ScriptRun
    try {
      run = await runStartScript(join(scripts, 'dovecot-start.sh'), dir, env, 'DOVECOT_PID', installHint)
    } catch (error) {
      if (temporary) await rm(dir, { recursive: true, force: true })
      throw error
    }
    const actualDir = run.values.DOVECOT_DIR ?? dir
    return {
      via: 'local-binary' as const,
      host: LOCALHOST,
      imapPort: ports.imap,
      pop3Port: ports.pop3,
      lmtpPort: ports.lmtp,
      ports,
      users,
      dir: actualDir,
      pid: Number(run.values.DOVECOT_PID),
      env: {
        IMAP_HOST: LOCALHOST,
        IMAP_PORT: String(ports.imap),
        POP3_PORT: String(ports.pop3),
        LMTP_PORT: String(ports.lmtp),
        DOVECOT_DIR: actualDir,
      },
      addUser: userAdder(actualDir, users, { host: LOCALHOST, port: ports.imap }),
      stop: stopLocal(run, join(scripts, 'dovecot-stop.sh'), dir, temporary),
    }
  })
}

// ---------------------------------------------------------------------------------------------------------
// small utilities

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let pending: Promise<void> | undefined
  return () => (pending ??= fn())
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function describeZodError(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : 'value'}: ${issue.message}`)
    .join('; ')
}
