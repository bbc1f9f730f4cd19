/**
 * Outlook client sync end to end: the Dataverse and Graph emulators over HTTP, the sync server with
 * its `/client` WebSocket endpoint, and real `OutlookSyncClient`s (memory-level replicas) over `ws`.
 */
import type { OutlookLocalReplica } from '@concord/adapter-outlook'
import type { NativeId } from '@concord/engine'
import { sampleFields } from '@concord/engine/testing'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { WebSocket } from 'ws'
import { type World, dataverseApi, startWorld, until } from '../test/world.js'
import { RECONNECT_TIMER, RawClient, type TestClient, makeClient } from '@concord/adapter-outlook/testing'

const NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina'] as const
type Name = (typeof NAMES)[number]
let w: World
const ids = {} as Record<Name, string>
let url: string
const clients: TestClient[] = []

beforeAll(async () => {
  // No mailbox rows: these users sync from Outlook, not server-side (no mailbox worker interferes). Except
  // frank, who tracks from Outlook: tracking needs server-side sync, so his mailbox syncs email
  // server-side and leaves appointments, contacts and tasks to his Outlook client (actdeliverymethod 0).
  w = await startWorld({ start: false, users: NAMES.map((n) => ({ email: `${n}@contoso.test`, mailbox: n === 'frank' ? ('enabled' as const) : ('none' as const) })) })
  for (const [i, n] of NAMES.entries()) ids[n] = w.users[i]!.systemuserid
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${w.users[NAMES.indexOf('frank')]!.mailboxid})`, { actdeliverymethod: 0 })
  await w.startServer()
  url = `${w.server.adminUrl.replace(/^http/, 'ws')}/client`
})

afterAll(async () => {
  // Stopping the server with clients still connected closes their sockets (1001) and does not hang.
  const open = clients.filter((c) => c.client.state === 'open')
  expect(open.length).toBeGreaterThan(0)
  const closed = open.map((c) => c.next('disconnected'))
  await w?.stop()
  await Promise.all(closed)
  for (const c of clients) await c.client.stop()
})

async function issueToken(name: Name): Promise<string> {
  const res = await w.api('POST', `/api/users/${ids[name]}/client-tokens`, { label: `${name}'s Outlook` })
  expect(res.status).toBe(201)
  return res.body.token as string
}

async function connect(name: Name, clientId: string, token?: string, replica?: OutlookLocalReplica): Promise<TestClient> {
  const c = await makeClient(url, token ?? (await issueToken(name)), clientId, replica ? { replica } : {})
  clients.push(c)
  await c.client.start()
  return c
}

function crmContacts(name: Name): Array<{ id: string; values: Record<string, unknown> }> {
  return w.dv.admin.rows('contacts', `_ownerid_value eq ${ids[name]}`) as never
}

async function localLive(c: TestClient, kind: 'contact' | 'task' | 'email') {
  return (await c.replica.listItems(kind)).filter((i) => !i.deleted)
}

/** Syncs until a run moves nothing (bounded). */
async function syncUntilQuiet(c: TestClient): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const s = await c.client.syncNow()
    if (s.pulled.crm + s.pulled.mailbox + s.pushed.crm + s.pushed.mailbox + s.merged === 0) return
  }
  throw new Error('client sync did not become quiet')
}

test('admin token routes: admin auth, zod validation, unknown user; bad and revoked tokens are refused', async () => {
  expect((await w.api('POST', `/api/users/${ids.alice}/client-tokens`, {}, null)).status).toBe(401)
  const bad = await w.api('POST', '/api/users/not-a-guid/client-tokens', {})
  expect(bad.status).toBe(400)
  expect(bad.body.message).toContain('params.userId')
  const extra = await w.api('POST', `/api/users/${ids.alice}/client-tokens`, { label: 'x', admin: true })
  expect(extra.status).toBe(400)
  const ttl = await w.api('POST', `/api/users/${ids.alice}/client-tokens`, { expiresInDays: 0 })
  expect(ttl.status).toBe(400)
  expect(ttl.body.message).toContain('body.expiresInDays')
  expect((await w.api('POST', '/api/users/00000000-0000-0000-0000-000000000001/client-tokens', {})).status).toBe(404)

  const issued = await w.api('POST', `/api/users/${ids.gina}/client-tokens`, { label: 'laptop' })
  expect(issued.status).toBe(201)
  expect(issued.body).toMatchObject({ userId: ids.gina, label: 'laptop' })
  const listed = await w.api('GET', `/api/users/${ids.gina}/client-tokens`)
  expect(listed.body.tokens).toEqual([{ tokenId: issued.body.tokenId, userId: ids.gina, createdAt: issued.body.createdAt, label: 'laptop' }])
  expect(JSON.stringify(listed.body)).not.toContain(issued.body.token)

  // The /client endpoint is not behind the admin bearer token; an unknown token is refused in hello.
  const raw = await RawClient.connect(url)
  raw.send({ type: 'hello', protocol: 1, token: 'cct_not-a-real-token', clientId: 'gina-x' })
  expect(await raw.frame((f) => f.type === 'error')).toMatchObject({ code: 'unauthorized' })
  expect((await raw.whenClosed()).code).toBe(1008)
  const adminAsClient = await RawClient.connect(url)
  adminAsClient.send({ type: 'hello', protocol: 1, token: w.config.admin.token, clientId: 'gina-y' })
  expect(await adminAsClient.frame((f) => f.type === 'error')).toMatchObject({ code: 'unauthorized' })

  // A live client of a revoked token is disconnected, and the token no longer authenticates.
  const gina = await connect('gina', 'gina-laptop', issued.body.token as string)
  expect(gina.client.designated).toBe(true)
  const disconnected = gina.next('disconnected')
  expect((await w.api('DELETE', `/api/users/${ids.gina}/client-tokens/${issued.body.tokenId}`)).status).toBe(204)
  await disconnected
  expect((await w.api('DELETE', `/api/users/${ids.gina}/client-tokens/${issued.body.tokenId}`)).status).toBe(404)
  const again = await RawClient.connect(url)
  again.send({ type: 'hello', protocol: 1, token: issued.body.token, clientId: 'gina-laptop' })
  expect(await again.frame((f) => f.type === 'error')).toMatchObject({ code: 'unauthorized' })
  await gina.client.stop()
  // Revoking all of a user's tokens.
  for (let i = 0; i < 2; i++) await issueToken('gina')
  expect((await w.api('DELETE', `/api/users/${ids.gina}/client-tokens`)).body).toEqual({ revoked: 2 })
  expect((await w.api('GET', `/api/users/${ids.gina}/client-tokens`)).body).toEqual({ tokens: [] })
  // Only /client is upgraded on the admin server.
  const other = new WebSocket(url.replace(/\/client$/, '/api/mailboxes'))
  const status = await new Promise<number>((resolve) => {
    other.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    other.once('open', () => resolve(101))
    other.once('error', () => undefined)
  })
  expect(status).toBe(404)
  other.terminate()
})

test('CRM contacts owned by the user reach their client; another user’s contacts do not', async () => {
  for (let n = 1; n <= 2; n++) w.dv.admin.createRecord('contacts', { firstname: `Ann${n}`, lastname: 'Lee', emailaddress1: `ann${n}@fabrikam.test` }, ids.alice)
  w.dv.admin.createRecord('contacts', { firstname: 'Bo', lastname: 'Berg', emailaddress1: 'bo@fabrikam.test' }, ids.bob)
  const alice = await connect('alice', 'alice-laptop')
  const bob = await connect('bob', 'bob-laptop')
  await syncUntilQuiet(alice)
  await syncUntilQuiet(bob)
  expect((await localLive(alice, 'contact')).map((c) => c.fields.givenName).sort()).toEqual(['Ann1', 'Ann2'])
  expect((await localLive(bob, 'contact')).map((c) => c.fields.givenName)).toEqual(['Bo'])
  // Lookups are bound to the session's user.
  await expect(alice.client.lookupIds('contact', ids.bob)).rejects.toMatchObject({ code: 'forbidden' })
  expect((await alice.client.lookupIds('contact')).sort()).toEqual(crmContacts('alice').map((r) => `contacts(${r.id})`).sort())
})

test('the user’s sync filters (admin API) decide what the client pair syncs', async () => {
  w.dv.admin.createRecord('contacts', { firstname: 'Gil', lastname: 'Own', emailaddress1: 'gil@fabrikam.test' }, ids.gina)
  w.dv.admin.createRecord('contacts', { firstname: 'Sam', lastname: 'Shared', emailaddress1: 'sam@fabrikam.test' }, ids.bob)
  const put = await w.api('PUT', `/api/users/${ids.gina}/filters`, { filters: { contact: { any: [{ owner: 'me' }, { field: 'surname', op: 'eq', value: 'Shared' }] } } })
  expect(put.status).toBe(200)
  const gina = await connect('gina', 'gina-desktop')
  expect(gina.client.designated).toBe(false) // gina-laptop (first test) stays designated across token revocation
  await gina.client.designate()
  await syncUntilQuiet(gina)
  expect((await localLive(gina, 'contact')).map((c) => c.fields.givenName).sort()).toEqual(['Gil', 'Sam'])
})

test('an offline client edit syncs on reconnect and converges in the CRM', async () => {
  w.dv.admin.createRecord('contacts', { firstname: 'Cy', lastname: 'Young', emailaddress1: 'cy@fabrikam.test' }, ids.carol)
  const token = await issueToken('carol')
  const first = await connect('carol', 'carol-laptop', token)
  await syncUntilQuiet(first)
  const [cy] = await localLive(first, 'contact')
  await first.client.stop()
  // Offline (Outlook restarted without a connection): edit the synced contact, add a tracked task.
  await first.replica.updateItem(cy!.nativeId, { jobTitle: 'Buyer' })
  await first.replica.createItem('task', { subject: 'Call Cy', status: 'notStarted' }, { tracked: true })
  expect(await first.replica.pendingEdits()).toBeGreaterThan(0)
  // Reconnect with the same local store: the designated client syncs its offline queue at once.
  const carol = await makeClient(url, token, 'carol-laptop', { replica: first.replica })
  clients.push(carol)
  const synced = carol.next('synced')
  await carol.client.start()
  await synced
  await syncUntilQuiet(carol)
  const [row] = crmContacts('carol')
  expect(row!.values.jobtitle).toBe('Buyer')
  const tasks = w.dv.admin.rows('tasks', `_ownerid_value eq ${ids.carol}`)
  expect(tasks.map((t) => t.values.subject)).toEqual(['Call Cy'])
  expect(await carol.replica.pendingEdits()).toBe(0)
  // Converged: a CRM-side edit comes back, nothing else moves.
  await dataverseApi(w.dv, 'PATCH', `contacts(${row!.id})`, { lastname: 'Young-Smith' })
  await syncUntilQuiet(carol)
  expect((await localLive(carol, 'contact')).map((c) => [c.fields.surname, c.fields.jobTitle])).toEqual([['Young-Smith', 'Buyer']])
  expect(crmContacts('carol')).toHaveLength(1)
})

test('two clients of one user: only the designated one syncs; switching moves sync to the other', async () => {
  w.dv.admin.createRecord('contacts', { firstname: 'Di', lastname: 'Dee', emailaddress1: 'di@fabrikam.test' }, ids.dave)
  const laptop = await connect('dave', 'dave-laptop')
  const desktop = await connect('dave', 'dave-desktop')
  expect(laptop.client.designated).toBe(true)
  expect(desktop.client.designated).toBe(false)
  await expect(desktop.client.syncNow()).rejects.toMatchObject({ code: 'not_designated' })
  await syncUntilQuiet(laptop)
  expect(await localLive(laptop, 'contact')).toHaveLength(1)
  expect(await localLive(desktop, 'contact')).toHaveLength(0)

  const undesignated = laptop.next('designation')
  const token = await desktop.client.designate()
  expect(token).toBe(2)
  await undesignated
  expect(laptop.client.designated).toBe(false)
  await expect(laptop.client.syncNow()).rejects.toMatchObject({ code: expect.stringMatching(/not_designated|fenced/) })
  await syncUntilQuiet(desktop)
  expect((await localLive(desktop, 'contact')).map((c) => c.fields.givenName)).toEqual(['Di'])
  // An administrator can ask for a sync of the designated client.
  w.dv.admin.createRecord('contacts', { firstname: 'Dot', lastname: 'Dee', emailaddress1: 'dot@fabrikam.test' }, ids.dave)
  const serverSync = await w.api('POST', `/api/users/${ids.dave}/clients/sync`)
  expect(serverSync.status).toBe(200)
  expect(serverSync.body.summary.pushed.mailbox).toBe(1)
  expect((await localLive(desktop, 'contact')).map((c) => c.fields.givenName).sort()).toEqual(['Di', 'Dot'])
  expect((await w.api('POST', `/api/users/${ids.bob}/clients/sync`)).status).toBe(200)
  expect((await w.api('POST', `/api/users/${ids.erin}/clients/sync`)).status).toBe(409) // no client connected yet
  const clientsView = await w.api('GET', `/api/users/${ids.dave}/clients`)
  expect(clientsView.body.designated).toEqual({ clientId: 'dave-desktop', fencingToken: 2 })
  expect(clientsView.body.sessions.map((s: { clientId: string; designated: boolean }) => [s.clientId, s.designated]).sort()).toEqual([
    ['dave-desktop', true],
    ['dave-laptop', false],
  ])
  // The old client's edits never reach the CRM through it.
  await laptop.replica.createItem('task', { subject: 'From the old client', status: 'notStarted' }, { tracked: true })
  await syncUntilQuiet(desktop)
  expect(w.dv.admin.rows('tasks', `_ownerid_value eq ${ids.dave}`)).toHaveLength(0)
  expect(crmContacts('dave')).toHaveLength(2)
})

test('a socket dropped mid-sync: the next sync converges with nothing lost or duplicated', async () => {
  for (let n = 1; n <= 3; n++) w.dv.admin.createRecord('contacts', { firstname: `Ed${n}`, lastname: 'Eel', emailaddress1: `ed${n}@fabrikam.test` }, ids.erin)
  const erin = await connect('erin', 'erin-laptop')
  for (let n = 1; n <= 2; n++) await erin.replica.createItem('task', { subject: `Erin task ${n}`, status: 'notStarted' }, { tracked: true })
  // The first push to the client is applied, then the socket dies before the answer goes out.
  const push = erin.replica.push.bind(erin.replica)
  let dropped = 0
  erin.replica.push = async (ops) => {
    const result = await push(ops)
    if (dropped++ === 0) erin.sockets.at(-1)!.terminate()
    return result
  }
  const disconnected = erin.next('disconnected')
  await expect(erin.client.syncNow()).rejects.toBeDefined()
  await disconnected
  const reconnected = erin.next('connected')
  await until(() => erin.timers.fire(RECONNECT_TIMER) > 0, 'the reconnect timer')
  await reconnected
  await syncUntilQuiet(erin)
  expect(dropped).toBeGreaterThan(1) // the engine re-sent what was not acknowledged
  expect((await localLive(erin, 'contact')).map((c) => c.fields.givenName).sort()).toEqual(['Ed1', 'Ed2', 'Ed3'])
  expect((await localLive(erin, 'task')).map((t) => t.fields.subject).sort()).toEqual(['Erin task 1', 'Erin task 2'])
  expect(crmContacts('erin')).toHaveLength(3)
  expect(w.dv.admin.rows('tasks', `_ownerid_value eq ${ids.erin}`).map((t) => t.values.subject).sort()).toEqual(['Erin task 1', 'Erin task 2'])
})

test('malformed and oversized frames are refused; the session state stays intact', async () => {
  const token = await issueToken('frank')
  const raw = await RawClient.connect(url)
  raw.send({ type: 'hello', protocol: 1, token, clientId: 'frank-laptop' })
  expect(await raw.frame((f) => f.type === 'welcome')).toMatchObject({ userId: ids.frank, designated: true, fencingToken: 1, intervalMinutes: 15 })
  raw.send('{not json')
  expect(await raw.frame((f) => f.type === 'error')).toMatchObject({ code: 'bad_request' })
  raw.send({ type: 'setInterval', id: 'r1', minutes: 30, extra: true })
  expect(await raw.frame((f) => f.type === 'error')).toMatchObject({ id: 'r1', code: 'bad_request' })
  raw.send({ type: 'setInterval', id: 'r2', minutes: 1 })
  expect(await raw.frame((f) => f.id === 'r2')).toMatchObject({ type: 'error', code: 'bad_request' })
  raw.send({ type: 'setInterval', id: 'r3', minutes: 30 })
  expect(await raw.frame((f) => f.id === 'r3')).toEqual({ type: 'result', id: 'r3', result: { intervalMinutes: 30 } })
  raw.send({ type: 'shouldTrack', id: 'r4', email: { from: { address: 'a@b.test' }, to: [], cc: [], subject: 'x', body: 'private' } })
  expect(await raw.frame((f) => f.id === 'r4')).toMatchObject({ type: 'error', code: 'bad_request' })
  raw.send({ type: 'addContact', id: 'r5', input: { sender: { address: 'x'.repeat(2 * 1024 * 1024) } } })
  expect((await raw.whenClosed()).code).toBe(1009)
  // State intact: the designation, the interval and the data survive; a normal client syncs.
  const frank = await connect('frank', 'frank-laptop', token)
  expect(frank.client.designated).toBe(true)
  expect(frank.client.fencingToken).toBe(1)
  expect(frank.client.intervalMinutes).toBe(30)
  expect(crmContacts('frank')).toHaveLength(0)
  await syncUntilQuiet(frank)
})

test('Track, should-track (sender, recipients, subject only), add contact, Set Regarding, stop tracking, lookups', async () => {
  const frank = clients.find((c) => c.client.session !== undefined && c.replica !== undefined && c.events.some((e) => e.type === 'connected' && e.welcome.clientId === 'frank-laptop'))!
  // Track an e-mail from Outlook: the CRM e-mail exists at once, and later syncs link it (no duplicate).
  const email = await frank.replica.createItem('email', { ...sampleFields('email', 7), categories: [] })
  const { crmId } = await frank.client.track(email.nativeId)
  const rows = w.dv.admin.rows('emails', `_ownerid_value eq ${ids.frank}`)
  expect(rows.map((r) => [`emails(${r.id})`, r.values.subject])).toEqual([[crmId, email.fields.subject]])
  await syncUntilQuiet(frank)
  expect(w.dv.admin.rows('emails', `_ownerid_value eq ${ids.frank}`)).toHaveLength(1)
  expect((await frank.replica.getItem(email.nativeId))?.meta?.tracked).toBe(true)

  // Should-track: automatic tracking from leads/contacts/accounts; only four fields go over the wire.
  await dataverseApi(w.dv, 'PATCH', `usersettingscollection(${ids.frank})`, { incomingemailfilteringmethod: 2 })
  const added = await frank.client.addContact({ address: 'Dana@Fabrikam.test', name: 'Dana Scully' })
  expect(added.created).toBe(true)
  expect(crmContacts('frank').map((r) => [`contacts(${r.id})`, r.values.firstname, r.values.lastname, r.values.emailaddress1])).toEqual([[added.crmId, 'Dana', 'Scully', 'Dana@Fabrikam.test']])
  expect(await frank.client.addContact({ address: 'dana@fabrikam.test' })).toEqual({ crmId: added.crmId, created: false })
  const email2 = { from: { address: 'dana@fabrikam.test' }, to: [{ address: 'frank@contoso.test' }], cc: [], subject: 'Renewal', body: 'private', attachments: ['x'] }
  expect(await frank.client.shouldTrack(email2 as never)).toEqual({ track: true })
  expect(await frank.client.shouldTrack({ from: { address: 'eve@elsewhere.test' }, to: [], cc: [], subject: 'Hi' })).toEqual({ track: false })
  const frames = frank.sent.filter((f) => f.type === 'shouldTrack')
  expect(frames).toHaveLength(2)
  for (const f of frames) expect(Object.keys(f.email as object).sort()).toEqual(['cc', 'from', 'subject', 'to'])

  // Set Regarding, then stop tracking: the user's own copy is deleted; another user's is only unlinked.
  await frank.client.setRegarding(crmId, { table: 'contact', id: added.crmId.slice('contacts('.length, -1) })
  const regarding = (await dataverseApi(w.dv, 'GET', `${crmId}?$select=_regardingobjectid_value`)) as Record<string, unknown>
  expect(regarding._regardingobjectid_value).toBe(added.crmId.slice('contacts('.length, -1))
  expect(await frank.client.stopTracking(crmId, email.nativeId)).toEqual({ deleted: true })
  expect(w.dv.admin.rows('emails', `_ownerid_value eq ${ids.frank}`)).toHaveLength(0)
  const bobsTask = w.dv.admin.createRecord('tasks', { subject: 'Bob’s task' }, ids.bob)
  expect(await frank.client.stopTracking(`tasks(${bobsTask.id})`)).toEqual({ deleted: false })
  expect(w.dv.admin.rows('tasks', `activityid eq ${bobsTask.id}`)).toHaveLength(1)
  await expect(frank.client.stopTracking('tasks(00000000-0000-0000-0000-00000000abcd)')).rejects.toMatchObject({ code: 'not_found' })
  await expect(frank.client.stopTracking('not-a-crm-id')).rejects.toMatchObject({ code: 'bad_request' })
  // CRM security applies: frank may read but not write bob's task.
  await expect(frank.client.setRegarding(`tasks(${bobsTask.id})`, { table: 'contact', id: added.crmId.slice('contacts('.length, -1) })).rejects.toMatchObject({ code: 'forbidden' })

  // Lightweight mode: ids of the user's own records, details on demand.
  expect(await frank.client.lookupIds('contact')).toEqual([added.crmId])
  const [detail] = await frank.client.lookupDetails([added.crmId as NativeId])
  expect(detail).toMatchObject({ crmId: added.crmId, kind: 'contact', fields: { givenName: 'Dana', surname: 'Scully', email1: 'Dana@Fabrikam.test' } })
  await expect(frank.client.lookupDetails(['contacts(00000000-0000-0000-0000-00000000abcd)'])).rejects.toMatchObject({ code: 'not_found' })
})
