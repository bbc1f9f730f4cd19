/** End to end over HTTP: the sync server between the Dataverse emulator and the Graph emulator. */
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type World, dataverseApi, graphIdOf, mailboxRecords, startWorld, until } from './test/world.js'

const TRACKED = 'Tracked to Dynamics 365'
let w: World
let alice: World['users'][number]
let bob: World['users'][number]

beforeAll(async () => {
  w = await startWorld({ start: false })
  ;[alice, bob] = w.users as [World['users'][number], World['users'][number]]
  // CRM: contacts owned by each user, a task and an email owned by Alice.
  for (let n = 1; n <= 2; n++) w.dv.admin.createRecord('contacts', { firstname: `Ann${n}`, lastname: 'Lee', emailaddress1: `ann${n}@fabrikam.test`, jobtitle: 'Buyer' }, alice.systemuserid)
  w.dv.admin.createRecord('contacts', { firstname: 'Bo', lastname: 'Berg', emailaddress1: 'bo@fabrikam.test' }, bob.systemuserid)
  w.dv.admin.createRecord('tasks', { subject: 'Call Ann about the renewal', scheduledend: '2026-12-10T09:00:00Z' }, alice.systemuserid)
  w.dv.admin.createRecord('appointments', { subject: 'Demo at Fabrikam', scheduledstart: '2026-12-08T14:00:00Z', scheduledend: '2026-12-08T15:00:00Z', location: 'Fabrikam HQ' }, alice.systemuserid)
  // Outlook: a tracked meeting, a tracked email, an untracked email, in Alice's mailbox.
  w.graph.control.seed(alice.email, 'event', [{ subject: 'Quarterly review', start: { dateTime: '2026-12-03T10:00:00.0000000', timeZone: 'UTC' }, end: { dateTime: '2026-12-03T11:00:00.0000000', timeZone: 'UTC' }, categories: [TRACKED] }])
  w.graph.control.seed(alice.email, 'message', [
    { subject: 'Order 1001', internetMessageId: '<order1001@fabrikam.test>', body: { contentType: 'text', content: 'Please ship.' }, from: { emailAddress: { address: 'ann1@fabrikam.test' } }, toRecipients: [{ emailAddress: { address: alice.email } }], categories: [TRACKED], receivedDateTime: '2026-11-20T08:00:00Z' },
    { subject: 'Lunch?', body: { contentType: 'text', content: 'Private.' }, from: { emailAddress: { address: 'friend@example.test' } }, toRecipients: [{ emailAddress: { address: alice.email } }], receivedDateTime: '2026-11-20T09:00:00Z' },
  ])
  await w.startServer()
  for (const u of w.users) await w.syncUntilQuiet(u.mailboxid!)
})

afterAll(async () => {
  await w?.stop()
})

test('both mailboxes are enabled from the CRM mailboxes table and synced', async () => {
  const { body } = await w.api('GET', '/api/mailboxes')
  expect(body.mailboxes.map((m: { email: string; state: string }) => [m.email, m.state]).sort()).toEqual([
    [alice.email, 'enabled'],
    [bob.email, 'enabled'],
  ])
  const row = w.dv.admin.rows('mailboxes').find((r) => r.id === alice.mailboxid)!
  expect(row.values['lastsuccessfulsynccompletedon']).toBeTruthy()
})

test('CRM → Exchange: each user gets their own contacts and tasks (sync filters), nobody else’s', async () => {
  const aliceContacts = await mailboxRecords(w, alice.email, 'contact')
  expect(aliceContacts.map((c) => c.fields['givenName']).sort()).toEqual(['Ann1', 'Ann2'])
  const bobContacts = await mailboxRecords(w, bob.email, 'contact')
  expect(bobContacts.map((c) => c.fields['givenName'])).toEqual(['Bo'])
  const tasks = await mailboxRecords(w, alice.email, 'task')
  expect(tasks.map((t) => t.fields['subject'])).toEqual(['Call Ann about the renewal'])
  expect(await mailboxRecords(w, bob.email, 'task')).toEqual([])
  const events = (await mailboxRecords(w, alice.email, 'appointment')).map((e) => e.fields['subject'])
  expect(events).toContain('Demo at Fabrikam')
  expect((await mailboxRecords(w, bob.email, 'appointment')).map((e) => e.fields['subject'])).not.toContain('Demo at Fabrikam')
})

test('Exchange → CRM: tracked items arrive, untracked ones do not', async () => {
  expect(w.dv.admin.rows('appointments').map((r) => r.values['subject']).sort()).toEqual(['Demo at Fabrikam', 'Quarterly review'])
  const emails = w.dv.admin.rows('emails').map((r) => r.values['subject'])
  expect(emails).toContain('Order 1001')
  expect(emails).not.toContain('Lunch?')
})

test('Track and Set Regarding from the Exchange side reach the CRM', async () => {
  const lunch = (await mailboxRecords(w, alice.email, 'email')).find((m) => m.fields['subject'] === 'Lunch?')!
  w.graph.control.updateItem(alice.email, graphIdOf(lunch.nativeId), { categories: [TRACKED] })
  const ann = w.dv.admin.rows('contacts').find((r) => r.values['firstname'] === 'Ann1')!
  w.graph.control.seed(alice.email, 'task', [{ title: 'Send Ann the quote', linkedResources: [{ applicationName: 'Concord Regarding', externalId: `contact:${ann.id}`, displayName: 'Ann1 Lee' }] }])
  await w.syncUntilQuiet(alice.mailboxid!)
  expect(w.dv.admin.rows('emails').map((r) => r.values['subject'])).toContain('Lunch?')
  const task = w.dv.admin.rows('tasks').find((r) => r.values['subject'] === 'Send Ann the quote')
  expect(task?.lookups['regardingobjectid']).toMatchObject({ table: 'contact', id: ann.id })
})

test('a reply to a tracked email is tracked automatically and correlated (In-Reply-To) to the same regarding record', async () => {
  const order = w.dv.admin.rows('emails').find((r) => r.values['subject'] === 'Order 1001')!
  const ann = w.dv.admin.rows('contacts').find((r) => r.values['firstname'] === 'Ann1')!
  await dataverseApi(w.dv, 'PATCH', `emails(${order.id})`, { 'regardingobjectid_contact_email@odata.bind': `/contacts(${ann.id})` })
  w.graph.control.seed(alice.email, 'message', [{
    subject: 'RE: Order 1001', internetMessageId: '<reply1001@fabrikam.test>', body: { contentType: 'text', content: 'Shipped.' },
    from: { emailAddress: { address: 'ann1@fabrikam.test' } }, toRecipients: [{ emailAddress: { address: alice.email } }], receivedDateTime: '2026-11-21T08:00:00Z',
    singleValueExtendedProperties: [{ id: 'String 0x1042', value: '<order1001@fabrikam.test>' }],
  }])
  await w.syncUntilQuiet(alice.mailboxid!)
  await w.syncUntilQuiet(alice.mailboxid!)
  const reply = w.dv.admin.rows('emails').find((r) => r.values['subject'] === 'RE: Order 1001')
  expect(reply?.lookups['regardingobjectid']).toMatchObject({ table: 'contact', id: ann.id })
  expect(reply?.values['correlationmethod']).toBe(3) // InReplyTo
})

test('a CRM edit reaches the mailbox and an Outlook edit reaches the CRM', async () => {
  const ann = w.dv.admin.rows('contacts').find((r) => r.values['firstname'] === 'Ann2')!
  await dataverseApi(w.dv, 'PATCH', `contacts(${ann.id})`, { jobtitle: 'Head of Purchasing' })
  const meeting = (await mailboxRecords(w, alice.email, 'appointment')).find((e) => e.fields['subject'] === 'Quarterly review')!
  w.graph.control.updateItem(alice.email, graphIdOf(meeting.nativeId), { subject: 'Quarterly review (moved)' })
  await w.syncUntilQuiet(alice.mailboxid!)
  const contact = (await mailboxRecords(w, alice.email, 'contact')).find((c) => c.fields['givenName'] === 'Ann2')
  expect(contact?.fields['jobTitle']).toBe('Head of Purchasing')
  expect(w.dv.admin.rows('appointments').map((r) => r.values['subject']).sort()).toEqual(['Demo at Fabrikam', 'Quarterly review (moved)'])
})

test('a 429 storm slows one mailbox down but loses nothing', async () => {
  for (let n = 3; n <= 6; n++) w.dv.admin.createRecord('contacts', { firstname: `Ann${n}`, lastname: 'Lee' }, alice.systemuserid)
  w.graph.control.failNext({ status: 429, count: 6, retryAfterSeconds: 1 })
  await until(async () => {
    await w.syncAndWait(alice.mailboxid!)
    return (await mailboxRecords(w, alice.email, 'contact')).length === 6
  }, 'the contacts to arrive after the storm', 40, 100)
  const history = await w.server.history(alice.mailboxid!, 50)
  expect(history.some((h) => h.outcome === 'throttled')).toBe(true)
  expect((await w.server.getMailbox(alice.mailboxid!)).state).toBe('enabled')
  const names = (await mailboxRecords(w, alice.email, 'contact')).map((c) => c.fields['givenName'])
  expect(new Set(names).size).toBe(names.length) // no duplicates
  const metrics = await w.api('GET', '/metrics')
  expect(metrics.body).toMatch(/concord_throttles_total\{side="mailbox"\} [1-9]/)
})

test('a mass delete in Outlook is held in quarantine until an administrator confirms it', async () => {
  const contacts = await mailboxRecords(w, alice.email, 'contact')
  expect(contacts.length).toBe(6)
  for (const c of contacts) w.graph.control.deleteItem(alice.email, graphIdOf(c.nativeId))
  await w.syncAndWait(alice.mailboxid!)
  const { body } = await w.api('GET', `/api/mailboxes/${alice.mailboxid}/quarantine`)
  expect(body.quarantine).toHaveLength(1)
  expect(w.dv.admin.rows('contacts', `_ownerid_value eq ${alice.systemuserid}`)).toHaveLength(6)
  const q = body.quarantine[0]
  const confirmed = await w.api('POST', `/api/mailboxes/${alice.mailboxid}/quarantine/${encodeURIComponent(q.id)}/reject`)
  expect(confirmed.status).toBe(200)
  await w.syncUntilQuiet(alice.mailboxid!)
  // Rejected: the CRM keeps its contacts and the mailbox gets them back.
  expect(w.dv.admin.rows('contacts', `_ownerid_value eq ${alice.systemuserid}`)).toHaveLength(6)
  expect(await mailboxRecords(w, alice.email, 'contact')).toHaveLength(6)
})
