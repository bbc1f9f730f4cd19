import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { stringify } from 'yaml'
import { main } from '../cli.js'
import { parseServerConfig } from '../config.js'
import type { ConfigError } from '../errors.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concord-cluster-config-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const valid = () => ({
  crm: { url: 'https://contoso.crm.dynamics.com', tokenUrl: 'https://login.test/token', clientId: 'app', clientSecret: 'crm-secret' },
  graph: { tenantId: 'contoso', clientId: 'app', clientSecret: 'graph-secret' },
  dataDir: './data',
  admin: { token: 'a-long-admin-token-value', port: 0 },
})

test('cluster settings have defaults and are validated by name', async () => {
  const c = await parseServerConfig(valid(), { baseDir: dir })
  expect(c.cluster).toMatchObject({ name: 'concord', shards: 64, leaseTtlMs: 15_000 })
  expect(c.cluster.budgets.graphPerMailbox).toEqual({ requests: 10_000, perMs: 600_000 })
  expect(c.cluster.budgets.crmPerUser).toEqual({ requests: 6_000, perMs: 300_000 })
  for (const [cluster, key] of [
    [{ url: 'http://redis.test' }, 'cluster.url'],
    [{ name: 'has spaces' }, 'cluster.name'],
    [{ shards: 0 }, 'cluster.shards'],
    [{ leaseTtlMs: 10 }, 'cluster.leaseTtlMs'],
    [{ budgets: { crmPerUser: { requests: 0, perMs: 1000 } } }, 'cluster.budgets.crmPerUser.requests'],
  ] as const) {
    const error = await parseServerConfig({ ...valid(), cluster }, { baseDir: dir }).catch((e: unknown) => e)
    expect((error as ConfigError).key).toBe(key)
  }
})

test('`concord serve --cluster` refuses a non-Redis URL (exit 2) and says when Redis cannot be reached (exit 1), touching no state', async () => {
  const dataDir = join(dir, 'never-created')
  const file = join(dir, 'concord.yaml')
  await writeFile(file, stringify({ ...valid(), dataDir }))
  const err: string[] = []
  const io = { out: () => {}, err: (s: string) => void err.push(s) }
  expect(await main(['serve', '--config', file, '--cluster', 'http://127.0.0.1:6379'], io)).toBe(2)
  expect(err.join('')).toMatch(/--cluster: expected a redis:\/\//)
  err.length = 0
  expect(await main(['serve', '--config', file, '--cluster', 'redis://127.0.0.1:1'], io)).toBe(1)
  expect(err.join('')).toMatch(/cannot reach the cluster's Redis at redis:\/\/127\.0\.0\.1:1/)
  expect(existsSync(dataDir)).toBe(false)
})
