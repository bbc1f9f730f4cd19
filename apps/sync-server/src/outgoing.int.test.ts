/** Outgoing email: CRM emails marked to send go out once through the owner's mailbox, even across a crash. */
import type { OutgoingEmailQueue } from '@concord/adapter-crm'
import { silentLogger } from '@concord/engine'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { AlertCodes } from './mailbox/directory.js'
import { OutgoingEmailSender, messageIdFor } from './outgoing/outgoing-sender.js'
import { type World, dataverseApi, mailboxRecords, startWorld, until } from './test/world.js'

let w: World
let alice: World['users'][number]
let bob: World['users'][number]

beforeAll(async () => {
  w = await startWorld({ users: [{ email: 'alice@contoso.test' }, { email: 'bob@contoso.test' }, { email: 'nora@contoso.test', roles: ['No Send'] }], config: { outgoing: { intervalMs: 1 } }, start: false, roles: [{ name: 'No Send', privileges: noSendPrivileges() }] })
  ;[alice, bob] = w.users as [World['users'][number], World['users'][number]]
  await w.startServer()
  for (const u of w.users) await w.syncUntilQuiet(u.mailboxid!)
})
afterAll(async () => {
  await w?.stop()
})

function noSendPrivileges(): Record<string, string> {
  const p: Record<string, string> = { prvReadUser: 'Global', prvReadUserSettings: 'Basic', prvSyncToOutlook: 'Global' }
  for (const e of ['Contact', 'Activity']) {
    p[`prvRead${e}`] = 'Global'
    for (const a of ['Create', 'Write', 'Append', 'AppendTo']) p[`prv${a}${e}`] = 'Basic'
  }
  return p
}

/** The CRM user writes an email to `to` and presses Send (the SendEmail action). */
function pressSend(owner: World['users'][number], subject: string, to: string): string {
  const row = w.dv.admin.createRecord('emails', {
    subject,
    description: `<p>${subject}</p>`,
    email_activity_parties: [
      { 'partyid_systemuser@odata.bind': `/systemusers(${owner.systemuserid})`, participationtypemask: 1 },
      { addressused: to, participationtypemask: 2 },
    ],
  }, owner.systemuserid)
  w.dv.admin.sendEmail(row.id, owner.systemuserid)
  return row.id
}

const emailRow = (id: string) => w.dv.admin.rows('emails').find((r) => r.id === id)!
const inbox = (email: string) => w.graph.control.count(email, 'message', 'inbox')

test('a CRM email marked to send goes out through the owner’s mailbox and the CRM shows it sent', async () => {
  const id = pressSend(alice, 'Quote for Bob', bob.email)
  expect(emailRow(id).values['statuscode']).toBe(6) // Pending Send
  const before = inbox(bob.email)
  await w.syncAndWait(alice.mailboxid!)
  await until(() => emailRow(id).values['statuscode'] === 3, 'the email to show Sent')
  expect(emailRow(id).values['messageid']).toBe(messageIdFor(id, alice.email))
  expect(inbox(bob.email)).toBe(before + 1)
  // Further scans do not send it again.
  await w.syncAndWait(alice.mailboxid!)
  await w.syncAndWait(alice.mailboxid!)
  expect(inbox(bob.email)).toBe(before + 1)
})

test('a crash between sending and recording does not send twice', async () => {
  const id = pressSend(alice, 'Invoice for Bob', bob.email)
  const before = inbox(bob.email)
  const worker = w.server.workerOf(alice.mailboxid!)!
  const { OutgoingEmailQueue } = await import('@concord/adapter-crm')
  const real = new OutgoingEmailQueue({ orgUrl: w.dv.url, tokenUrl: w.dv.tokenUrl, clientId: w.dv.clientId, clientSecret: w.dv.clientSecret })
  // The process "dies" right after the mail went out: markSent never happens.
  const crashing = Object.create(real) as OutgoingEmailQueue
  crashing.markSent = async () => {
    throw new Error('killed')
  }
  const deps = { state: w.server.state, directory: { raiseAlert: async () => {} } as never, metrics: w.server.metrics, logger: silentLogger, now: Date.now }
  await expect(new OutgoingEmailSender({ ...deps, queue: crashing }).process(worker)).rejects.toThrow('killed')
  expect(inbox(bob.email)).toBe(before + 1)
  expect(emailRow(id).values['statuscode']).toBe(7) // Sending: claimed, not recorded
  // Restarted: the journal says it was claimed; Sent Items already has the Message-ID, so it is only recorded.
  const r = await new OutgoingEmailSender({ ...deps, queue: real }).process(worker)
  expect(r.sent).toBe(1)
  expect(emailRow(id).values['statuscode']).toBe(3)
  expect(inbox(bob.email)).toBe(before + 1)
})

test('an owner who may not send from the CRM: the email fails with an alert on the mailbox, nothing is sent', async () => {
  const nora = w.users[2]!
  const id = pressSend(nora, 'Not allowed', bob.email)
  const before = inbox(bob.email)
  await w.syncAndWait(nora.mailboxid!)
  await until(() => emailRow(id).values['statuscode'] === 8, 'the email to show Failed')
  expect(inbox(bob.email)).toBe(before)
  const alerts = w.dv.admin.rows('tracelogs').filter((r) => r.lookups['regardingobjectid']?.id === nora.mailboxid)
  expect(alerts.map((a) => a.values['tracecode'])).toContain(AlertCodes.SendFailed)
})

test('the recipient’s copy carries the tracking token: it is tracked automatically and links to the same CRM email (no duplicate)', async () => {
  const id = pressSend(alice, 'Proposal for Bob', bob.email)
  await w.syncAndWait(alice.mailboxid!)
  await until(() => emailRow(id).values['statuscode'] === 3, 'the email to show Sent')
  const messageId = emailRow(id).values['messageid']
  // Bob's option is the default, "email messages in response to CRM email": the token in the subject correlates it.
  await w.syncUntilQuiet(bob.mailboxid!)
  const copies = w.dv.admin.rows('emails').filter((r) => r.values['messageid'] === messageId)
  expect(copies).toHaveLength(1)
  const received = (await mailboxRecords(w, bob.email, 'email')).find((m) => m.fields['internetMessageId'] === messageId)!
  expect(received.fields['categories']).toContain('Tracked to Dynamics 365')
  const history = await w.server.history(bob.mailboxid!, 10)
  expect(history.every((h) => h.rejected.crm === 0)).toBe(true)
})

test('with "all email messages", an email from anyone is tracked automatically; with "none", nothing is', async () => {
  await dataverseApi(w.dv, 'PATCH', `usersettingscollection(${bob.systemuserid})`, { incomingemailfilteringmethod: 0 })
  w.graph.control.seed(bob.email, 'message', [{ subject: 'Hello from a stranger', body: { contentType: 'text', content: 'Hi' }, from: { emailAddress: { address: 'stranger@example.test' } }, toRecipients: [{ emailAddress: { address: bob.email } }], receivedDateTime: '2026-11-25T08:00:00Z' }])
  await w.syncUntilQuiet(bob.mailboxid!)
  await w.syncUntilQuiet(bob.mailboxid!)
  expect(w.dv.admin.rows('emails').map((r) => r.values['subject'])).toContain('Hello from a stranger')
  await dataverseApi(w.dv, 'PATCH', `usersettingscollection(${bob.systemuserid})`, { incomingemailfilteringmethod: 4 })
  w.graph.control.seed(bob.email, 'message', [{ subject: 'Another stranger', body: { contentType: 'text', content: 'Hi' }, from: { emailAddress: { address: 'other@example.test' } }, toRecipients: [{ emailAddress: { address: bob.email } }], receivedDateTime: '2026-11-25T09:00:00Z' }])
  await w.syncUntilQuiet(bob.mailboxid!)
  await w.syncUntilQuiet(bob.mailboxid!)
  expect(w.dv.admin.rows('emails').map((r) => r.values['subject'])).not.toContain('Another stranger')
})
