/**
 * Three `concord serve --cluster` processes, one real Redis (persistent, restartable), both emulators.
 * The CRM emulator sits behind a recording proxy: it sees every request's shard fencing token, so the
 * test can assert that no shard was ever acted on by two owners at once.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import {
  type ClusterProcess, type ClusterRedis, type ClusterView, persistentRedis, recentLogs, settledOn as settled, startClusterProcess, stopClusterProcess, writeClusterConfig,
} from '../test/cluster-harness.js'
import { type ObservedRequest, type RecordingProxy, fenceViolations, startRecordingProxy } from '../test/recording-proxy.js'
import { type World, mailboxRecords, sleep, startWorld, until } from '../test/world.js'

/** CLUSTER_TRACE_DIR=/some/dir keeps every instance's whole log there; a failing run prints each one's last lines. */
const TRACE_DIR = process.env['CLUSTER_TRACE_DIR']
const TOKEN = 'cluster-test-admin-token'
const LEASE_TTL_MS = 3_000
const SHARDS = 6
const USERS = ['ann', 'ben', 'cat', 'dan', 'eve', 'fay'].map((n) => ({ email: `${n}@contoso.test` }))

type Instance = ClusterProcess
let dir: string
let redis: ClusterRedis
let world: World
let proxy: RecordingProxy
let configFile: string
const instances: Instance[] = []

async function startInstance(name: string): Promise<Instance> {
  const instance = await startClusterProcess(name, configFile, redis.url, TRACE_DIR)
  instances.push(instance)
  return instance
}

const settledOn = (via: Instance, owners: Instance[], what: string) => settled(via, owners, TOKEN, SHARDS, what)

let seeded = 0
function addContacts(perUser: number): void {
  for (const u of world.users) for (let i = 0; i < perUser; i++) world.dv.admin.createRecord('contacts', { firstname: `C${seeded + i}`, lastname: u.email.split('@')[0]! }, u.systemuserid)
  seeded += perUser
}

/** Every mailbox holds exactly the contacts seeded so far, each once. */
async function allSynced(what: string): Promise<void> {
  await until(
    async () => {
      for (const u of world.users) {
        const contacts = await mailboxRecords(world, u.email, 'contact')
        if (contacts.length !== seeded) return false
      }
      return true
    },
    what,
    300,
    200,
  )
  for (const u of world.users) {
    const names = (await mailboxRecords(world, u.email, 'contact')).map((c) => String(c.fields['givenName']))
    expect(new Set(names).size, `${u.email}: no duplicates`).toBe(names.length)
    expect(names.length).toBe(seeded)
  }
}

/** Change-tracking listings started from scratch (no delta or skip token), per shard and entity set. */
function fullListings(log: readonly ObservedRequest[]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const r of log) {
    if (!r.fence || !r.prefer?.includes('odata.track-changes') || /deltatoken|skiptoken/.test(r.path)) continue
    const entity = /\/api\/data\/v9\.2\/([a-z]+)/.exec(r.path)?.[1] ?? r.path
    const key = `${r.fence.split(':')[0]} ${entity}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return counts
}

/** Every shard has a CRM feed, and each of its tables has been read with a delta token at least once. */
function feedsCaughtUp(log: readonly ObservedRequest[]): boolean {
  const listed = new Map<string, boolean>()
  for (const r of log) {
    const delta = r.path.includes('deltatoken')
    if (!r.fence || !(delta || r.prefer?.includes('odata.track-changes'))) continue
    const entity = /\/api\/data\/v9\.2\/([a-z]+)/.exec(r.path)?.[1] ?? r.path
    const key = `${r.fence.split(':')[0]} ${entity}`
    listed.set(key, (listed.get(key) ?? false) || delta)
  }
  const shards = new Set([...listed.keys()].map((k) => k.split(' ')[0]))
  return shards.size === SHARDS && [...listed.values()].every(Boolean)
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concord-cluster-'))
  redis = await persistentRedis(join(dir, 'redis'))
  world = await startWorld({ users: USERS, start: false })
  proxy = await startRecordingProxy(world.dv.url)
  configFile = await writeClusterConfig({ dir, world, crmUrl: proxy.via(world.dv.url), crmTokenUrl: proxy.via(world.dv.tokenUrl), name: 'it', shards: SHARDS, leaseTtlMs: LEASE_TTL_MS, token: TOKEN, logLevel: 'info' })
  addContacts(4)
})

let passed = false

afterAll(async () => {
  // A failure (a timeout included) shows what every instance was doing.
  if (!passed && instances.length > 0) process.stderr.write(`${recentLogs(instances)}\n`)
  for (const i of instances) {
    i.child.kill('SIGCONT')
    i.child.kill('SIGKILL')
  }
  await proxy?.close()
  await world?.stop()
  await redis?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

test('three instances share the shards; kill -9, SIGSTOP and a Redis restart lose, duplicate and double-sync nothing', { timeout: 240_000 }, async () => {
  // Join one by one: each join rebalances (shards hand over, state moves with them).
  const t0 = Date.now()
  const mark = (what: string) => process.stderr.write(`cluster test: ${what} at +${Date.now() - t0} ms\n`)
  const a = await startInstance('a')
  mark('a started')
  await settledOn(a, [a], 'a owning every shard')
  const [b, c] = await Promise.all([startInstance('b'), startInstance('c')])
  mark('b and c started')
  const three = await settledOn(a, [a, b, c], 'three instances sharing the shards')
  mark('three instances settled')
  expect(new Set(three.shards.map((s) => s.owner)).size).toBe(3)
  await allSynced('the first contacts in every mailbox')
  mark('first contacts synced')
  // The admin API of any instance says who owns a mailbox; the owner serves it.
  const mailboxId = world.users[0]!.mailboxid!
  const ask = (i: Instance, path: string, method = 'GET') => fetch(`${i.adminUrl}${path}`, { method, headers: { Authorization: `Bearer ${TOKEN}` } })
  // (A shard that just moved may still be starting on its new owner: 503 with Retry-After until it runs.)
  const answers = await until(async () => {
    const all = await Promise.all([a, b, c].map((i) => ask(i, `/api/mailboxes/${mailboxId}`)))
    return all.map((r) => r.status).sort().join() === '200,409,409' ? all : undefined
  }, 'the owner serving the mailbox, the others naming it', 200, 50)
  const redirect = (await answers.find((r) => r.status === 409)!.json()) as { owner: { instanceId: string; shard: number } }
  const owner = [a, b, c].find((i) => i.id === redirect.owner.instanceId)!
  expect(((await answers[[a, b, c].indexOf(owner)]!.json()) as { state: string }).state).toBe('enabled')
  expect((await ask(owner, `/api/mailboxes/${mailboxId}/sync`, 'POST')).status).toBe(202)
  expect(((await (await ask(owner, `/api/mailboxes/${mailboxId}/history`)).json()) as { history: unknown[] }).history.length).toBeGreaterThan(0)

  // Wait until every shard's feed has finished its first listing of every table (a shard handed over
  // during that first listing may legitimately list again); from then on, no moved shard may start over.
  await until(() => feedsCaughtUp(proxy.log), 'every shard feed past its first listing', 600, 50)
  const steadyFrom = proxy.log.length

  // kill -9 the instance owning most shards, right after new CRM work arrives (mid-cycle).
  const owned = (i: Instance, v: ClusterView) => v.shards.filter((s) => s.owner === i.id).length
  const victim = [a, b, c].sort((x, y) => owned(y, three) - owned(x, three))[0]!
  const survivors = [a, b, c].filter((i) => i !== victim)
  addContacts(4)
  await sleep(300)
  const killedAt = Date.now()
  victim.child.kill('SIGKILL')
  const afterKill = await settledOn(survivors[0]!, survivors, 'the dead instance’s shards to move')
  const failoverMs = Date.now() - killedAt
  process.stderr.write(`cluster failover: all shards owned by survivors ${failoverMs} ms after kill -9 (lease ${LEASE_TTL_MS} ms)\n`)
  for (const s of afterKill.shards) {
    const before = three.shards.find((x) => x.shard === s.shard)!
    if (before.owner === victim.id) expect(s.token!).toBeGreaterThan(before.token!)
  }
  await allSynced('the contacts added before the kill')
  mark('synced after the kill')

  // Pause one survivor past its lease: the other takes everything; the paused one, woken, cannot write.
  const [paused, active] = survivors as [Instance, Instance]
  paused.child.kill('SIGSTOP')
  await settledOn(active, [active], 'the paused instance’s shards to move')
  addContacts(3)
  await allSynced('the contacts added while one instance was paused')
  const seenBeforeWake = proxy.log.length
  paused.child.kill('SIGCONT')
  await settledOn(active, [active, paused], 'the woken instance to rejoin and get shards back')
  await allSynced('the contacts after the woken instance rejoined')
  mark('paused instance rejoined')
  expect(fenceViolations(proxy.log.slice(seenBeforeWake))).toEqual([])

  // Redis restarts: instances reconnect and carry on.
  await redis.stop()
  await sleep(500)
  await redis.start()
  addContacts(3)
  await allSynced('the contacts added after Redis restarted')
  mark('synced after the Redis restart')
  await settledOn(active, [active, paused], 'both instances back in the cluster after the Redis restart')
  mark('settled after the Redis restart')

  expect(fenceViolations(proxy.log)).toEqual([])
  // Shards moved again and again, yet no shard's CRM feed ever started over.
  expect([...fullListings(proxy.log.slice(steadyFrom))]).toEqual([])

  mark('checked fences and listings')
  expect(await Promise.all([paused, active].map(stopClusterProcess))).toEqual([0, 0])
  mark('stopped')
  passed = true
})
