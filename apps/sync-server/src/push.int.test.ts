/** Graph change notifications: subscriptions per mailbox, the validation handshake, clientState, and push-driven syncs. */
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type World, dataverseApi, graphIdOf, mailboxRecords, startWorld, until } from './test/world.js'

let w: World
let mailboxId: string
beforeAll(async () => {
  w = await startWorld({ push: true, users: [{ email: 'alice@contoso.test' }] })
  mailboxId = w.users[0]!.mailboxid!
  w.dv.admin.createRecord('contacts', { firstname: 'Ann', lastname: 'Lee', jobtitle: 'Buyer' }, w.users[0]!.systemuserid)
  await w.syncUntilQuiet(mailboxId)
})
afterAll(async () => {
  await w?.stop()
})

test('the server subscribes to every synced resource of the mailbox, after Graph validated the endpoint', async () => {
  const subs = w.graph.control.subscriptions()
  expect(subs.length).toBeGreaterThanOrEqual(4)
  for (const s of subs) expect(String(s['notificationUrl'])).toBe(`${w.server.adminUrl}/notifications/${mailboxId}`)
  const metrics = (await w.api('GET', '/metrics')).body as string
  expect(metrics).toMatch(/concord_notifications_total\{result="validation"\} [1-9]/)
})

test('an Outlook edit is pushed: the server syncs it to the CRM without being asked', async () => {
  const contact = (await mailboxRecords(w, 'alice@contoso.test', 'contact'))[0]!
  const cycles = (await w.server.history(mailboxId, 200)).length
  w.graph.control.updateItem('alice@contoso.test', graphIdOf(contact.nativeId), { jobTitle: 'Chief Buyer' })
  await until(() => w.dv.admin.rows('contacts')[0]?.values['jobtitle'] === 'Chief Buyer', 'the pushed change to reach the CRM')
  await until(async () => (await w.server.history(mailboxId, 200)).length > cycles, 'the pushed cycle to be recorded')
  const metrics = (await w.api('GET', '/metrics')).body as string
  expect(metrics).toMatch(/concord_notifications_total\{result="accepted"\} [1-9]/)
})

test('notifications with a wrong clientState are ignored; a malformed body is a 400', async () => {
  const sub = w.graph.control.subscriptions()[0]!
  const forged = await fetch(`${w.server.adminUrl}/notifications/${mailboxId}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ value: [{ subscriptionId: sub['id'], clientState: 'forged-forged-forged', changeType: 'updated', resource: 'x' }] }),
  })
  expect(forged.status).toBe(202)
  const metrics = (await w.api('GET', '/metrics')).body as string
  expect(metrics).toMatch(/concord_notifications_total\{result="rejected"\} [1-9]/)
  const malformed = await fetch(`${w.server.adminUrl}/notifications/${mailboxId}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ value: 'nope' }) })
  expect(malformed.status).toBe(400)
  const handshake = await fetch(`${w.server.adminUrl}/notifications/${mailboxId}?validationToken=${encodeURIComponent('abc 123')}`, { method: 'POST' })
  expect([handshake.status, await handshake.text()]).toEqual([200, 'abc 123'])
})

test('a CRM edit still reaches the mailbox (polling and sync-now, no push from the CRM side)', async () => {
  const ann = w.dv.admin.rows('contacts')[0]!
  await dataverseApi(w.dv, 'PATCH', `contacts(${ann.id})`, { department: 'Purchasing' })
  await w.syncUntilQuiet(mailboxId)
  expect((await mailboxRecords(w, 'alice@contoso.test', 'contact'))[0]!.fields['department']).toBe('Purchasing')
})

test('a restarted server adopts its stored subscriptions instead of orphaning them', async () => {
  const before = w.graph.control.subscriptions().map((s) => String(s['id'])).sort()
  await w.server.stop()
  await w.startServer()
  await w.syncUntilQuiet(mailboxId)
  const after = w.graph.control.subscriptions().map((s) => String(s['id'])).sort()
  expect(after).toEqual(before)
  // Notifications still reach the restarted server and drive a sync.
  const contact = (await mailboxRecords(w, 'alice@contoso.test', 'contact'))[0]!
  w.graph.control.updateItem('alice@contoso.test', graphIdOf(contact.nativeId), { jobTitle: 'Buyer again' })
  await until(() => w.dv.admin.rows('contacts')[0]?.values['jobtitle'] === 'Buyer again', 'the pushed change after the restart')
})
