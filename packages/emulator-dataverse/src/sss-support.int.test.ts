/** What a server-side-sync runtime relies on: mailbox option sets, tracelog alerts, outgoing e-mail statuses. */
import { afterAll, beforeAll, expect, test } from 'vitest'
import { startDataverseEmulator, type DataverseEmulator, type SeededUser } from './index.js'
import { apiClient, idFrom, type ApiClient } from './test-support.js'

let emu: DataverseEmulator
let c: ApiClient
let alice: SeededUser

beforeAll(async () => {
  emu = await startDataverseEmulator({ users: ['alice@contoso.test'] })
  alice = emu.users[0] as SeededUser
  c = await apiClient(emu)
})
afterAll(async () => {
  await emu.close()
})

test('mailbox option sets are validated (values outside the choices → 400 naming the column)', async () => {
  const mb = alice.mailboxid as string
  for (const [col, bad] of [['incomingemailstatus', 3], ['emailrouteraccessapproval', 4], ['actdeliverymethod', 3], ['outgoingemaildeliverymethod', 3]] as const) {
    const r = await c.patch(`mailboxes(${mb})`, { [col]: bad })
    expect(r.status).toBe(400)
    expect(r.json.error.message).toContain(`'${col}'`)
  }
  expect((await c.patch(`mailboxes(${mb})`, { incomingemailstatus: 2, actstatus: 0 })).status).toBe(204)
  expect((await c.get(`mailboxes(${mb})?$select=incomingemailstatus,actstatus`)).json).toMatchObject({ incomingemailstatus: 2, actstatus: 0 })
})

test('emailserverprofile.servertype: 0 Exchange Server, 1 Other (POP3/SMTP), 2 Exchange Server (Hybrid), 3 Exchange Online (Hybrid), 4 IMAP/SMTP; others → 400', async () => {
  for (const t of [0, 1, 2, 3, 4]) {
    const id = idFrom(await c.post('emailserverprofiles', { name: `profile ${t}`, servertype: t }))
    expect((await c.get(`emailserverprofiles(${id})?$select=servertype`)).json.servertype).toBe(t)
  }
  for (const bad of [5, -1]) {
    const r = await c.post('emailserverprofiles', { name: 'bad', servertype: bad })
    expect(r.status).toBe(400)
    expect(r.json.error.message).toContain("'servertype'")
  }
})

test('e-mails are found by conversationindex and trackingtoken', async () => {
  const id = idFrom(await c.post('emails', { subject: 'Re: x', messageid: '<ci@x>', conversationindex: 'AQHZCONV', trackingtoken: 'CRM:0001777' }))
  for (const f of ["conversationindex eq 'AQHZCONV'", "trackingtoken eq 'CRM:0001777'"]) {
    const r = await c.get(`emails?$select=activityid&$filter=${encodeURIComponent(f)}`)
    expect(r.json.value.map((e: { activityid: string }) => e.activityid)).toEqual([id])
  }
})

test('tracelogs regarding a mailbox: level 1/2/3 only, tracecode 0..1e9, tracestatus readable back', async () => {
  const mb = alice.mailboxid as string
  const bind = { 'regardingobjectid_mailbox@odata.bind': `/mailboxes(${mb})` }
  expect((await c.post('tracelogs', { text: 'x', level: 4, tracecode: 1, ...bind })).status).toBe(400)
  expect((await c.post('tracelogs', { text: 'x', level: 2, tracecode: -1, ...bind })).status).toBe(400)
  const id = idFrom(await c.post('tracelogs', { text: 'Mailbox throttled', level: 2, tracecode: 429, tracestatus: false, ...bind }))
  const row = (await c.get(`tracelogs(${id})?$select=text,level,tracecode,tracestatus,_regardingobjectid_value`)).json
  expect(row).toMatchObject({ text: 'Mailbox throttled', level: 2, tracecode: 429, tracestatus: false, _regardingobjectid_value: mb })
})

test('outgoing e-mail: Pending Send → Sending (If-Match guards the claim) → Sent stamps senton and keeps messageid; pairs are checked', async () => {
  const asAlice = c.as({ CallerObjectId: alice.azureactivedirectoryobjectid })
  const id = idFrom(await asAlice.post('emails', { subject: 'Quote', email_activity_parties: [{ addressused: 'bob@fabrikam.test', participationtypemask: 2 }] }))
  expect((await asAlice.post(`emails(${id})/Microsoft.Dynamics.CRM.SendEmail`, { IssueSend: true })).status).toBe(200)
  const pending = await c.get(`emails(${id})?$select=statecode,statuscode,senton`)
  expect(pending.json).toMatchObject({ statecode: 1, statuscode: 6, senton: null })
  const etag = pending.json['@odata.etag'] as string
  expect((await c.patch(`emails(${id})`, { statuscode: 7 }, { 'If-Match': etag })).status).toBe(204)
  const stale = await c.patch(`emails(${id})`, { statuscode: 7 }, { 'If-Match': etag })
  expect(stale.status).toBe(412)
  expect(stale.json.error.code).toBe('0x80060882')
  // an impossible pair: Sending (7) belongs to Completed (1), not Open (0)
  expect((await c.patch(`emails(${id})`, { statecode: 0, statuscode: 7 })).status).toBe(400)
  expect((await c.patch(`emails(${id})`, { statecode: 1, statuscode: 3, messageid: '<crm-quote@contoso.test>' })).status).toBe(204)
  const sent = (await c.get(`emails(${id})?$select=statecode,statuscode,senton,messageid`)).json
  expect(sent).toMatchObject({ statecode: 1, statuscode: 3, messageid: '<crm-quote@contoso.test>' })
  expect(typeof sent.senton).toBe('string')
  // Failed (8) is an Open status
  const other = idFrom(await asAlice.post('emails', { subject: 'Fails' }))
  await asAlice.post(`emails(${other})/Microsoft.Dynamics.CRM.SendEmail`, { IssueSend: true })
  expect((await c.patch(`emails(${other})`, { statecode: 0, statuscode: 8 })).status).toBe(204)
  expect((await c.get(`emails(${other})?$select=statecode,statuscode,senton`)).json).toMatchObject({ statecode: 0, statuscode: 8, senton: null })
})

test('admin.sendEmail runs the SendEmail action as a user (Pending Send + tracking token)', async () => {
  const row = emu.admin.createRecord('emails', { subject: 'Admin send' }, alice.systemuserid)
  const subject = emu.admin.sendEmail(row.id, alice.systemuserid)
  expect(subject).toMatch(/^Admin send CRM:0001\d{3}$/)
  expect(emu.admin.rows('emails', `activityid eq ${row.id}`)[0]?.values).toMatchObject({ statecode: 1, statuscode: 6 })
  expect(() => emu.admin.sendEmail(row.id, alice.systemuserid)).toThrow(/must be open/)
})

test("testAndEnable: 'external' leaves testemailconfigurationscheduled set for a server-side-sync runtime to process", async () => {
  const ext = await startDataverseEmulator({ users: [{ email: 'pat@contoso.test', mailbox: 'pending' }], testAndEnable: 'external' })
  try {
    const ec = await apiClient(ext)
    const mb = (ext.users[0] as SeededUser).mailboxid as string
    expect((await ec.patch(`mailboxes(${mb})`, { testemailconfigurationscheduled: true })).status).toBe(204)
    const row = (await ec.get(`mailboxes(${mb})?$select=testemailconfigurationscheduled,incomingemailstatus`)).json
    expect(row).toMatchObject({ testemailconfigurationscheduled: true, incomingemailstatus: 0 })
    expect((await ec.get(`tracelogs?$filter=_regardingobjectid_value eq ${mb}`)).json.value).toEqual([])
  } finally {
    await ext.close()
  }
})
