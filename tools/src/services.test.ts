import { execFile } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import {
  DOVECOT_INSTALL_COMMAND,
  REDIS_INSTALL_COMMAND,
  SERVICES_DIR,
  ServiceError,
  containerRuntimeAvailable,
  freePort,
  freePorts,
  useDovecot,
  useRedis,
  waitForPort,
} from './index.js'

let server: Server
let listeningPort: number
beforeAll(async () => {
  server = createServer((socket) => socket.end())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const address = server.address()
  listeningPort = typeof address === 'object' && address ? address.port : 0
})
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

async function closedPort(): Promise<number> {
  return freePort() // free a moment ago and nobody listens on it in this test
}

function runScript(name: string, env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', [join(SERVICES_DIR, name), '/tmp/concord-never-created'], { env: { ...process.env, ...env } }, (error, _o, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr }),
    )
  })
}

test('freePort returns a port that can be bound', async () => {
  const port = await freePort()
  expect(port).toBeGreaterThan(0)
  const probe = createServer()
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject)
    probe.listen(port, '127.0.0.1', () => resolve())
  })
  await new Promise<void>((resolve) => probe.close(() => resolve()))
})

test('freePorts returns distinct ports, each of which can be bound', async () => {
  for (let round = 0; round < 20; round++) {
    const ports = await freePorts(4)
    expect(new Set(ports).size).toBe(4)
    for (const port of ports) expect(port).toBeGreaterThan(0)
  }
  const probes = (await freePorts(3)).map((port) => {
    const probe = createServer()
    return new Promise<typeof probe>((resolve, reject) => {
      probe.once('error', reject)
      probe.listen(port, '127.0.0.1', () => resolve(probe))
    })
  })
  for (const probe of await Promise.all(probes)) await new Promise<void>((resolve) => probe.close(() => resolve()))
})

test('waitForPort resolves for a listening port and times out (by attempts) for a closed one', async () => {
  await expect(waitForPort(listeningPort)).resolves.toBeUndefined()
  const port = await closedPort()
  const error = await waitForPort(port, { attempts: 2, intervalMs: 1 }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ServiceError)
  expect(error).toMatchObject({ code: 'Timeout', message: `nothing accepted connections on 127.0.0.1:${port} after 2 attempts` })
  await expect(waitForPort(70000)).rejects.toMatchObject({ code: 'InvalidOptions', message: expect.stringMatching(/^waitForPort: port:/) })
})

test('missing dovecot binary: useDovecot throws the exact install command', async () => {
  const error = await useDovecot({ via: ['local-binary'], dovecotBin: '/nonexistent/sbin/dovecot' }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ServiceError)
  expect(error).toMatchObject({ code: 'NotInstalled' })
  expect((error as Error).message).toContain("no executable at '/nonexistent/sbin/dovecot'")
  expect((error as Error).message).toContain(DOVECOT_INSTALL_COMMAND)
  expect(DOVECOT_INSTALL_COMMAND).toBe('apt-get install -y dovecot-imapd dovecot-pop3d dovecot-lmtpd')
})

test('missing redis binary: useRedis throws the exact install command', async () => {
  const error = await useRedis({ via: ['local-binary'], redisBin: '/nonexistent/bin/redis-server' }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ServiceError)
  expect(error).toMatchObject({ code: 'NotInstalled' })
  expect((error as Error).message).toContain(REDIS_INSTALL_COMMAND)
  expect(REDIS_INSTALL_COMMAND).toBe('apt-get install -y redis-server')
})

test('missing binary: the start scripts print the install command and exit 3', async () => {
  const dovecot = await runScript('dovecot-start.sh', { DOVECOT_BIN: '/nonexistent/dovecot' })
  expect(dovecot.code).toBe(3)
  expect(dovecot.stderr).toContain(`apt-get update && ${DOVECOT_INSTALL_COMMAND}`)
  const redis = await runScript('redis-start.sh', { REDIS_BIN: '/nonexistent/redis-server' })
  expect(redis.code).toBe(3)
  expect(redis.stderr).toContain(`apt-get update && ${REDIS_INSTALL_COMMAND}`)
})

test('bad env input to the scripts is named in the error', async () => {
  const port = await runScript('redis-start.sh', { REDIS_PORT: '99999' })
  expect(port.code).toBe(1)
  expect(port.stderr).toContain("REDIS_PORT='99999' is out of range")
  const users = await runScript('dovecot-start.sh', { DOVECOT_USERS: 'carol' })
  expect(users.code).toBe(1)
  expect(users.stderr).toContain("DOVECOT_USERS entry 'carol' is not of the form name:password")
})

test('env strategy: REDIS_URL pointing at a listening server is used as is', async () => {
  const url = `redis://127.0.0.1:${listeningPort}`
  const redis = await useRedis({ env: { REDIS_URL: url } })
  expect(redis).toMatchObject({ via: 'env', host: '127.0.0.1', port: listeningPort, url })
  expect(redis.env).toEqual({ REDIS_URL: url, REDIS_HOST: '127.0.0.1', REDIS_PORT: String(listeningPort) })
  await redis.stop() // no-op: it does not own the server
  await expect(waitForPort(listeningPort, { attempts: 1 })).resolves.toBeUndefined()
})

test('env strategy: bad or unreachable values are errors, not silent fallbacks', async () => {
  await expect(useRedis({ env: { REDIS_URL: 'not a url' } })).rejects.toMatchObject({
    code: 'InvalidEnv',
    message: expect.stringContaining("REDIS_URL='not a url'"),
  })
  await expect(useRedis({ env: { REDIS_URL: 'http://127.0.0.1:1' } })).rejects.toMatchObject({ code: 'InvalidEnv' })
  const port = await closedPort()
  await expect(useRedis({ env: { REDIS_URL: `redis://127.0.0.1:${port}` } })).rejects.toMatchObject({
    code: 'EnvUnreachable',
    message: expect.stringContaining(`nothing accepts connections on 127.0.0.1:${port}`),
  })
  await expect(useDovecot({ env: { IMAP_PORT: String(listeningPort), LMTP_PORT: '24' } })).rejects.toMatchObject({
    code: 'InvalidEnv',
    message: 'POP3_PORT is not set (it is required together with IMAP_PORT)',
  })
  await expect(
    useDovecot({ env: { IMAP_PORT: String(listeningPort), POP3_PORT: 'x1', LMTP_PORT: '24' } }),
  ).rejects.toMatchObject({ code: 'InvalidEnv', message: "POP3_PORT='x1' is not a TCP port (1-65535)" })
})

test('env strategy: a Dovecot named by IMAP_PORT/POP3_PORT/LMTP_PORT, with DOVECOT_USERS', async () => {
  const p = String(listeningPort)
  const dovecot = await useDovecot({ env: { IMAP_PORT: p, POP3_PORT: p, LMTP_PORT: p, DOVECOT_USERS: 'carol:carolpw' } })
  expect(dovecot).toMatchObject({ via: 'env', host: '127.0.0.1', ports: { imap: listeningPort, pop3: listeningPort, lmtp: listeningPort } })
  expect(dovecot.users).toEqual([
    { name: 'alice', password: 'alicepw' },
    { name: 'bob', password: 'bobpw' },
    { name: 'carol', password: 'carolpw' },
  ])
  await expect(dovecot.addUser({ name: 'erin', password: 'erinpw' })).rejects.toMatchObject({
    code: 'Unsupported',
    message: expect.stringContaining('set DOVECOT_DIR'),
  })
  await expect(dovecot.addUser({ name: 'no:colon', password: 'x' })).rejects.toMatchObject({ code: 'InvalidOptions' })
  await expect(useDovecot({ env: { IMAP_PORT: p, POP3_PORT: p, LMTP_PORT: p, DOVECOT_USERS: 'carol' } })).rejects.toMatchObject({
    code: 'InvalidEnv',
  })
})

test('no strategy left: the error says how to install, never a silent skip', async () => {
  await expect(useRedis({ via: ['env'], env: {} })).rejects.toMatchObject({
    code: 'NotInstalled',
    message: expect.stringContaining(REDIS_INSTALL_COMMAND),
  })
  await expect(useDovecot({ via: ['env'], env: {} })).rejects.toMatchObject({
    code: 'NotInstalled',
    message: expect.stringContaining(DOVECOT_INSTALL_COMMAND),
  })
})

test('invalid options are rejected with the field name', async () => {
  await expect(useDovecot({ via: ['local-binary'], users: [{ name: 'bad name', password: 'x' }] })).rejects.toMatchObject({
    code: 'InvalidOptions',
    message: expect.stringContaining('users[0] is invalid: name:'),
  })
  await expect(useRedis({ via: ['local-binary'], startAttempts: 0 })).rejects.toMatchObject({
    code: 'InvalidOptions',
    message: expect.stringContaining('startAttempts'),
  })
})

test('containerRuntimeAvailable: disabled by CONCORD_NO_CONTAINERS, false when the runtime does not answer', async () => {
  expect(await containerRuntimeAvailable({ CONCORD_NO_CONTAINERS: '1', DOCKER_HOST: 'tcp://127.0.0.1:1' })).toBe(false)
  // DOCKER_HOST names a runtime, so testcontainers is asked; nothing answers on that socket.
  const previous = process.env.DOCKER_HOST
  process.env.DOCKER_HOST = 'unix:///nonexistent/concord/docker.sock'
  try {
    expect(await containerRuntimeAvailable({ DOCKER_HOST: process.env.DOCKER_HOST, HOME: '/nonexistent' })).toBe(false)
  } finally {
    if (previous === undefined) delete process.env.DOCKER_HOST
    else process.env.DOCKER_HOST = previous
  }
})
