import { type StoreDatabase, parseMergePolicyConfig, silentLogger } from '@concord/engine'
import { MemoryLevel } from 'memory-level'
import { expect, test } from 'vitest'
import { InProcessLeases } from '../lease.js'
import { MailboxWorker, type WorkerEnvironment } from './mailbox-worker.js'

const unreachable: typeof fetch = () => Promise.reject(new Error('no network in this test'))

const env = (cacheEntries: number): WorkerEnvironment => ({
  crm: { url: 'https://contoso.crm.test', tokenUrl: 'https://login.test/token', clientId: 'app', clientSecret: 'secret' },
  graph: { url: 'https://graph.test', tenantId: 'contoso', clientId: 'app', clientSecret: 'secret' },
  graphFetch: unreachable,
  crmFetch: unreachable,
  leases: new InProcessLeases(),
  holder: 'test',
  leaseTtlMs: 60_000,
  cacheEntries,
  logger: silentLogger,
  now: Date.now,
})

test.each([250, 0])('the mailbox store gets the configured read-cache size (%i)', async (cacheEntries) => {
  const descriptor = { mailboxId: 'm1', ownerId: '00000000-0000-0000-0000-000000000001', email: 'alice@contoso.test', kinds: ['contact' as const], outgoing: false }
  const worker = await MailboxWorker.open(descriptor, new MemoryLevel<string, string>() as unknown as StoreDatabase, env(cacheEntries), parseMergePolicyConfig({}))
  expect((await worker.engineStore.closeKeepingCaches()).cacheLimit).toBe(cacheEntries)
})
