/** Mailbox lifecycle as server-side sync runs it: Test & Enable, disable after failures with an alert, re-enable. */
import { afterEach, expect, test } from 'vitest'
import { AlertCodes } from './mailbox/directory.js'
import { type World, dataverseApi, mailboxRecords, startWorld, until } from './test/world.js'

let w: World | undefined
afterEach(async () => {
  await w?.stop()
  w = undefined
})

const alertsOf = (world: World, mailboxId: string) =>
  world.dv.admin.rows('tracelogs').filter((r) => r.lookups['regardingobjectid']?.id === mailboxId).map((r) => ({ code: r.values['tracecode'], level: r.values['level'], text: String(r.values['text']) }))

test('a mailbox waiting for approval does not sync; Test & Enable that fails leaves it off with an alert; one that passes enables it', async () => {
  w = await startWorld({ users: [{ email: 'dana@contoso.test', mailbox: 'pending', inGraph: false }] })
  const dana = w.users[0]!
  const id = dana.mailboxid!
  w.dv.admin.createRecord('contacts', { firstname: 'Eve', lastname: 'Stone' }, dana.systemuserid)
  expect((await w.server.getMailbox(id)).state).toBe('pending')
  expect((await w.server.getMailbox(id)).reason).toMatch(/not approved/)

  // The administrator approves and asks for Test & Enable, but the mailbox does not exist in Exchange.
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${id})`, { emailrouteraccessapproval: 1, isemailaddressapprovedbyo365admin: true, enabledforincomingemail: true, enabledforoutgoingemail: true, enabledforact: true, orgmarkedasprimaryforexchangesync: true, testemailconfigurationscheduled: true })
  await w.api('POST', '/api/mailboxes/refresh')
  const failed = w.dv.admin.rows('mailboxes').find((r) => r.id === id)!
  expect([failed.values['incomingemailstatus'], failed.values['actstatus'], failed.values['testemailconfigurationscheduled']]).toEqual([2, 2, false])
  expect(alertsOf(w, id)).toContainEqual(expect.objectContaining({ code: AlertCodes.TestAndEnableFailed, level: 3 }))
  expect((await w.server.getMailbox(id)).state).toBe('pending')

  // The mailbox is created in Exchange; Test & Enable again passes and the mailbox syncs.
  w.graph.control.addMailbox(dana.email)
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${id})`, { testemailconfigurationscheduled: true })
  await w.api('POST', '/api/mailboxes/refresh')
  expect((await w.server.getMailbox(id)).state).toBe('enabled')
  await w.syncUntilQuiet(id)
  expect((await mailboxRecords(w, dana.email, 'contact')).map((c) => c.fields['givenName'])).toEqual(['Eve'])
})

test('a permanent error disables the mailbox at once with an alert; a new Test & Enable resumes from the change log', async () => {
  w = await startWorld({ users: [{ email: 'erin@contoso.test' }] })
  const erin = w.users[0]!
  const id = erin.mailboxid!
  w.dv.admin.createRecord('contacts', { firstname: 'Finn', lastname: 'Hale' }, erin.systemuserid)
  await w.syncUntilQuiet(id)
  const requestsBefore = (await w.server.history(id, 1))[0]!.requests

  // The CRM user is disabled: impersonating them is refused (403) → permanent error.
  await dataverseApi(w.dv, 'PATCH', `systemusers(${erin.systemuserid})`, { isdisabled: true })
  w.server.workerOf(id)!.reconfigure({ filters: undefined }) // drop the cached owner masks
  w.server.syncNow(id)
  await until(async () => (await w!.server.getMailbox(id)).state === 'disabled', 'the mailbox to be disabled')
  const m = await w.server.getMailbox(id)
  expect(m.reason).toMatch(/permanent error/)
  const row = w.dv.admin.rows('mailboxes').find((r) => r.id === id)!
  expect(row.values['incomingemailstatus']).toBe(2)
  expect(alertsOf(w, id)).toContainEqual(expect.objectContaining({ code: AlertCodes.MailboxDisabled, level: 3 }))
  expect(w.server.loop.has(id)).toBe(false)

  // Fixed: the user is enabled again and Test & Enable passes; the mailbox resumes where it stopped.
  await dataverseApi(w.dv, 'PATCH', `systemusers(${erin.systemuserid})`, { isdisabled: false })
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${id})`, { testemailconfigurationscheduled: true })
  await w.api('POST', '/api/mailboxes/refresh')
  expect((await w.server.getMailbox(id)).state).toBe('enabled')
  await w.syncAndWait(id)
  const resumed = (await w.server.history(id, 1))[0]!
  expect(resumed.outcome).toBe('ok')
  expect(resumed.pulled).toEqual({ crm: 0, mailbox: 0 }) // no full resync: nothing re-listed as new
  expect(resumed.requests.mailbox).toBeLessThanOrEqual(requestsBefore.mailbox)
  expect((await mailboxRecords(w, erin.email, 'contact'))).toHaveLength(1)
})

test('transient failures disable the mailbox after the configured number in a row', async () => {
  // The CRM says the mailbox is tested, but Exchange has no such mailbox: every cycle fails.
  w = await startWorld({ users: [{ email: 'gus@contoso.test', inGraph: false }] })
  const id = w.users[0]!.mailboxid!
  await until(async () => (await w!.server.getMailbox(id)).state === 'disabled', 'the mailbox to be disabled')
  const m = await w.server.getMailbox(id)
  const history = await w.server.history(id, 10)
  expect(history.every((h) => h.outcome === 'error')).toBe(true)
  expect(m.failures).toBeGreaterThanOrEqual(1)
  expect(alertsOf(w, id)).toContainEqual(expect.objectContaining({ code: AlertCodes.MailboxDisabled, level: 3 }))
})

test('an owner without the sync privilege syncs nothing', async () => {
  w = await startWorld({ start: false, users: [{ email: 'hal@contoso.test', roles: [] }] })
  const hal = w.users[0]!
  await dataverseApi(w.dv, 'POST', 'contacts', { firstname: 'Ida', lastname: 'Moss', 'ownerid@odata.bind': `/systemusers(${hal.systemuserid})` })
  await w.startServer()
  await w.syncAndWait(hal.mailboxid!)
  const last = (await w.server.history(hal.mailboxid!, 1))[0]!
  expect(last.outcome).toBe('skipped')
  expect(last.reason).toMatch(/sync privilege/)
  expect(await mailboxRecords(w, hal.email, 'contact')).toEqual([])
})
