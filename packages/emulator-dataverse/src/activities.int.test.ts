import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startDataverseEmulator, type DataverseEmulator, type SeededUser } from './index.js'
import { apiClient, idFrom, type ApiClient } from './test-support.js'

let emu: DataverseEmulator
let c: ApiClient
let alice: SeededUser
let pending: SeededUser

beforeAll(async () => {
  emu = await startDataverseEmulator({ users: ['alice@contoso.test', { email: 'pat@contoso.test', mailbox: 'pending' }] })
  ;[alice, pending] = emu.users as [SeededUser, SeededUser]
  c = await apiClient(emu)
})
afterAll(async () => {
  await emu.close()
})

type Party = { participationtypemask: number; addressused: string | null; _partyid_value: string | null; '_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname'?: string }

describe('activity parties', () => {
  test('bound parties, resolved addresses (sender: first match; To: every match) and unresolved addresses', async () => {
    const c1 = idFrom(await c.post('contacts', { lastname: 'Twin1', emailaddress1: 'twin@ext.test' }))
    const c2 = idFrom(await c.post('contacts', { lastname: 'Twin2', emailaddress2: 'TWIN@ext.test' }))
    const r = await c.post('emails', {
      subject: 'Parties',
      directioncode: false,
      email_activity_parties: [
        { addressused: 'alice@contoso.test', participationtypemask: 1 },
        { addressused: 'twin@ext.test', participationtypemask: 2 },
        { addressused: 'nobody@ext.test', participationtypemask: 3 },
        { 'partyid_contact@odata.bind': `/contacts(${c1})`, participationtypemask: 4 },
      ],
    })
    const id = idFrom(r)
    const parties = (await c.get(`emails(${id})/email_activity_parties?$select=participationtypemask,addressused,_partyid_value`, { Prefer: 'odata.include-annotations="*"' })).json
      .value as Party[]
    const byMask = (m: number) => parties.filter((p) => p.participationtypemask === m)
    expect(byMask(1)).toHaveLength(1)
    expect(byMask(1)[0]).toMatchObject({ _partyid_value: alice.systemuserid, '_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname': 'systemuser' })
    expect(byMask(2).map((p) => p._partyid_value).sort()).toEqual([c1, c2].sort())
    expect(byMask(3)).toEqual([expect.objectContaining({ addressused: 'nobody@ext.test', _partyid_value: null })])
    expect(byMask(4)[0]).toMatchObject({ _partyid_value: c1, addressused: 'twin@ext.test' })
    const email = (await c.get(`emails(${id})?$select=sender,torecipients,directioncode`)).json
    expect(email).toMatchObject({ sender: 'alice@contoso.test', torecipients: 'twin@ext.test;twin@ext.test', directioncode: false })

    // PATCH with the collection replaces the parties; deleting the email removes them
    await c.patch(`emails(${id})`, { email_activity_parties: [{ addressused: 'only@ext.test', participationtypemask: 2 }] })
    const after = (await c.get(`emails(${id})?$expand=email_activity_parties($select=addressused)`)).json.email_activity_parties as Party[]
    expect(after.map((p) => p.addressused)).toEqual(['only@ext.test'])
    await c.del(`emails(${id})`)
    expect((await c.get(`activityparties?$filter=_activityid_value eq ${id}`)).json.value).toEqual([])
  })

  test('appointment parties: organizer and attendees', async () => {
    const r = await c.post(
      'appointments?$expand=appointment_activity_parties($select=participationtypemask,_partyid_value)',
      {
        subject: 'Sync meeting',
        scheduledstart: '2026-12-01T09:00:00Z',
        scheduledend: '2026-12-01T10:00:00Z',
        appointment_activity_parties: [
          { 'partyid_systemuser@odata.bind': `/systemusers(${alice.systemuserid})`, participationtypemask: 7 },
          { addressused: 'guest@ext.test', participationtypemask: 5 },
          { addressused: 'maybe@ext.test', participationtypemask: 6 },
        ],
      },
      { Prefer: 'return=representation' },
    )
    expect(r.status).toBe(201)
    expect(r.json.statecode).toBe(3)
    expect(r.json.statuscode).toBe(5)
    expect(r.json.scheduleddurationminutes).toBe(60)
    expect((r.json.appointment_activity_parties as Party[]).map((p) => p.participationtypemask).sort()).toEqual([5, 6, 7])
  })

  test('invalid parties are rejected with the field named', async () => {
    const r = await c.post('emails', { subject: 'x', email_activity_parties: [{ addressused: 'a@b.test', participationtypemask: 99 }] })
    expect(r.status).toBe(400)
    expect(r.json.error.message).toContain('participationtypemask')
    const r2 = await c.post('emails', { subject: 'x', email_activity_parties: [{ participationtypemask: 1 }] })
    expect(r2.status).toBe(400)
  })
})

describe('regarding lookups and email semantics', () => {
  test('regardingobjectid via both nav names; readable with lookuplogicalname and formatted value', async () => {
    const con = idFrom(await c.post('contacts', { firstname: 'Reg', lastname: 'Arding' }))
    const acc = idFrom(await c.post('accounts', { name: 'Regarding Inc' }))
    const e1 = idFrom(await c.post('emails', { subject: 'long form', 'regardingobjectid_contact_email@odata.bind': `/contacts(${con})` }))
    const e2 = idFrom(await c.post('emails', { subject: 'short form', 'regardingobjectid_contact@odata.bind': `contacts(${con})` }))
    const t1 = idFrom(await c.post('tasks', { subject: 'task', 'regardingobjectid_account_task@odata.bind': `${emu.apiUrl}/accounts(${acc})` }))
    const r = await c.get(`emails(${e1})?$select=_regardingobjectid_value,regardingobjecttypecode`, { Prefer: 'odata.include-annotations="*"' })
    expect(r.headers.get('preference-applied')).toBeNull()
    expect(r.json).toMatchObject({
      _regardingobjectid_value: con,
      '_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname': 'contact',
      '_regardingobjectid_value@OData.Community.Display.V1.FormattedValue': 'Reg Arding',
      '_regardingobjectid_value@Microsoft.Dynamics.CRM.associatednavigationproperty': 'regardingobjectid_contact_email',
      regardingobjecttypecode: 'contact',
    })
    const plain = await c.get(`emails(${e2})?$select=_regardingobjectid_value`)
    expect(Object.keys(plain.json).some((k) => k.includes('lookuplogicalname'))).toBe(false)
    expect(plain.json._regardingobjectid_value).toBe(con)
    const list = await c.get(`emails?$select=subject&$filter=_regardingobjectid_value eq ${con}&$orderby=subject`)
    expect(list.json.value.map((v: { subject: string }) => v.subject)).toEqual(['long form', 'short form'])
    expect((await c.get(`tasks(${t1})?$select=_regardingobjectid_value`)).json._regardingobjectid_value).toBe(acc)
    const wrongType = await c.post('emails', { subject: 'x', 'regardingobjectid_contact_email@odata.bind': `/accounts(${acc})` })
    expect(wrongType.status).toBe(400)
    const missing = await c.post('emails', { subject: 'x', 'regardingobjectid_contact@odata.bind': '/contacts(00000000-0000-0000-0000-00000000abcd)' })
    expect(missing.status).toBe(404)
    expect((await c.del(`emails(${e1})/regardingobjectid_contact_email/$ref`)).status).toBe(204)
    expect((await c.get(`emails(${e1})?$select=_regardingobjectid_value`)).json._regardingobjectid_value).toBeNull()
  })

  test('state/status pairs, correlation headers and Pending Send', async () => {
    const r = await c.post(
      'emails',
      {
        subject: 'RE: hello',
        directioncode: false,
        messageid: '<abc@ext.test>',
        inreplyto: '<root@contoso.test>',
        conversationindex: 'AQHZ',
        trackingtoken: 'CRM:0001001',
        correlationmethod: 3,
        statecode: 1,
        statuscode: 4,
      },
      { Prefer: 'return=representation' },
    )
    expect(r.json).toMatchObject({ statecode: 1, statuscode: 4, correlationmethod: 3, messageid: '<abc@ext.test>', inreplyto: '<root@contoso.test>' })
    expect((await c.get("emails(messageid='<abc@ext.test>')?$select=subject")).json.subject).toBe('RE: hello')
    const outgoing = idFrom(await c.post('emails', { subject: 'to send' }))
    expect((await c.patch(`emails(${outgoing})`, { statuscode: 6 })).status).toBe(204)
    const pendingSend = await c.get('emails?$select=subject&$filter=statuscode eq 6 and directioncode eq true')
    expect(pendingSend.json.value.map((v: { subject: string }) => v.subject)).toContain('to send')
    expect((await c.get(`emails(${outgoing})?$select=statecode`)).json.statecode).toBe(1)
    expect((await c.patch(`emails(${outgoing})`, { statecode: 2, statuscode: 4 })).status).toBe(400)
    expect((await c.patch(`emails(${outgoing})`, { statecode: 2 })).status).toBe(204)
    expect((await c.get(`emails(${outgoing})?$select=statuscode`)).json.statuscode).toBe(5)
  })
})

describe('mailboxes, user settings and sync filters', () => {
  test('seeded mailboxes: enabled one is approved and tested; Test & Enable on a pending one fails, then succeeds after approval', async () => {
    const ok = (await c.get(`mailboxes(${alice.mailboxid})`)).json
    expect(ok).toMatchObject({ emailrouteraccessapproval: 1, incomingemailstatus: 1, outgoingemailstatus: 1, actstatus: 1, _regardingobjectid_value: alice.systemuserid })
    const pid = pending.mailboxid as string
    expect((await c.get(`mailboxes(${pid})?$select=emailrouteraccessapproval`)).json.emailrouteraccessapproval).toBe(2)
    await c.patch(`mailboxes(${pid})`, { testemailconfigurationscheduled: true })
    const failed = (await c.get(`mailboxes(${pid})`)).json
    expect(failed).toMatchObject({ incomingemailstatus: 2, outgoingemailstatus: 2, actstatus: 2, enabledforact: false, testemailconfigurationscheduled: false })
    const alerts = await c.get(`tracelogs?$filter=_regardingobjectid_value eq ${pid} and level eq 3`)
    expect(alerts.json.value).toHaveLength(1)
    expect(alerts.json.value[0].text).toContain('not approved')

    await c.patch(`mailboxes(${pid})`, { emailrouteraccessapproval: 1, isemailaddressapprovedbyo365admin: true })
    await c.patch(`mailboxes(${pid})`, { testemailconfigurationscheduled: true })
    const enabled = (await c.get(`mailboxes(${pid})`)).json
    expect(enabled).toMatchObject({ incomingemailstatus: 1, outgoingemailstatus: 1, actstatus: 1, enabledforincomingemail: true, enabledforact: true })
    const info = await c.get(`tracelogs?$filter=_regardingobjectid_value eq ${pid} and level eq 1`)
    expect(info.json.value[0].text).toContain('enabled for server-side synchronization')
    // SSS writes its own alerts and sync bookkeeping back
    expect((await c.post('tracelogs', { text: 'Sync failed: 401', level: 3, 'regardingobjectid_mailbox@odata.bind': `/mailboxes(${pid})` })).status).toBe(204)
    expect((await c.patch(`mailboxes(${pid})`, { lastsyncerrorcode: 401, lastsyncerrorcount: 1, itemsprocessedforlastsync: 7 })).status).toBe(204)
  })

  test('user settings expose incomingemailfilteringmethod (default 1 = in response to CRM email)', async () => {
    const s = await c.get(`usersettingscollection(${alice.systemuserid})?$select=incomingemailfilteringmethod`)
    expect(s.json.incomingemailfilteringmethod).toBe(1)
    await c.patch(`usersettingscollection(${alice.systemuserid})`, { incomingemailfilteringmethod: 0 })
    expect((await c.get(`usersettingscollection(${alice.systemuserid})`)).json.incomingemailfilteringmethod).toBe(0)
  })

  test('default sync filters (userqueries, querytype 256) carry an OData filter usable against the table', async () => {
    const asAlice = c.as({ CallerObjectId: alice.azureactivedirectoryobjectid })
    const filters = await asAlice.get(`userqueries?$select=name,returnedtypecode,concord_odatafilter&$filter=querytype eq 256 and _ownerid_value eq ${alice.systemuserid}&$orderby=name`)
    expect(filters.json.value.map((f: { name: string }) => f.name)).toEqual(['My Appointments', 'My Contacts', 'My Tasks'])
    const myContacts = filters.json.value.find((f: { returnedtypecode: string }) => f.returnedtypecode === 'contact')
    await asAlice.post('contacts', { lastname: 'Mine' })
    const rows = await asAlice.get(`contacts?$select=lastname&$filter=${encodeURIComponent(myContacts.concord_odatafilter)}`)
    expect(rows.json.value.map((v: { lastname: string }) => v.lastname)).toEqual(['Mine'])
    const bad = await asAlice.post('userqueries', { name: 'x', returnedtypecode: 'contact', querytype: 256, concord_odatafilter: 'lastname eq' })
    expect(bad.status).toBe(400)
  })
})

describe('activitypointers', () => {
  test('read-only view across emails, appointments and tasks', async () => {
    const acc = idFrom(await c.post('accounts', { name: 'Pointer Co' }))
    const bind = `/accounts(${acc})`
    await c.post('emails', { subject: 'p-email', 'regardingobjectid_account_email@odata.bind': bind })
    await c.post('appointments', { subject: 'p-appt', 'regardingobjectid_account_appointment@odata.bind': bind })
    const task = idFrom(await c.post('tasks', { subject: 'p-task', 'regardingobjectid_account_task@odata.bind': bind }))
    const r = await c.get(`activitypointers?$select=subject,activitytypecode&$filter=_regardingobjectid_value eq ${acc}&$orderby=subject`)
    expect(r.json.value.map((v: { subject: string; activitytypecode: string }) => [v.subject, v.activitytypecode])).toEqual([
      ['p-appt', 'appointment'],
      ['p-email', 'email'],
      ['p-task', 'task'],
    ])
    expect((await c.get(`activitypointers(${task})?$select=subject`)).json.subject).toBe('p-task')
    expect((await c.post('activitypointers', { subject: 'x' })).status).toBe(405)
    expect((await c.get('activitypointers', { Prefer: 'odata.track-changes' })).status).toBe(400)
  })
})
