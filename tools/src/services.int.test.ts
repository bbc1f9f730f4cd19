import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Queue, QueueEvents, Worker } from 'bullmq'
import { ImapFlow } from 'imapflow'
import { Redis } from 'ioredis'
import nodemailer from 'nodemailer'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  SERVICES_DIR,
  freePort,
  freePorts,
  useDovecot,
  useRedis,
  type DovecotService,
  type RedisService,
} from './index.js'

// ---- helpers -------------------------------------------------------------------------------------------

/** A live process: /proc/PID exists and is not a zombie (PID 1 here reaps orphans only lazily). */
function isLive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

/** Live processes whose command line starts with `prefix` or mentions `needle`. */
function liveProcesses(prefix: string, needle?: string): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let cmd: string
    try {
      cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ')
    } catch {
      continue
    }
    if ((cmd.startsWith(prefix) || (needle !== undefined && cmd.includes(needle))) && isLive(Number(entry))) {
      pids.push(Number(entry))
    }
  }
  return pids
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

function dovecotInstance(dir: string): string {
  const conf = readFileSync(join(dir, 'dovecot.conf'), 'utf8')
  const m = /^instance_name = (.+)$/m.exec(conf)
  if (!m?.[1]) throw new Error(`no instance_name in ${dir}/dovecot.conf`)
  return m[1]
}

function runScript(
  name: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', [join(SERVICES_DIR, name), ...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

function parseEnvLines(stdout: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of stdout.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line)
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2]
  }
  return out
}

/** Minimal POP3 client over a raw socket. */
async function pop3Session(port: number, commands: string[]): Promise<string[]> {
  const socket = connect({ host: '127.0.0.1', port })
  socket.setEncoding('utf8')
  let buffer = ''
  const waiters: Array<() => void> = []
  socket.on('data', (chunk: string) => {
    buffer += chunk
    waiters.splice(0).forEach((w) => w())
  })
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.once('error', () => waiters.splice(0).forEach((w) => w()))
  const readResponse = async (multiLine: boolean): Promise<string> => {
    for (let i = 0; i < 1000; i++) {
      const end = multiLine && buffer.startsWith('+OK') ? buffer.indexOf('\r\n.\r\n') : buffer.indexOf('\r\n')
      if (end >= 0) {
        const size = multiLine && buffer.startsWith('+OK') ? end + 5 : end + 2
        const response = buffer.slice(0, size)
        buffer = buffer.slice(size)
        return response
      }
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
    throw new Error(`no POP3 response; buffer=${JSON.stringify(buffer)}`)
  }
  const responses = [await readResponse(false)]
  for (const command of commands) {
    socket.write(`${command}\r\n`)
    const verb = command.split(' ')[0]?.toUpperCase() ?? ''
    const multiLine = (verb === 'UIDL' || verb === 'LIST') && command.trim().split(' ').length === 1
    responses.push(await readResponse(multiLine))
  }
  socket.end()
  await closed
  return responses
}

function rawMessage(subject: string, to: string): string {
  return [`From: tester@localhost`, `To: ${to}`, `Subject: ${subject}`, `Message-ID: <${subject}@concord.test>`, '', `Body of ${subject}`, ''].join('\r\n')
}

// ---- Dovecot through useDovecot({ via: ['local-binary'] }) (dovecot-start.sh in foreground mode) --------

describe('dovecot via the start script', () => {
  let dovecot: DovecotService
  beforeAll(async () => {
    dovecot = await useDovecot({ via: ['local-binary'], users: [{ name: 'carol', password: 'carolpw' }] })
  })
  afterAll(async () => {
    await dovecot?.stop()
  })

  test('reports how and where it runs', () => {
    expect(dovecot.via).toBe('local-binary')
    expect(dovecot.host).toBe('127.0.0.1')
    expect(new Set([dovecot.imapPort, dovecot.pop3Port, dovecot.lmtpPort]).size).toBe(3)
    expect(dovecot.env).toMatchObject({
      IMAP_HOST: '127.0.0.1',
      IMAP_PORT: String(dovecot.imapPort),
      POP3_PORT: String(dovecot.pop3Port),
      LMTP_PORT: String(dovecot.lmtpPort),
    })
    expect(dovecot.users.map((u) => u.name)).toEqual(['alice', 'bob', 'carol'])
    expect(dovecot.pid).toBeGreaterThan(0)
    expect(isLive(dovecot.pid ?? 0)).toBe(true)
  })

  test('IMAP APPEND and LMTP delivery both land in the INBOX', async () => {
    const lmtp = nodemailer.createTransport({ host: dovecot.host, port: dovecot.lmtpPort, lmtp: true, ignoreTLS: true })
    const delivered = await lmtp.sendMail({
      from: 'sender@localhost',
      to: 'alice@localhost',
      subject: 'via-lmtp',
      text: 'delivered over LMTP',
    })
    expect(delivered.response).toMatch(/^250 /)

    const client = new ImapFlow({
      host: dovecot.host,
      port: dovecot.imapPort,
      secure: false,
      auth: { user: 'alice', pass: 'alicepw' },
      logger: false,
    })
    await client.connect()
    try {
      const appended = await client.append('INBOX', rawMessage('via-append', 'alice@localhost'), ['\\Seen'])
      expect(appended).toMatchObject({ destination: 'INBOX' })
      const lock = await client.getMailboxLock('INBOX')
      try {
        const seen: Array<{ subject: string | undefined; seen: boolean }> = []
        for await (const msg of client.fetch('1:*', { envelope: true, flags: true, uid: true })) {
          seen.push({ subject: msg.envelope?.subject, seen: msg.flags?.has('\\Seen') ?? false })
        }
        expect(seen).toEqual([
          { subject: 'via-lmtp', seen: false },
          { subject: 'via-append', seen: true },
        ])
      } finally {
        lock.release()
      }
    } finally {
      await client.logout()
    }
  })

  test('extra users from options can log in; a wrong password is refused', async () => {
    const carol = new ImapFlow({
      host: dovecot.host,
      port: dovecot.imapPort,
      secure: false,
      auth: { user: 'carol', pass: 'carolpw' },
      logger: false,
    })
    await carol.connect()
    expect(await carol.status('INBOX', { messages: true })).toMatchObject({ path: 'INBOX', messages: 0 })
    await carol.logout()

    const intruder = new ImapFlow({
      host: dovecot.host,
      port: dovecot.imapPort,
      secure: false,
      auth: { user: 'bob', pass: 'wrong' },
      logger: false,
    })
    intruder.on('error', () => {})
    await expect(intruder.connect()).rejects.toThrow()
    intruder.close()
  })

  test('addUser adds an account to the running server', async () => {
    await dovecot.addUser({ name: 'erin', password: 'erinpw' })
    await dovecot.addUser({ name: 'erin', password: 'erinpw' }) // idempotent
    await expect(dovecot.addUser({ name: 'erin', password: 'other' })).rejects.toMatchObject({ code: 'InvalidOptions' })
    expect(dovecot.users.map((u) => u.name)).toEqual(['alice', 'bob', 'carol', 'erin'])
    const erin = new ImapFlow({
      host: dovecot.host,
      port: dovecot.imapPort,
      secure: false,
      auth: { user: 'erin', pass: 'erinpw' },
      logger: false,
    })
    await erin.connect()
    expect(await erin.status('INBOX', { messages: true })).toMatchObject({ messages: 0 })
    await erin.logout()
  })

  test('POP3 login, STAT and UIDL over a raw socket', async () => {
    const lmtp = nodemailer.createTransport({ host: dovecot.host, port: dovecot.lmtpPort, lmtp: true, ignoreTLS: true })
    await lmtp.sendMail({ from: 'sender@localhost', to: 'bob@localhost', subject: 'one', text: '1' })
    await lmtp.sendMail({ from: 'sender@localhost', to: 'bob@localhost', subject: 'two', text: '2' })

    const [greeting, user, pass, stat, uidl, quit] = await pop3Session(dovecot.pop3Port, [
      'USER bob',
      'PASS bobpw',
      'STAT',
      'UIDL',
      'QUIT',
    ])
    expect(greeting).toMatch(/^\+OK/)
    expect(user).toMatch(/^\+OK/)
    expect(pass).toMatch(/^\+OK/)
    expect(stat).toMatch(/^\+OK 2 \d+\r\n$/)
    const uidLines = (uidl ?? '').split('\r\n').slice(1, -2)
    expect(uidLines).toHaveLength(2)
    expect(uidLines.map((l) => l.split(' ')[0])).toEqual(['1', '2'])
    expect(new Set(uidLines.map((l) => l.split(' ')[1])).size).toBe(2)
    expect(quit).toMatch(/^\+OK/)

    const [, , badPass] = await pop3Session(dovecot.pop3Port, ['USER bob', 'PASS nope', 'QUIT'])
    expect(badPass).toMatch(/^-ERR/)
  })

  test('stop() leaves no live process and closes the ports', async () => {
    const dir = dovecot.dir ?? ''
    const instance = dovecotInstance(dir)
    expect(liveProcesses(`dovecot-${instance}/`).length).toBeGreaterThan(0)
    const pid = dovecot.pid ?? 0
    await dovecot.stop()
    expect(existsSync(`/proc/${pid}`)).toBe(false) // the supervising script reaped the master
    expect(liveProcesses(`dovecot-${instance}/`, dir)).toEqual([])
    expect(await portOpen(dovecot.imapPort)).toBe(false)
    expect(await portOpen(dovecot.pop3Port)).toBe(false)
    expect(await portOpen(dovecot.lmtpPort)).toBe(false)
    expect(existsSync(dir)).toBe(false) // the temp state dir is removed
  })
})

// ---- Redis through useRedis({ via: ['local-binary'] }) ----------------------------------------------------

describe('redis via the start script', () => {
  let redis: RedisService
  beforeAll(async () => {
    redis = await useRedis({ via: ['local-binary'] })
  })
  afterAll(async () => {
    await redis?.stop()
  })

  test('PING answers PONG and nothing is persisted', async () => {
    expect(redis.via).toBe('local-binary')
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`)
    const client = new Redis(redis.url, { lazyConnect: true })
    await client.connect()
    try {
      expect(await client.ping()).toBe('PONG')
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'no'])
      expect(await client.config('GET', 'save')).toEqual(['save', ''])
    } finally {
      await client.quit()
    }
  })

  test('a BullMQ job round-trips through the queue', async () => {
    const connection = { host: redis.host, port: redis.port, maxRetriesPerRequest: null }
    const queue = new Queue('concord-tools-test', { connection })
    const events = new QueueEvents('concord-tools-test', { connection })
    const worker = new Worker<{ a: number; b: number }, number>(
      'concord-tools-test',
      async (job) => job.data.a + job.data.b,
      { connection },
    )
    try {
      await events.waitUntilReady()
      await worker.waitUntilReady()
      const job = await queue.add('sum', { a: 2, b: 40 })
      expect(await job.waitUntilFinished(events)).toBe(42)
    } finally {
      await worker.close()
      await events.close()
      await queue.close()
    }
  })

  test('stop() leaves no live process and closes the port', async () => {
    const pid = redis.pid ?? 0
    expect(isLive(pid)).toBe(true)
    await redis.stop()
    expect(existsSync(`/proc/${pid}`)).toBe(false)
    expect(await portOpen(redis.port)).toBe(false)
  })
})

// ---- the scripts as a CLI (background mode) + stop-all.sh ---------------------------------------------------

describe('start/stop scripts as a CLI', () => {
  let root: string
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'concord-svc-cli-'))
    await chmod(root, 0o755)
  })
  afterAll(async () => {
    await runScript('stop-all.sh', [root])
    await rm(root, { recursive: true, force: true })
  })

  test('start both in the background, print the env to export, stop-all stops both', async () => {
    const [imap, pop3, lmtp, redis] = await freePorts(4)
    const ports = { imap: imap!, pop3: pop3!, lmtp: lmtp!, redis: redis! }
    const dov = await runScript('dovecot-start.sh', [join(root, 'dovecot')], {
      IMAP_PORT: String(ports.imap),
      POP3_PORT: String(ports.pop3),
      LMTP_PORT: String(ports.lmtp),
      DOVECOT_USERS: 'dave:davepw',
    })
    expect(dov.stderr).toBe('')
    expect(dov.code).toBe(0)
    const dovEnv = parseEnvLines(dov.stdout)
    expect(dovEnv).toMatchObject({
      IMAP_HOST: '127.0.0.1',
      IMAP_PORT: String(ports.imap),
      POP3_PORT: String(ports.pop3),
      LMTP_PORT: String(ports.lmtp),
      DOVECOT_DIR: join(root, 'dovecot'),
    })
    const red = await runScript('redis-start.sh', [join(root, 'redis')], { REDIS_PORT: String(ports.redis) })
    expect(red.code).toBe(0)
    expect(parseEnvLines(red.stdout)).toMatchObject({
      REDIS_PORT: String(ports.redis),
      REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
    })

    // the background servers answer
    const dave = new ImapFlow({ host: '127.0.0.1', port: ports.imap, secure: false, auth: { user: 'dave', pass: 'davepw' }, logger: false })
    await dave.connect()
    await dave.logout()
    const client = new Redis(ports.redis, '127.0.0.1', { lazyConnect: true })
    await client.connect()
    expect(await client.ping()).toBe('PONG')
    await client.quit()

    // a second start on the same DIR is refused
    const again = await runScript('dovecot-start.sh', [join(root, 'dovecot')], { IMAP_PORT: '1', POP3_PORT: '2', LMTP_PORT: '3' })
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/already runs/)

    const instance = dovecotInstance(join(root, 'dovecot'))
    const dovecotPid = Number(dovEnv.DOVECOT_PID)
    const redisPid = Number(parseEnvLines(red.stdout).REDIS_PID)
    const stopped = await runScript('stop-all.sh', [root])
    expect(stopped.code).toBe(0)
    expect(isLive(dovecotPid)).toBe(false)
    expect(isLive(redisPid)).toBe(false)
    expect(liveProcesses(`dovecot-${instance}/`, root)).toEqual([])
    for (const port of Object.values(ports)) expect(await portOpen(port)).toBe(false)
    expect(existsSync(join(root, 'dovecot', 'dovecot.pid'))).toBe(false)
    expect(existsSync(join(root, 'redis', 'redis.pid'))).toBe(false)
  })

  test('a port that is already taken fails with the reason', async () => {
    const redisPort = await freePort()
    const first = await runScript('redis-start.sh', [join(root, 'r1')], { REDIS_PORT: String(redisPort) })
    expect(first.code).toBe(0)
    try {
      const second = await runScript('redis-start.sh', [join(root, 'r2')], { REDIS_PORT: String(redisPort) })
      expect(second.code).toBe(1)
      expect(second.stderr).toContain(`port ${redisPort} on 127.0.0.1 is already in use`)
    } finally {
      expect((await runScript('redis-stop.sh', [join(root, 'r1')])).code).toBe(0)
    }
  })
})
