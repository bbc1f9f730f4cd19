import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { main } from './cli.js'
import { loadServerConfig, parseServerConfig } from './config.js'
import { ConfigError } from './errors.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concord-config-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const valid = () => ({
  crm: { url: 'https://contoso.crm.dynamics.com', tokenUrl: 'https://login.test/token', clientId: 'app', clientSecret: { env: 'CRM_SECRET' } },
  graph: { tenantId: 'contoso', clientId: 'app', clientSecret: 'graph-secret' },
  dataDir: './data',
  admin: { token: { file: 'admin.token' } },
})

test('a valid config gets defaults, secrets resolved from env and file, paths relative to the file', async () => {
  await writeFile(join(dir, 'admin.token'), 'a-long-admin-token-value\n')
  const c = await parseServerConfig(valid(), { env: { CRM_SECRET: 'from-env' }, baseDir: dir })
  expect(c.crm.clientSecret).toBe('from-env')
  expect(c.admin.token).toBe('a-long-admin-token-value')
  expect(c.dataDir).toBe(join(dir, 'data'))
  expect(c.scheduler).toMatchObject({ policy: 'adaptive', maxConcurrentSyncs: 16 })
  expect(c.mailboxes).toMatchObject({ maxTransientFailures: 10, retryDelayMs: 300_000 })
  expect(c.graph.url).toBe('https://graph.microsoft.com')
})

test.each([
  [{ ...valid(), crm: { ...valid().crm, url: 'not a url' } }, 'crm.url'],
  [{ ...valid(), scheduler: { policy: 'sometimes' } }, 'scheduler.policy'],
  [{ ...valid(), scheduler: { policy: 'oracle' } }, 'scheduler.policy'],
  [{ ...valid(), graph: { ...valid().graph, url: 'http://graph.test' } }, 'graph.url'],
  [{ ...valid(), admin: { token: 'short' } }, 'admin.token'],
  [{ ...valid(), typo: true }, '(root)'],
  [{ ...valid(), store: { cacheSize: 10 } }, 'store'],
  [{ ...valid(), merge: { directions: { contact: { jobTitle: 'sideways' } } } }, 'merge.directions.contact.jobTitle'],
])('a bad config names the key (%#)', async (input, key) => {
  const error = await parseServerConfig(input, { env: { CRM_SECRET: 'x' }, baseDir: dir }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ConfigError)
  expect((error as ConfigError).key).toBe(key)
})

test('store.cacheEntries: 5,000 by default, any integer from 0 (no cache) to 1,000,000', async () => {
  const parse = (store?: unknown) => parseServerConfig({ ...valid(), ...(store === undefined ? {} : { store }) }, { env: { CRM_SECRET: 'x' }, baseDir: dir })
  expect((await parse()).store).toEqual({ cacheEntries: 5_000 })
  expect((await parse({})).store).toEqual({ cacheEntries: 5_000 })
  expect((await parse({ cacheEntries: 20_000 })).store.cacheEntries).toBe(20_000)
  expect((await parse({ cacheEntries: 0 })).store.cacheEntries).toBe(0)
})

test.each([
  [-1, 'config store.cacheEntries: Too small: expected number to be >=0'],
  [2.5, 'config store.cacheEntries: Invalid input: expected int, received number'],
  [2_000_000, 'config store.cacheEntries: Too big: expected number to be <=1000000'],
  ['10000', 'config store.cacheEntries: Invalid input: expected number, received string'],
])('store.cacheEntries %j is refused with a clear message', async (cacheEntries, message) => {
  const error = await parseServerConfig({ ...valid(), store: { cacheEntries } }, { env: { CRM_SECRET: 'x' }, baseDir: dir }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ConfigError)
  expect((error as ConfigError).key).toBe('store.cacheEntries')
  expect((error as ConfigError).message).toBe(message)
})

test('a missing environment variable or secret file names the key', async () => {
  const env = await parseServerConfig(valid(), { env: {}, baseDir: dir }).catch((e: unknown) => e)
  expect((env as ConfigError).key).toBe('crm.clientSecret')
  const file = await parseServerConfig({ ...valid(), admin: { token: { file: 'missing.token' } } }, { env: { CRM_SECRET: 'x' }, baseDir: dir }).catch((e: unknown) => e)
  expect((file as ConfigError).key).toBe('admin.token')
})

test('YAML errors are config errors', async () => {
  await writeFile(join(dir, 'broken.yaml'), 'crm: [unclosed\n')
  await expect(loadServerConfig(join(dir, 'broken.yaml'))).rejects.toThrow(/not valid YAML/)
})

test('`concord serve` with a bad config prints the key, exits 2 and touches no state', async () => {
  const dataDir = join(dir, 'never-created')
  await writeFile(join(dir, 'bad.yaml'), `crm:\n  url: https://contoso.crm.dynamics.com\n  tokenUrl: https://login.test/token\n  clientId: app\n  clientSecret: s\ngraph:\n  tenantId: t\n  clientId: app\n  clientSecret: s\ndataDir: ${dataDir}\nadmin:\n  token: a-long-admin-token-value\nscheduler:\n  maxConcurrentSyncs: 0\n`)
  const err: string[] = []
  const code = await main(['serve', '--config', join(dir, 'bad.yaml')], { out: () => {}, err: (s) => void err.push(s) })
  expect(code).toBe(2)
  expect(err.join('')).toMatch(/config scheduler\.maxConcurrentSyncs/)
  expect(existsSync(dataDir)).toBe(false)
})

test('admin commands without a token say how to give one', async () => {
  const err: string[] = []
  const code = await main(['--token', '', 'mailboxes'], { out: () => {}, err: (s) => void err.push(s) })
  expect(code).toBe(2)
  expect(err.join('')).toMatch(/CONCORD_ADMIN_TOKEN/)
})

const routerProfile = () => ({
  name: 'Contoso IMAP',
  type: 'imap' as const,
  incoming: { host: 'imap.contoso.test', port: 993, tls: true },
  outgoing: { host: 'smtp.contoso.test', port: 465, tls: true },
  mailboxes: { 'Ina@Contoso.test': { user: 'ina', password: { env: 'INA_PW' }, smtpUser: 'ina', smtpPassword: { file: 'ina.smtp' } } },
})

test('email server profiles: defaults, secrets from env and file, addresses matched case-insensitively', async () => {
  await writeFile(join(dir, 'ina.smtp'), 'smtp-secret\n')
  const c = await parseServerConfig({ ...valid(), profiles: [routerProfile(), { name: 'Exchange Online', type: 'exchange' }] }, { env: { CRM_SECRET: 'x', INA_PW: 'imap-secret' }, baseDir: dir })
  expect(c.profiles[0]).toMatchObject({ name: 'Contoso IMAP', type: 'imap', folders: ['INBOX'], sentFolder: 'Sent', incoming: { tls: true, timeoutMs: 30_000 } })
  expect(c.profiles[0]!.mailboxes['ina@contoso.test']).toEqual({ user: 'ina', password: 'imap-secret', smtpUser: 'ina', smtpPassword: 'smtp-secret' })
  expect(c.profiles[1]).toMatchObject({ name: 'Exchange Online', type: 'exchange' })
  expect((await parseServerConfig(valid(), { env: { CRM_SECRET: 'x' }, baseDir: dir })).profiles).toEqual([])
})

test.each([
  [[{ ...routerProfile(), incoming: undefined }], 'profiles.0.incoming'],
  [[{ ...routerProfile(), type: 'exchange' }], 'profiles.0.type'],
  [[{ ...routerProfile(), type: 'imap4' }], 'profiles.0.type'],
  [[{ ...routerProfile(), incoming: { host: 'imap.contoso.test', port: 0 } }], 'profiles.0.incoming.port'],
  [[routerProfile(), { ...routerProfile(), name: 'contoso imap' }], 'profiles'],
])('a bad email server profile names the key (%#)', async (profiles, key) => {
  const error = await parseServerConfig({ ...valid(), profiles }, { env: { CRM_SECRET: 'x', INA_PW: 'p' }, baseDir: dir }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ConfigError)
  expect((error as ConfigError).key).toBe(key)
})

test('a missing mailbox password or a lone smtpUser names the mailbox', async () => {
  const missing = await parseServerConfig({ ...valid(), profiles: [routerProfile()] }, { env: { CRM_SECRET: 'x' }, baseDir: dir }).catch((e: unknown) => e)
  expect((missing as ConfigError).key).toBe('profiles.0.mailboxes.Ina@Contoso.test.password')
  expect((missing as Error).message).not.toContain('imap-secret')
  const lone = await parseServerConfig({ ...valid(), profiles: [{ ...routerProfile(), mailboxes: { 'ina@contoso.test': { user: 'ina', password: 'p', smtpUser: 'ina' } } }] }, { env: { CRM_SECRET: 'x' }, baseDir: dir }).catch((e: unknown) => e)
  expect((lone as ConfigError).key).toBe('profiles.0.mailboxes.ina@contoso.test')
})
