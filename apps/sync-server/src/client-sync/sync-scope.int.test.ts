/**
 * The Outlook client pair's sync scope, end to end (Dataverse + Graph emulators, the sync server, real
 * clients over `ws`): a user whose incoming e-mail is delivered by server-side sync and whose
 * appointments, contacts and tasks go through the Outlook client gets a client that syncs only those.
 * - an e-mail tracked server-side is not duplicated by the client (neither into the CRM nor into Outlook);
 * - a client offering an e-mail anyway is refused (`out_of_scope`), nothing of the page applied;
 * - the scope changing while the client is connected applies at the next sync and deletes nothing.
 */
import { RawClient, type TestClient, makeClient } from '@concord/adapter-outlook/testing'
import type { ItemKind } from '@concord/engine'
import { sampleFields } from '@concord/engine/testing'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type World, dataverseApi, startWorld } from '../test/world.js'

const USERS = {
  ivy: { email: 'ivy@contoso.test' }, // incoming e-mail server-side, ACT through the Outlook client
  uma: { email: 'uma@contoso.test', inGraph: false }, // the same, with a hand-written protocol client
  max: { email: 'max@contoso.test' }, // incoming e-mail through Outlook first, then server-side, then back
}
type Name = keyof typeof USERS
const NAMES = Object.keys(USERS) as Name[]
const ACT: ItemKind[] = ['appointment', 'contact', 'task']
const ALL: ItemKind[] = ['email', 'appointment', 'contact', 'task']

let w: World
let url: string
const ids = {} as Record<Name, string>
const mailboxIds = {} as Record<Name, string>
const clients: TestClient[] = []
const raws: RawClient[] = []

beforeAll(async () => {
  w = await startWorld({ start: false, users: NAMES.map((n) => USERS[n]) })
  for (const [i, n] of NAMES.entries()) {
    ids[n] = w.users[i]!.systemuserid
    mailboxIds[n] = w.users[i]!.mailboxid!
  }
  // Appointments, contacts and tasks through the Outlook client (actdeliverymethod 0) for everyone;
  // max's incoming e-mail goes through the Outlook client too (incomingemaildeliverymethod 1).
  for (const n of NAMES) await dataverseApi(w.dv, 'PATCH', `mailboxes(${mailboxIds[n]})`, { actdeliverymethod: 0 })
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${mailboxIds.max})`, { incomingemaildeliverymethod: 1 })
  await dataverseApi(w.dv, 'PATCH', `usersettingscollection(${ids.ivy})`, { incomingemailfilteringmethod: 0 }) // track all e-mail
  await w.startServer()
  url = `${w.server.adminUrl.replace(/^http/, 'ws')}/client`
})

afterAll(async () => {
  for (const r of raws) r.close()
  for (const c of clients) await c.client.stop()
  await w?.stop()
})

async function issueToken(name: Name): Promise<string> {
  const res = await w.api('POST', `/api/users/${ids[name]}/client-tokens`, { label: name })
  expect(res.status).toBe(201)
  return res.body.token as string
}

async function connect(name: Name, clientId: string): Promise<TestClient> {
  const c = await makeClient(url, await issueToken(name), clientId)
  clients.push(c)
  await c.client.start()
  return c
}

/** Records the scope of every pull the server sends to the client. */
function recordPulls(c: TestClient): Array<readonly ItemKind[] | undefined> {
  const seen: Array<readonly ItemKind[] | undefined> = []
  const pull = c.replica.pull.bind(c.replica)
  c.replica.pull = (cursor, options) => {
    seen.push(options.kinds)
    return pull(cursor, options)
  }
  return seen
}

async function syncUntilQuiet(c: TestClient): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const s = await c.client.syncNow()
    if (s.pulled.crm + s.pulled.mailbox + s.pushed.crm + s.pushed.mailbox + s.merged === 0) return
  }
  throw new Error('client sync did not become quiet')
}

const crmRows = (table: 'emails' | 'contacts' | 'appointments' | 'tasks', name: Name) => w.dv.admin.rows(table, `_ownerid_value eq ${ids[name]}`)
const local = async (c: TestClient, kind: ItemKind) => (await c.replica.listItems(kind)).filter((i) => !i.deleted)

test('an e-mail tracked server-side is not duplicated by the Outlook client; appointments, contacts and tasks still sync through it', async () => {
  expect(await w.server.mailboxOfUser(ids.ivy)).toMatchObject({ state: 'enabled', kinds: ['email'], configured: { incoming: true, act: false } })
  // Server-side sync tracks a received e-mail (tracking option "all e-mail messages").
  w.graph.control.seed(USERS.ivy.email, 'message', [
    { subject: 'Quote request', body: { contentType: 'text', content: 'Please quote' }, from: { emailAddress: { address: 'buyer@fabrikam.test' } }, toRecipients: [{ emailAddress: { address: USERS.ivy.email } }], receivedDateTime: '2026-11-25T08:00:00Z' },
  ])
  await w.syncUntilQuiet(mailboxIds.ivy)
  await w.syncUntilQuiet(mailboxIds.ivy)
  const tracked = crmRows('emails', 'ivy').filter((r) => r.values.subject === 'Quote request')
  expect(tracked).toHaveLength(1)
  w.dv.admin.createRecord('contacts', { firstname: 'Bea', lastname: 'Buyer', emailaddress1: 'buyer@fabrikam.test' }, ids.ivy)
  w.dv.admin.createRecord('appointments', { subject: 'Quote review', scheduledstart: '2026-12-08T14:00:00Z', scheduledend: '2026-12-08T15:00:00Z', location: 'Fabrikam HQ' }, ids.ivy)

  const ivy = await connect('ivy', 'ivy-laptop')
  expect(ivy.client.designated).toBe(true)
  expect(ivy.client.syncKinds).toEqual(ACT)
  const pulls = recordPulls(ivy)
  // The same message as Outlook shows it, tracked (the category), and the user's own Outlook items.
  await ivy.replica.createItem('email', { ...sampleFields('email', 1), subject: 'Quote request', internetMessageId: String(tracked[0]!.values.messageid) }, { tracked: true })
  await ivy.replica.createItem('task', { subject: 'Send the quote', status: 'notStarted' }, { tracked: true })
  await ivy.replica.createItem('contact', { givenName: 'Cal', surname: 'Client', email1: 'cal@fabrikam.test' }, { tracked: true })
  await syncUntilQuiet(ivy)
  await w.syncUntilQuiet(mailboxIds.ivy)

  // One CRM e-mail (server-side sync's), one Outlook e-mail (the client's own): no duplicate either way.
  expect(crmRows('emails', 'ivy').filter((r) => r.values.subject === 'Quote request')).toHaveLength(1)
  expect(crmRows('emails', 'ivy')).toHaveLength(1)
  expect((await local(ivy, 'email')).map((e) => e.fields.subject)).toEqual(['Quote request'])
  // ACT through the client, both ways.
  expect((await local(ivy, 'contact')).map((c) => c.fields.givenName).sort()).toEqual(['Bea', 'Cal'])
  expect((await local(ivy, 'appointment')).map((a) => a.fields.subject)).toEqual(['Quote review'])
  expect(crmRows('tasks', 'ivy').map((t) => t.values.subject)).toEqual(['Send the quote'])
  expect(crmRows('contacts', 'ivy')).toHaveLength(2)
  expect(pulls.length).toBeGreaterThan(0)
  for (const kinds of pulls) expect(kinds).toEqual(ACT)

  // Track from Outlook is a request the server executes, not client sync: it still works.
  const sent = await ivy.replica.createItem('email', { ...sampleFields('email', 2), subject: 'Quote attached' })
  const { crmId } = await ivy.client.track(sent.nativeId)
  expect(crmRows('emails', 'ivy').filter((r) => r.values.subject === 'Quote attached').map((r) => `emails(${r.id})`)).toEqual([crmId])
  await syncUntilQuiet(ivy)
  expect(crmRows('emails', 'ivy')).toHaveLength(2)
  expect(await local(ivy, 'email')).toHaveLength(2)
})

test('a client that offers an e-mail is refused with out_of_scope; nothing of the page is applied', async () => {
  const raw = await RawClient.connect(url)
  raws.push(raw)
  raw.send({ type: 'hello', protocol: 2, token: await issueToken('uma'), clientId: 'uma-laptop' })
  const welcome = await raw.frame((f) => f.type === 'welcome' || f.type === 'error')
  expect(welcome).toMatchObject({ type: 'welcome', protocol: 2, designated: true, syncKinds: ACT })
  const contact = { type: 'upsert', nativeId: 'uma-c1', kind: 'contact', version: 'v1', fields: { givenName: 'Raw', surname: 'Contact', email1: 'raw@fabrikam.test' }, meta: { tracked: true } }
  const email = { type: 'upsert', nativeId: 'uma-m1', kind: 'email', version: 'v1', fields: { ...sampleFields('email', 3), subject: 'Pushed anyway' }, meta: { tracked: true } }

  /** Answers the server's requests of one sync until its own `syncNow` is answered. */
  const sync = async (id: string, changes: unknown[]): Promise<{ reply: Record<string, unknown>; pulls: Array<Record<string, unknown>> }> => {
    raw.send({ type: 'syncNow', id, fencingToken: welcome.fencingToken })
    const pulls: Array<Record<string, unknown>> = []
    for (;;) {
      const f = await raw.frame((x) => x.id === id || x.type === 'pull' || x.type === 'push' || x.type === 'confirmMissing')
      if (f.id === id) return { reply: f, pulls }
      if (f.type === 'pull') {
        pulls.push(f)
        raw.send({ type: 'result', id: f.id, result: { changes: f.cursor === null ? changes : [], nextCursor: 'done', hasMore: false, ...(f.cursor === null ? { fullListing: true } : {}) } })
      } else if (f.type === 'push') {
        const ops = f.ops as Array<{ opId: string; type: string }>
        raw.send({ type: 'result', id: f.id, result: { applied: ops.map((op) => ({ opId: op.opId, ...(op.type === 'create' ? { nativeId: `uma-${op.opId}` } : {}), ...(op.type === 'delete' ? {} : { version: 'v2' }) })), rejected: [] } })
      } else raw.send({ type: 'result', id: f.id, result: { missing: [] } })
    }
  }

  const refused = await sync('uma-sync-1', [contact, email])
  expect(refused.reply).toMatchObject({ type: 'error', code: 'out_of_scope', message: expect.stringMatching(/email .*syncs only appointment, contact, task/) })
  expect(refused.pulls[0]).toMatchObject({ cursor: null, kinds: ACT })
  expect(crmRows('contacts', 'uma')).toEqual([])
  expect(w.dv.admin.rows('emails').filter((r) => r.values.subject === 'Pushed anyway')).toEqual([])

  // State intact: the next sync pulls from the same (null) cursor; a page within the scope is applied.
  const ok = await sync('uma-sync-2', [contact])
  expect(ok.reply).toMatchObject({ type: 'result', result: { pulled: { mailbox: 1 } } })
  expect(ok.pulls[0]).toMatchObject({ cursor: null, kinds: ACT })
  expect(crmRows('contacts', 'uma').map((r) => r.values.firstname)).toEqual(['Raw'])
  expect(w.dv.admin.rows('emails').filter((r) => r.values.subject === 'Pushed anyway')).toEqual([])
})

test('the mailbox gets incoming e-mail through server-side sync while the client is connected: the next sync uses the new scope and deletes nothing', async () => {
  expect((await w.server.mailboxOfUser(ids.max))?.configured).toMatchObject({ incoming: false, act: false })
  w.dv.admin.createRecord('emails', { subject: 'From the CRM', messageid: '<crm-1@contoso.test>', directioncode: true }, ids.max)
  w.dv.admin.createRecord('contacts', { firstname: 'Mo', lastname: 'Max', emailaddress1: 'mo@fabrikam.test' }, ids.max)
  const max = await connect('max', 'max-laptop')
  expect(max.client.syncKinds).toEqual(ALL)
  const mine = await max.replica.createItem('email', { ...sampleFields('email', 4), subject: 'From Outlook' }, { tracked: true })
  await syncUntilQuiet(max)
  // (The CRM scope also lets max read the other users' e-mails, which reach his Outlook: only his own are compared.)
  const own = (subject: string) => subject.startsWith('From ')
  const emailSubjects = async () => ({ crm: crmRows('emails', 'max').map((r) => String(r.values.subject)).sort(), outlook: (await local(max, 'email')).map((e) => String(e.fields.subject)).filter(own).sort() })
  expect(await emailSubjects()).toEqual({ crm: ['From Outlook', 'From the CRM'], outlook: ['From Outlook', 'From the CRM'] })

  // The administrator switches max's incoming e-mail to server-side sync.
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${mailboxIds.max})`, { incomingemaildeliverymethod: 2 })
  await w.server.refreshMailboxes()
  expect((await w.server.mailboxOfUser(ids.max))?.configured?.incoming).toBe(true)
  const told = max.next('scope')
  const pulls = recordPulls(max)
  await max.replica.updateItem(mine.nativeId, { subject: 'From Outlook, edited meanwhile' })
  w.dv.admin.createRecord('contacts', { firstname: 'Meg', lastname: 'Max', emailaddress1: 'meg@fabrikam.test' }, ids.max)
  await syncUntilQuiet(max)
  expect((await told).kinds).toEqual(ACT)
  for (const kinds of pulls) expect(kinds).toEqual(ACT)
  expect((await local(max, 'contact')).map((c) => c.fields.givenName).sort()).toEqual(['Meg', 'Mo'])
  // Nothing deleted on either side; the Outlook edit of an e-mail no longer goes to the CRM.
  expect(await emailSubjects()).toEqual({ crm: ['From Outlook', 'From the CRM'], outlook: ['From Outlook, edited meanwhile', 'From the CRM'] })
  // Not even after a full listing of the client.
  await max.replica.expireCursors()
  await syncUntilQuiet(max)
  expect(await emailSubjects()).toEqual({ crm: ['From Outlook', 'From the CRM'], outlook: ['From Outlook, edited meanwhile', 'From the CRM'] })
  expect(crmRows('contacts', 'max')).toHaveLength(2)

  // And back to the Outlook client: e-mail is listed in full once, the edit made meanwhile arrives, nothing is duplicated.
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${mailboxIds.max})`, { incomingemaildeliverymethod: 1 })
  await w.server.refreshMailboxes()
  const back = max.next('scope')
  await syncUntilQuiet(max)
  expect((await back).kinds).toEqual(ALL)
  expect(await emailSubjects()).toEqual({ crm: ['From Outlook, edited meanwhile', 'From the CRM'], outlook: ['From Outlook, edited meanwhile', 'From the CRM'] })
  expect(crmRows('contacts', 'max')).toHaveLength(2)
  expect(await local(max, 'contact')).toHaveLength(2)
})
