/**
 * What Outlook clients may do, decided from the sync server's own mailbox state, end to end (Dataverse +
 * Graph emulators, the sync server, real clients over `ws`):
 * - Track / Set Regarding / Stop tracking / Add contact need the mailbox enabled for server-side sync
 *   (`mailbox_not_enabled`); manual tracking is refused for a POP3/SMTP mailbox (`profile_unsupported`);
 * - a mailbox that syncs appointments, contacts and tasks server-side gets no Outlook sync client
 *   (`sync_method_conflict`), one that syncs email only does;
 * - the client-sync state is fenced by the user's lease in the server's `LeaseManager`.
 */
import { randomBytes } from 'node:crypto'
import { RawClient, type TestClient, makeClient } from '@concord/adapter-outlook/testing'
import { freePort } from '@concord/tools'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type ServerConfig, parseServerConfig } from '../config.js'
import { InProcessLeases } from '../lease.js'
import { createLogger } from '../logging.js'
import { CrmMailboxDirectory } from '../mailbox/crm-directory.js'
import { graphMailboxTester } from '../mailbox/graph-tester.js'
import { SyncServer } from '../server.js'
import { GRAPH_CLIENT, type World, dataverseApi, startWorld } from '../test/world.js'
import { clientSyncLeaseKey } from './user-leases.js'

const USERS = {
  ann: { email: 'ann@contoso.test' }, // Exchange mailbox: email, appointments, contacts, tasks server-side
  eve: { email: 'eve@contoso.test' }, // Exchange mailbox, email only (appointments, contacts, tasks: Outlook client)
  ben: { email: 'ben@contoso.test', mailbox: 'pending' as const, inGraph: false }, // waiting for Test & Enable
  cat: { email: 'cat@contoso.test', mailbox: 'none' as const, inGraph: false }, // no mailbox
  pia: { email: 'pia@contoso.test', inGraph: false }, // POP3/SMTP profile
}
type Name = keyof typeof USERS
const NAMES = Object.keys(USERS) as Name[]

let w: World
let server: SyncServer
let config: ServerConfig
let url: string
const leases = new InProcessLeases()
const adminToken = randomBytes(18).toString('base64url')
const ids = {} as Record<Name, string>
const mailboxIds = {} as Record<Name, string | null>
const clients: TestClient[] = []
const raws: RawClient[] = []

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.adminUrl}${path}`, { method, headers: { Authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  const text = await res.text()
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }
}

beforeAll(async () => {
  w = await startWorld({ start: false, users: NAMES.map((n) => USERS[n]) })
  for (const [i, n] of NAMES.entries()) {
    ids[n] = w.users[i]!.systemuserid
    mailboxIds[n] = w.users[i]!.mailboxid
  }
  // eve: incoming email through server-side sync, appointments/contacts/tasks through the Outlook client.
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${mailboxIds.eve})`, { actdeliverymethod: 0 })
  // pia: bound to a POP3/SMTP email server profile (its server is never reached in this file).
  const pop3 = w.dv.admin.createRecord('emailserverprofiles', { name: 'Contoso POP3', servertype: 1 }).id
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${mailboxIds.pia})`, { 'emailserverprofile@odata.bind': `/emailserverprofiles(${pop3})` })
  const closedPort = await freePort()
  config = await parseServerConfig({
    crm: { url: w.dv.url, tokenUrl: w.dv.tokenUrl, clientId: w.dv.clientId, clientSecret: w.dv.clientSecret },
    graph: { url: w.graph.url, tokenUrl: w.graph.tokenUrl, tenantId: w.graph.tenant, ...GRAPH_CLIENT },
    dataDir: w.dataDir,
    admin: { port: 0, token: adminToken },
    scheduler: { policy: 'adaptive', debounceMs: 20 },
    // A failed cycle (pia's POP3 server is down) is retried an hour later: the mailbox stays enabled.
    mailboxes: { refreshIntervalMs: 3_600_000, retryDelayMs: 3_600_000, maxTransientFailures: 100 },
    profiles: [{ name: 'Contoso POP3', type: 'pop3', incoming: { host: '127.0.0.1', port: closedPort }, mailboxes: { [USERS.pia.email]: { user: 'pia', password: 'pia-pop3-pw' } } }],
    logLevel: 'silent',
  })
  server = await SyncServer.start({
    config,
    directory: new CrmMailboxDirectory({ ...config.crm }),
    tester: graphMailboxTester({ ...config.graph, fetch: w.trustedFetch }),
    graphFetch: w.trustedFetch,
    logger: createLogger(config.logLevel),
    leases,
    holder: 'server-a',
  })
  url = `${server.adminUrl.replace(/^http/, 'ws')}/client`
})

afterAll(async () => {
  for (const r of raws) r.close()
  await server?.stop()
  for (const c of clients) await c.client.stop()
  await w?.stop()
})

async function issueToken(name: Name): Promise<string> {
  const res = await api('POST', `/api/users/${ids[name]}/client-tokens`, { label: name })
  expect(res.status).toBe(201)
  return res.body.token as string
}

/** A raw protocol peer past the handshake. */
async function raw(name: Name, clientId = `${name}-pane`): Promise<{ ask(type: string, body?: Record<string, unknown>): Promise<Record<string, unknown>>; welcome: Record<string, unknown> }> {
  const r = await RawClient.connect(url)
  raws.push(r)
  r.send({ type: 'hello', protocol: 1, token: await issueToken(name), clientId, clientName: 'App for Outlook', syncItems: false })
  const welcome = await r.frame((f) => f.type === 'welcome' || f.type === 'error')
  expect(welcome.type).toBe('welcome')
  let n = 0
  return {
    welcome,
    ask: async (type, body = {}) => {
      const id = `${type}-${++n}`
      r.send({ type, id, ...body })
      return r.frame((f) => f.id === id)
    },
  }
}

async function connect(name: Name, clientId: string): Promise<TestClient> {
  const c = await makeClient(url, await issueToken(name), clientId)
  clients.push(c)
  await c.client.start()
  return c
}

const trackFrame = (subject: string) => ({ input: { kind: 'email', fields: { subject, from: { address: 'dan@fabrikam.test' }, to: [{ address: 'x@contoso.test' }], cc: [], direction: 'incoming', internetMessageId: `<${subject.replace(/\W/g, '')}@fabrikam.test>` } } })
const crmEmails = (subject: string) => w.dv.admin.rows('emails').filter((r) => r.values.subject === subject)
const crmContacts = (address: string) => w.dv.admin.rows('contacts').filter((r) => String(r.values.emailaddress1).toLowerCase() === address)
const localContacts = async (c: TestClient) => (await c.replica.listItems('contact')).filter((i) => !i.deleted).map((i) => i.fields.givenName).sort()

test('mailboxStatus comes from the sync server’s own mailbox state and profile', async () => {
  // The server's view: ann and eve enabled (eve email only), pia enabled on POP3, ben pending.
  expect((await server.mailboxOfUser(ids.ann))).toMatchObject({ state: 'enabled', kinds: expect.arrayContaining(['email', 'contact']) })
  expect((await server.mailboxOfUser(ids.eve))).toMatchObject({ state: 'enabled', kinds: ['email'] })
  expect((await server.mailboxOfUser(ids.pia))).toMatchObject({ state: 'enabled', profile: { type: 'pop3', name: 'Contoso POP3' } })
  expect((await server.mailboxOfUser(ids.ben))?.state).toBe('pending')
  const status = async (name: Name) => (await (await raw(name)).ask('mailboxStatus')).result
  expect(await status('ann')).toEqual({ serverSideSync: true, profile: 'exchange', manualTracking: true })
  expect(await status('eve')).toEqual({ serverSideSync: true, profile: 'exchange', manualTracking: true })
  expect(await status('pia')).toEqual({ serverSideSync: true, profile: 'pop3', manualTracking: false, reason: expect.stringContaining('POP3/SMTP') })
  expect(await status('ben')).toMatchObject({ serverSideSync: false, reason: expect.stringMatching(/^the mailbox ben@contoso\.test is pending/) })
  expect(await status('cat')).toEqual({ serverSideSync: false, reason: 'this user has no mailbox that the sync server knows' })
})

test('Track, Set Regarding, Stop tracking and Add contact are refused without server-side sync; the CRM is unchanged', async () => {
  const someEmail = w.dv.admin.createRecord('emails', { subject: 'Someone else’s' }, ids.ann).id
  for (const name of ['ben', 'cat'] as const) {
    const pane = await raw(name)
    const refusals = [
      await pane.ask('track', trackFrame(`From ${name}`)),
      await pane.ask('setRegarding', { input: { crmId: `emails(${someEmail})`, regarding: { table: 'contact', id: someEmail } } }),
      await pane.ask('stopTracking', { input: { crmId: `emails(${someEmail})` } }),
      await pane.ask('addContact', { input: { sender: { address: `new-${name}@fabrikam.test` } } }),
    ]
    for (const r of refusals) expect(r).toMatchObject({ type: 'error', code: 'mailbox_not_enabled', message: expect.stringContaining('requires server-side synchronization') })
    expect(crmEmails(`From ${name}`)).toEqual([])
    expect(crmContacts(`new-${name}@fabrikam.test`)).toEqual([])
    // Reading CRM information is not refused.
    expect(await pane.ask('search', { input: { text: 'nobody' } })).toMatchObject({ type: 'result' })
  }
  expect(w.dv.admin.rows('emails').filter((r) => r.id === someEmail)).toHaveLength(1)
  // The same requests from an enabled mailbox go through.
  const ann = await raw('ann')
  const tracked = await ann.ask('track', trackFrame('From ann'))
  expect(tracked).toMatchObject({ type: 'result', result: { crmId: expect.stringMatching(/^emails\(/) } })
  expect(crmEmails('From ann')).toHaveLength(1)
  expect(await ann.ask('addContact', { input: { sender: { address: 'new-ann@fabrikam.test', name: 'New Ann' } } })).toMatchObject({ type: 'result', result: { created: true } })
})

test('a POP3/SMTP mailbox: manual tracking is refused, Add contact works', async () => {
  const pane = await raw('pia')
  const own = w.dv.admin.createRecord('emails', { subject: 'Pia’s tracked' }, ids.pia).id
  const contact = w.dv.admin.createRecord('contacts', { firstname: 'Dan', lastname: 'Jump', emailaddress1: 'dan.pia@fabrikam.test' }, ids.pia).id
  for (const r of [
    await pane.ask('track', trackFrame('From pia')),
    await pane.ask('setRegarding', { input: { crmId: `emails(${own})`, regarding: { table: 'contact', id: contact } } }),
    await pane.ask('stopTracking', { input: { crmId: `emails(${own})` } }),
  ]) {
    expect(r).toMatchObject({ type: 'error', code: 'profile_unsupported', message: expect.stringContaining('POP3/SMTP') })
  }
  expect(crmEmails('From pia')).toEqual([])
  expect(w.dv.admin.rows('emails').find((r) => r.id === own)?.lookups.regardingobjectid ?? null).toBeNull()
  const added = await pane.ask('addContact', { input: { sender: { address: 'nora@northwind.test', name: 'Nora Field' } } })
  expect(added).toMatchObject({ type: 'result', result: { created: true } })
  expect(crmContacts('nora@northwind.test')).toHaveLength(1)
})

test('ACT synced server-side: no Outlook sync client (refused, not two pairs); an email-only mailbox gets one', async () => {
  w.dv.admin.createRecord('contacts', { firstname: 'Ari', lastname: 'Ann', emailaddress1: 'ari@fabrikam.test' }, ids.ann)
  w.dv.admin.createRecord('contacts', { firstname: 'Eli', lastname: 'Eve', emailaddress1: 'eli@fabrikam.test' }, ids.eve)
  // ann: the first client is not designated automatically; designating is refused with the reason.
  const ann = await connect('ann', 'ann-laptop')
  expect(ann.client.designated).toBe(false)
  await expect(ann.client.designate()).rejects.toMatchObject({ code: 'sync_method_conflict', message: expect.stringMatching(/syncs .*contact.* with server-side synchronization/) })
  await expect(ann.client.syncNow()).rejects.toMatchObject({ code: 'not_designated' })
  expect((await api('GET', `/api/users/${ids.ann}/clients`)).body.designated).toBeNull()
  expect(await localContacts(ann)).toEqual([])

  // eve (email only server-side): her first client is the sync client and gets her contacts.
  const eve = await connect('eve', 'eve-laptop')
  expect(eve.client.designated).toBe(true)
  expect(eve.client.syncKinds).toEqual(['appointment', 'contact', 'task']) // her e-mail is server-side sync's
  await eve.client.syncNow()
  expect(await localContacts(eve)).toEqual(['Eli'])

  // The administrator switches eve's appointments/contacts/tasks to server-side sync: her client stops syncing.
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${mailboxIds.eve})`, { actdeliverymethod: 1 })
  await server.refreshMailboxes()
  expect((await server.mailboxOfUser(ids.eve))?.kinds).toEqual(expect.arrayContaining(['contact']))
  w.dv.admin.createRecord('contacts', { firstname: 'Ema', lastname: 'Eve', emailaddress1: 'ema@fabrikam.test' }, ids.eve)
  await expect(eve.client.syncNow()).rejects.toMatchObject({ code: 'sync_method_conflict' })
  const adminSync = await api('POST', `/api/users/${ids.eve}/clients/sync`)
  expect(adminSync).toMatchObject({ status: 409, body: { code: 'sync_method_conflict' } })
  expect(await localContacts(eve)).toEqual(['Eli'])
  await expect(eve.client.designate()).rejects.toMatchObject({ code: 'sync_method_conflict' })

  // And back to the Outlook client: the same client syncs again.
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${mailboxIds.eve})`, { actdeliverymethod: 0 })
  await server.refreshMailboxes()
  await eve.client.syncNow()
  expect(await localContacts(eve)).toEqual(['Eli', 'Ema'])

  // A POP3 mailbox syncs email only: its Outlook client syncs appointments, contacts and tasks.
  const pia = await connect('pia', 'pia-laptop')
  expect(pia.client.designated).toBe(true)
  expect(pia.client.syncKinds).toEqual(['appointment', 'contact', 'task'])
  await pia.client.syncNow()
  expect(await localContacts(pia)).toEqual(['Dan', 'Nora']) // Nora: added from the pane above
})

test('client-sync state is fenced by the user’s lease: another server holding it blocks designations and syncs', async () => {
  w.dv.admin.createRecord('contacts', { firstname: 'Bea', lastname: 'Ben', emailaddress1: 'bea@fabrikam.test' }, ids.ben)
  // ben has no server-side ACT sync: a sync client is allowed. Another server holds his client-sync lease.
  const other = await leases.acquire(clientSyncLeaseKey(ids.ben), 'server-b', 60_000)
  expect(other).not.toBeNull()
  const laptop = await connect('ben', 'ben-laptop')
  // The automatic designation needs the lease too: the client connects, undesignated.
  expect(laptop.client.designated).toBe(false)
  await expect(laptop.client.designate()).rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('server-b') })
  expect((await api('GET', `/api/users/${ids.ben}/clients`)).body.designated).toBeNull()
  await leases.release(other!)

  // Released: designation and sync go through, and this server gives the lease back afterwards.
  expect(await laptop.client.designate()).toBe(1)
  await laptop.client.syncNow()
  expect(await localContacts(laptop)).toEqual(['Bea'])
  expect(await leases.current(clientSyncLeaseKey(ids.ben))).toBeNull()

  // Taken again by server-b: the designated client's sync is refused before anything is pulled or written.
  const again = await leases.acquire(clientSyncLeaseKey(ids.ben), 'server-b', 60_000)
  w.dv.admin.createRecord('contacts', { firstname: 'Bo', lastname: 'Ben', emailaddress1: 'bo.ben@fabrikam.test' }, ids.ben)
  await expect(laptop.client.syncNow()).rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('held by another sync server (server-b)') })
  expect(await localContacts(laptop)).toEqual(['Bea'])
  await leases.release(again!)
  expect((await laptop.client.syncNow()).pushed.mailbox).toBe(1)
  expect(await localContacts(laptop)).toEqual(['Bea', 'Bo'])
})
