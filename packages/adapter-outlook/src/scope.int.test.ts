/**
 * The sync scope (protocol 2) over a real WebSocket: the host's `syncScope` decides which kinds the
 * client pair syncs; a kind leaving the scope is never deleted on either side, a client offering it
 * anyway is refused (`out_of_scope`) with nothing applied, and a kind coming back is listed in full.
 */
import { type ItemKind, ItemKinds, asReplicaId } from '@concord/engine'
import { sampleFields } from '@concord/engine/testing'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { PROTOCOL_VERSION } from './protocol.js'
import { RawClient, type TestClient, type TestServer, makeClient, startServer } from './test/fixtures.js'

const ACT: ItemKind[] = ['appointment', 'contact', 'task']
let scope: ItemKind[]
let server: TestServer
const clients: TestClient[] = []
const raws: RawClient[] = []

beforeEach(async () => {
  scope = [...ItemKinds]
  server = await startServer({ syncScope: async () => scope })
})
afterEach(async () => {
  for (const c of clients.splice(0)) await c.client.stop()
  for (const r of raws.splice(0)) r.close()
  await server.close()
})

async function client(token: string, clientId: string): Promise<TestClient> {
  const c = await makeClient(server.url, token, clientId)
  clients.push(c)
  await c.client.start()
  return c
}

const live = async (c: TestClient, kind: ItemKind) => (await c.replica.listItems(kind)).filter((i) => !i.deleted)
const crmLive = (userId: string, kind: ItemKind) => server.crm.remoteFor(userId).liveRecords().filter((r) => r.kind === kind)
const subjects = (items: Array<{ fields: Record<string, unknown> }>) => items.map((i) => String(i.fields.subject)).sort()

test('a kind leaving the scope is deleted on neither side, even after full listings; it comes back with what changed meanwhile', async () => {
  const alice = await client('tok-alice', 'alice-laptop')
  expect(alice.client.session?.syncKinds).toEqual([...ItemKinds])
  const crm = server.crm.remoteFor('alice')
  crm.create('email', sampleFields('email', 1), undefined, { ownerId: 'alice', tracked: true })
  crm.create('contact', sampleFields('contact', 2), undefined, { ownerId: 'alice' })
  const mine = await alice.replica.createItem('email', sampleFields('email', 3), { tracked: true })
  await alice.client.syncNow()
  expect(subjects(await live(alice, 'email'))).toEqual(subjects(crmLive('alice', 'email')))
  expect(crmLive('alice', 'email')).toHaveLength(2)

  // The server now syncs e-mail itself: the next sync tells the client and leaves e-mail alone.
  scope = ACT
  const told = alice.next('scope')
  const pulls: Array<readonly ItemKind[] | undefined> = []
  const pull = alice.replica.pull.bind(alice.replica)
  alice.replica.pull = (cursor, options) => {
    pulls.push(options.kinds)
    return pull(cursor, options)
  }
  await alice.replica.updateItem(mine.nativeId, { subject: 'Edited in Outlook meanwhile' })
  await alice.replica.createItem('email', sampleFields('email', 4), { tracked: true })
  crm.create('email', sampleFields('email', 5), undefined, { ownerId: 'alice', tracked: true })
  crm.create('contact', sampleFields('contact', 6), undefined, { ownerId: 'alice' })
  await alice.client.syncNow()
  expect((await told).kinds).toEqual(ACT)
  expect(alice.client.syncKinds).toEqual(ACT)
  expect(pulls.length).toBeGreaterThan(0)
  for (const kinds of pulls) expect(kinds).toEqual(ACT)
  expect(await live(alice, 'contact')).toHaveLength(2) // contacts still sync
  expect(crmLive('alice', 'email').map((r) => r.fields.subject).sort()).toEqual([sampleFields('email', 1).subject, sampleFields('email', 3).subject, sampleFields('email', 5).subject].sort())
  expect(subjects(await live(alice, 'email'))).toEqual([sampleFields('email', 1).subject, 'Edited in Outlook meanwhile', sampleFields('email', 4).subject].sort())

  // Full listings of both sides (both cursors expire): absence from a scoped listing is not a deletion.
  await alice.replica.expireCursors()
  await server.stores.get('alice')!.resetCursor(asReplicaId('crm-alice'))
  const full = await alice.client.syncNow()
  expect(full.pushed).toEqual({ crm: 0, mailbox: 0 })
  expect(crmLive('alice', 'email')).toHaveLength(3)
  expect(await live(alice, 'email')).toHaveLength(3)

  // E-mail comes back into the scope: both sides are listed in full once and what changed meanwhile crosses, once.
  scope = [...ItemKinds]
  await alice.client.syncNow()
  await alice.client.syncNow()
  expect(alice.client.syncKinds).toEqual([...ItemKinds])
  expect(crmLive('alice', 'email').map((r) => r.fields.subject).sort()).toEqual([sampleFields('email', 1).subject, 'Edited in Outlook meanwhile', sampleFields('email', 4).subject, sampleFields('email', 5).subject].sort())
  expect(subjects(await live(alice, 'email'))).toEqual(crmLive('alice', 'email').map((r) => String(r.fields.subject)).sort())
  expect(await live(alice, 'contact')).toHaveLength(2)
  expect(crmLive('alice', 'contact')).toHaveLength(2)
})

test('a client that offers a kind outside its scope is refused (out_of_scope); nothing of the page is applied', async () => {
  scope = ACT
  const alice = await client('tok-alice', 'alice-laptop')
  expect(alice.client.syncKinds).toEqual(ACT)
  await alice.replica.createItem('contact', sampleFields('contact', 1), { tracked: true })
  await alice.replica.createItem('email', sampleFields('email', 2), { tracked: true })
  // A client that ignores the scope it was told.
  const pull = alice.replica.pull.bind(alice.replica)
  alice.replica.pull = (cursor, options) => pull(cursor, { ...options, kinds: undefined })
  await expect(alice.client.syncNow()).rejects.toMatchObject({ code: 'out_of_scope', message: expect.stringContaining('syncs only appointment, contact, task') })
  expect(server.crm.remoteFor('alice').liveRecords()).toEqual([]) // not even the contact of the same page
  // Honest again: the contact syncs, the e-mail stays in Outlook (Track is the way to put it in the CRM).
  alice.replica.pull = pull
  await alice.client.syncNow()
  expect(crmLive('alice', 'contact')).toHaveLength(1)
  expect(crmLive('alice', 'email')).toHaveLength(0)
  const [email] = await live(alice, 'email')
  const { crmId } = await alice.client.track(email!.nativeId)
  expect(crmLive('alice', 'email').map((r) => r.nativeId)).toEqual([crmId])
  await alice.client.syncNow()
  expect(crmLive('alice', 'email')).toHaveLength(1)
})

test('protocol 1 clients are still served: no scope on the wire, and an out-of-scope change is refused', async () => {
  scope = ACT
  const raw = await RawClient.connect(server.url)
  raws.push(raw)
  raw.send({ type: 'hello', protocol: 1, token: 'tok-bob', clientId: 'bob-old' })
  const welcome = await raw.frame((f) => f.type === 'welcome')
  expect(welcome).toMatchObject({ protocol: 1, designated: true })
  expect(welcome).not.toHaveProperty('syncKinds')
  raw.send({ type: 'syncNow', id: 'n1', fencingToken: welcome.fencingToken })
  const pullFrame = await raw.frame((f) => f.type === 'pull')
  expect(pullFrame).not.toHaveProperty('kinds')
  raw.send({ type: 'result', id: pullFrame.id, result: { changes: [{ type: 'upsert', nativeId: 'm1', kind: 'email', version: 'v1', fields: sampleFields('email', 1), meta: { tracked: true } }], nextCursor: 'c1', hasMore: false, fullListing: true } })
  expect(await raw.frame((f) => f.id === 'n1')).toMatchObject({ type: 'error', code: 'out_of_scope' })
  expect(server.crm.remoteFor('bob').liveRecords()).toEqual([])
  expect(server.host.sessionsOf('bob')).toEqual([expect.objectContaining({ clientId: 'bob-old', protocol: 1 })])

  // A protocol 2 client is told the scope in welcome and in every pull.
  const v2 = await RawClient.connect(server.url)
  raws.push(v2)
  v2.send({ type: 'hello', protocol: PROTOCOL_VERSION, token: 'tok-alice', clientId: 'alice-raw' })
  const welcome2 = await v2.frame((f) => f.type === 'welcome')
  expect(welcome2).toMatchObject({ protocol: 2, syncKinds: ACT })
  v2.send({ type: 'syncNow', id: 'n2', fencingToken: welcome2.fencingToken })
  expect(await v2.frame((f) => f.type === 'pull')).toMatchObject({ kinds: ACT })
  // An unsupported version is refused.
  const v9 = await RawClient.connect(server.url)
  raws.push(v9)
  v9.send({ type: 'hello', protocol: 9, token: 'tok-alice', clientId: 'alice-future' })
  expect(await v9.frame((f) => f.type === 'error')).toMatchObject({ code: 'unsupported_version', message: expect.stringContaining('1 and 2') })
})
