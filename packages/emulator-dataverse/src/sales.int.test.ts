import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startDataverseEmulator, type DataverseEmulator, type SeededUser } from './index.js'
import { apiClient, idFrom, type ApiClient } from './test-support.js'

let emu: DataverseEmulator
let app: ApiClient
let alice: SeededUser
let bob: SeededUser
let asAlice: ApiClient
let asBob: ApiClient

beforeAll(async () => {
  emu = await startDataverseEmulator({ users: ['alice@contoso.test', 'bob@contoso.test'] })
  ;[alice, bob] = emu.users as [SeededUser, SeededUser]
  app = await apiClient(emu)
  asAlice = app.as({ CallerObjectId: alice.azureactivedirectoryobjectid })
  asBob = app.as({ MSCRMCallerID: bob.systemuserid })
})
afterAll(async () => {
  await emu.close()
})

describe('leads and opportunities', () => {
  test('leads: names, e-mails, customer lookups, owner, state option sets, fullname computed', async () => {
    const account = idFrom(await app.post('accounts', { name: 'Fabrikam' }))
    const res = await asAlice.post(
      'leads',
      { subject: 'Interested in sensors', firstname: 'Lena', lastname: 'Park', companyname: 'Fabrikam', emailaddress1: 'lena@fabrikam.test', emailaddress2: 'lena.park@home.test', 'parentaccountid@odata.bind': `/accounts(${account})`, 'customerid_account@odata.bind': `/accounts(${account})` },
      { Prefer: 'return=representation,odata.include-annotations="*"' },
    )
    expect(res.status).toBe(201)
    expect(res.json).toMatchObject({ fullname: 'Lena Park', statecode: 0, statuscode: 1, _ownerid_value: alice.systemuserid, _parentaccountid_value: account, _customerid_value: account })
    expect(res.json['_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname']).toBe('account')
    const lead = res.json.leadid as string
    expect((await asAlice.patch(`leads(${lead})`, { statuscode: 4 })).status).toBe(204) // Lost → statecode 2 Disqualified
    expect((await asAlice.get(`leads(${lead})?$select=statecode,statuscode`)).json).toMatchObject({ statecode: 2, statuscode: 4 })
    const bad = await asAlice.patch(`leads(${lead})`, { statecode: 1, statuscode: 2 })
    expect(bad.status).toBe(400)
    expect(bad.json.error.code).toBe('0x80040203')
    // user depth: Bob (Basic User) does not see Alice's lead
    expect((await asBob.get(`leads(${lead})`)).status).toBe(403)
    expect((await asBob.get('leads?$select=fullname')).json.value).toEqual([])
  })

  test('opportunities: customer, parent account/contact, originating lead; Won/Lost only through WinOpportunity / LoseOpportunity', async () => {
    const contact = idFrom(await asAlice.post('contacts', { lastname: 'Buyer' }))
    const opp = idFrom(
      await asAlice.post('opportunities', { name: '500 sensors', estimatedvalue: 12500.5, 'customerid_contact@odata.bind': `/contacts(${contact})`, 'parentcontactid@odata.bind': `/contacts(${contact})` }),
    )
    const row = (await asAlice.get(`opportunities(${opp})?$select=name,estimatedvalue,statecode,statuscode,_customerid_value`)).json
    expect(row).toMatchObject({ name: '500 sensors', estimatedvalue: 12500.5, statecode: 0, statuscode: 1, _customerid_value: contact })
    const plain = await asAlice.patch(`opportunities(${opp})`, { statecode: 1, statuscode: 3 })
    expect(plain.status).toBe(400)
    expect(plain.json.error).toEqual({
      code: '0x80100005',
      message: 'This message can not be used to set the state of opportunity to won. In order to set state of opportunity to won, use the won message instead.',
    })
    expect((await asAlice.patch(`opportunities(${opp})`, { statuscode: 2 })).status).toBe(204) // On Hold stays open
    const win = await asAlice.post('WinOpportunity', { OpportunityClose: { subject: 'Won', 'opportunityid@odata.bind': `/opportunities(${opp})` }, Status: 3 })
    expect(win.status).toBe(204)
    expect((await asAlice.get(`opportunities(${opp})?$select=statecode,statuscode`)).json).toMatchObject({ statecode: 1, statuscode: 3 })
    expect((await asAlice.post('LoseOpportunity', { OpportunityClose: { 'opportunityid@odata.bind': `/opportunities(${opp})` }, Status: 4 })).status).toBe(400) // not open
    const bob1 = idFrom(await asBob.post('opportunities', { name: 'Bob deal' }))
    expect((await asAlice.post('WinOpportunity', { OpportunityClose: { 'opportunityid@odata.bind': `/opportunities(${bob1})` }, Status: 3 })).status).toBe(403)
    expect((await asBob.post('LoseOpportunity', { OpportunityClose: { 'opportunityid@odata.bind': `/opportunities(${bob1})` }, Status: 9 })).status).toBe(400)
  })

  test('leads and opportunities as regarding targets of e-mails, appointments and tasks, and a lead as an e-mail party', async () => {
    const lead = idFrom(await asAlice.post('leads', { firstname: 'Lou', lastname: 'Ng', emailaddress1: 'lou@prospect.test' }))
    const opp = idFrom(await asAlice.post('opportunities', { name: 'Pilot' }))
    const email = await asAlice.post(
      'emails',
      {
        subject: 'Hello',
        'regardingobjectid_lead_email@odata.bind': `/leads(${lead})`,
        email_activity_parties: [
          { addressused: 'LOU@prospect.test', participationtypemask: 1 }, // resolved to the lead (sender: first match)
          { 'partyid_lead@odata.bind': `/leads(${lead})`, participationtypemask: 2 },
        ],
      },
      { Prefer: 'return=representation,odata.include-annotations="*"' },
    )
    expect(email.status).toBe(201)
    expect(email.json._regardingobjectid_value).toBe(lead)
    expect(email.json['_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname']).toBe('lead')
    expect(email.json['_regardingobjectid_value@OData.Community.Display.V1.FormattedValue']).toBe('Lou Ng')
    expect(email.json.regardingobjecttypecode).toBe('lead')
    const parties = (await asAlice.get(`emails(${email.json.activityid})/email_activity_parties?$select=participationtypemask,addressused,_partyid_value`, { Prefer: 'odata.include-annotations="*"' })).json.value
    expect(parties).toHaveLength(2)
    for (const p of parties) expect(p['_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname']).toBe('lead')
    expect(parties.find((p: { participationtypemask: number }) => p.participationtypemask === 2).addressused).toBe('lou@prospect.test')
    const appt = await asAlice.post('appointments', { subject: 'Demo', 'regardingobjectid_opportunity_appointment@odata.bind': `/opportunities(${opp})` }, { Prefer: 'return=representation' })
    expect(appt.json._regardingobjectid_value).toBe(opp)
    const task = await asAlice.post('tasks', { subject: 'Call', 'regardingobjectid_opportunity@odata.bind': `/opportunities(${opp})` }, { Prefer: 'return=representation' })
    expect(task.json.regardingobjecttypecode).toBe('opportunity')
    const filtered = await asAlice.get(`emails?$filter=_regardingobjectid_value eq ${lead}&$select=subject`)
    expect(filtered.json.value).toHaveLength(1)
    expect((await asAlice.get(`emails(${email.json.activityid})?$expand=regardingobjectid_lead_email($select=fullname)`)).json.regardingobjectid_lead_email).toMatchObject({ fullname: 'Lou Ng' })
  })

  test('$metadata and change tracking cover the new tables; security roles carry per-table privileges', async () => {
    const meta = (await app.get('$metadata?annotations=true')).text
    expect(meta).toContain('<EntityType Name="lead"><Key><PropertyRef Name="leadid" /></Key>')
    expect(meta).toContain('<EntityType Name="opportunity"><Key><PropertyRef Name="opportunityid" /></Key>')
    expect(meta).toContain('NavigationProperty Name="regardingobjectid_lead_email"')
    expect(meta).toContain('NavigationProperty Name="regardingobjectid_opportunity_task"')
    expect(meta).toContain('NavigationProperty Name="customerid_account"')
    expect(meta).toContain('NavigationProperty Name="partyid_lead"')
    expect(meta).toMatch(/<EntitySet Name="leads" EntityType="mscrm.lead"><Annotation Term="Org.OData.Capabilities.V1.ChangeTracking">/)
    expect(meta).toContain('<Action Name="WinOpportunity">')
    const privs = (await app.get(`systemusers(${alice.systemuserid})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()`)).json.RolePrivileges as Array<{ PrivilegeName: string; Depth: string }>
    expect(privs.find((p) => p.PrivilegeName === 'prvReadLead')?.Depth).toBe('Basic')
    expect(privs.find((p) => p.PrivilegeName === 'prvWriteOpportunity')?.Depth).toBe('Basic')
    // a role without lead privileges: 403 naming the privilege
    emu.admin.upsertRole({ name: 'Contacts only', privileges: { prvReadContact: 'Global' } })
    const dan = emu.admin.addUser({ email: 'dan@contoso.test', roles: ['Contacts only'] })
    const asDan = app.as({ MSCRMCallerID: dan.systemuserid })
    const denied = await asDan.get('leads')
    expect(denied.status).toBe(403)
    expect(denied.json.error.message).toContain('prvReadLead')
    // change tracking (application user = organization-level read)
    const first = await app.get('leads?$select=fullname', { Prefer: 'odata.track-changes' })
    const delta = first.json['@odata.deltaLink'] as string
    const lead = idFrom(await app.post('leads', { lastname: 'Tracked' }))
    const next = await app.get(delta)
    expect(next.json.value.map((r: { leadid: string }) => r.leadid)).toEqual([lead])
  })
})

describe('read-only columns (IsValidForCreate / IsValidForUpdate false)', () => {
  test('createdon, modifiedon, versionnumber, fullname, senton, createdby are refused on create and update', async () => {
    for (const [set, body] of [
      ['contacts', { lastname: 'X', createdon: '2020-01-01T00:00:00Z' }],
      ['contacts', { lastname: 'X', fullname: 'Forced Name' }],
      ['contacts', { lastname: 'X', versionnumber: 5 }],
      ['emails', { subject: 'x', senton: '2020-01-01T00:00:00Z' }],
      ['emails', { subject: 'x', attachmentcount: 2 }],
      ['tasks', { subject: 'x', activitytypecode: 'task' }],
      ['leads', { lastname: 'X', 'createdby@odata.bind': `/systemusers(${alice.systemuserid})` }],
    ] as const) {
      const r = await app.post(set, body)
      expect(r.status, `${set} ${JSON.stringify(body)}`).toBe(400)
      expect(r.json.error.code).toBe('0x80048d19')
      expect(r.json.error.message).toMatch(/is not valid for create \(IsValidForCreate is false\)/)
    }
    const c = idFrom(await app.post('contacts', { lastname: 'Y' }))
    const upd = await app.patch(`contacts(${c})`, { modifiedon: '2020-01-01T00:00:00Z' })
    expect(upd.status).toBe(400)
    expect(upd.json.error.message).toContain("The property 'modifiedon' of 'contact' is not valid for update")
    expect((await app.patch(`contacts(${c})`, { firstname: 'Ok' })).status).toBe(204)
  })

  test('inreplyto, conversationindex, correlationmethod: accepted when the e-mail is delivered (create), refused on update; regardingobjecttypecode is derived', async () => {
    const res = await app.post('emails', { subject: 'Re: hi', messageid: '<b@x>', inreplyto: '<a@x>', conversationindex: 'AQHX', correlationmethod: 3, regardingobjecttypecode: 'account' }, { Prefer: 'return=representation' })
    expect(res.status).toBe(201)
    expect(res.json).toMatchObject({ inreplyto: '<a@x>', conversationindex: 'AQHX', correlationmethod: 3, regardingobjecttypecode: null })
    for (const body of [{ inreplyto: '<c@x>' }, { correlationmethod: 4 }, { conversationindex: 'X' }]) {
      const r = await app.patch(`emails(${res.json.activityid})`, body)
      expect(r.status).toBe(400)
      expect(r.json.error.message).toContain('is not valid for update')
    }
    expect((await app.patch(`emails(${res.json.activityid})`, { messageid: '<b2@x>', trackingtoken: 'CRM:0001001' })).status).toBe(204) // writable
    const attr = (await app.get("EntityDefinitions(LogicalName='email')/Attributes(LogicalName='inreplyto')?$select=IsValidForCreate,IsValidForUpdate")).json
    expect(attr).toMatchObject({ IsValidForCreate: true, IsValidForUpdate: false })
    const created = (await app.get("EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='createdon')")).json
    expect(created).toMatchObject({ IsValidForCreate: false, IsValidForUpdate: false, CanBeSecuredForRead: false })
  })
})

describe('column security configured through the Web API', () => {
  test('IsSecured + fieldsecurityprofiles + fieldpermissions (0/4) + systemuserprofiles_association', async () => {
    const contact = idFrom(await app.post('contacts', { lastname: 'Secret', governmentid: '123-45-6789', 'ownerid@odata.bind': `/systemusers(${alice.systemuserid})` }))
    // a field permission needs a secured column
    const profile = idFrom(await app.post('fieldsecurityprofiles', { name: 'HR readers', description: 'read government ids' }))
    const early = await app.post('fieldpermissions', { entityname: 'contact', attributelogicalname: 'governmentid', canread: 4, 'fieldsecurityprofileid@odata.bind': `/fieldsecurityprofiles(${profile})` })
    expect(early.status).toBe(400)
    expect(early.json.error.code).toBe('0x8004f508')
    // secure the column (UpdateAttribute): only a System Administrator may
    const url = "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='governmentid')"
    expect((await asAlice.request('PUT', url, { body: { '@odata.type': 'Microsoft.Dynamics.CRM.StringAttributeMetadata', LogicalName: 'governmentid', IsSecured: true } })).status).toBe(403)
    expect((await app.request('PUT', url, { body: { '@odata.type': 'Microsoft.Dynamics.CRM.StringAttributeMetadata', LogicalName: 'governmentid', IsSecured: true }, headers: { 'MSCRM.MergeLabels': 'true' } })).status).toBe(204)
    expect((await app.get(`${url}/IsSecured`)).json.value).toBe(true)
    const secured = (await app.get("EntityDefinitions(LogicalName='contact')/Attributes?$select=LogicalName&$filter=IsSecured eq true")).json.value
    expect(secured).toEqual([{ LogicalName: 'governmentid' }])
    // the System Administrator profile lists every secured column
    const admin = (await app.get("fieldpermissions?$filter=_fieldsecurityprofileid_value eq 572329c1-a042-4e22-be47-367c6374ea45&$select=entityname,attributelogicalname,canread")).json.value
    expect(admin).toEqual([expect.objectContaining({ entityname: 'contact', attributelogicalname: 'governmentid', canread: 4 })])
    // Alice cannot read (null) nor write (403 with the documented code)
    expect((await asAlice.get(`contacts(${contact})?$select=governmentid,lastname`)).json).toMatchObject({ governmentid: null, lastname: 'Secret' })
    const write = await asAlice.patch(`contacts(${contact})`, { governmentid: '999' })
    expect(write.status).toBe(403)
    expect(write.json.error.code).toBe('0x8004f507')
    expect(write.json.error.message).toContain("The user doesn't have AttributePrivilegeUpdate and not granted shared access for a secured attribute during update operation")
    const create = await asAlice.post('contacts', { lastname: 'New', governmentid: '1' })
    expect(create.status).toBe(403)
    expect(create.json.error.code).toBe('0x8004f502')
    // permission rows: read allowed (4), update not allowed (0); option set validated
    expect((await app.post('fieldpermissions', { entityname: 'contact', attributelogicalname: 'governmentid', canread: 1, 'fieldsecurityprofileid@odata.bind': `/fieldsecurityprofiles(${profile})` })).status).toBe(400)
    const perm = idFrom(await app.post('fieldpermissions', { entityname: 'contact', attributelogicalname: 'governmentid', canread: 4, cancreate: 0, canupdate: 0, 'fieldsecurityprofileid@odata.bind': `/fieldsecurityprofiles(${profile})` }))
    // associate Alice with the profile
    const assoc = await app.post(`fieldsecurityprofiles(${profile})/systemuserprofiles_association/$ref`, { '@odata.id': `${emu.apiUrl}/systemusers(${alice.systemuserid})` })
    expect(assoc.status).toBe(204)
    expect((await app.get(`fieldsecurityprofiles(${profile})/systemuserprofiles_association?$select=fullname`)).json.value).toHaveLength(1)
    expect((await app.get(`systemuserprofilescollection?$filter=systemuserid eq ${alice.systemuserid}`)).json.value).toHaveLength(1)
    expect((await asAlice.get(`contacts(${contact})?$select=governmentid`)).json.governmentid).toBe('123-45-6789')
    expect((await asAlice.patch(`contacts(${contact})`, { governmentid: '999' })).status).toBe(403)
    expect((await asBob.get(`systemusers(${bob.systemuserid})/Microsoft.Dynamics.CRM.RetrieveUserFieldPermissions()`)).json.FieldPermissions).toEqual([
      { EntityName: 'contact', AttributeLogicalName: 'governmentid', CanRead: false, CanCreate: false, CanUpdate: false },
    ])
    // grant update → the write goes through
    expect((await app.patch(`fieldpermissions(${perm})`, { canupdate: 4 })).status).toBe(204)
    expect((await asAlice.patch(`contacts(${contact})`, { governmentid: '999' })).status).toBe(204)
    // a non-admin cannot manage profiles; the intersect table is read-only
    expect((await asAlice.post(`fieldsecurityprofiles(${profile})/systemuserprofiles_association/$ref`, { '@odata.id': `systemusers(${bob.systemuserid})` })).status).toBe(403)
    expect((await app.post('systemuserprofilescollection', { systemuserid: bob.systemuserid })).status).toBe(405)
    // disassociate (from the user side) → back to null
    expect((await app.del(`systemusers(${alice.systemuserid})/systemuserprofiles_association(${profile})/$ref`)).status).toBe(204)
    expect((await asAlice.get(`contacts(${contact})?$select=governmentid`)).json.governmentid).toBeNull()
    // the admin shortcut is a thin wrapper over the same rows
    const wrapped = emu.admin.addFieldSecurityProfile({ name: 'Wrapped', members: [bob.systemuserid], permissions: [{ table: 'contact', column: 'governmentid', canRead: true }] })
    expect((await app.get(`fieldpermissions?$filter=_fieldsecurityprofileid_value eq ${wrapped}&$select=canread,canupdate`)).json.value).toEqual([expect.objectContaining({ canread: 4, canupdate: 0 })])
    expect((await app.get(`fieldsecurityprofiles(${wrapped})/systemuserprofiles_association?$select=systemuserid`)).json.value).toEqual([expect.objectContaining({ systemuserid: bob.systemuserid })])
    // deleting a profile removes its permissions; the System Administrator profile cannot be deleted
    expect((await app.del(`fieldsecurityprofiles(${profile})`)).status).toBe(204)
    expect((await app.get(`fieldpermissions(${perm})`)).status).toBe(404)
    expect((await app.del('fieldsecurityprofiles(572329c1-a042-4e22-be47-367c6374ea45)')).status).toBe(400)
    // a primary key or platform column cannot be secured
    expect((await app.request('PUT', "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='createdon')", { body: { IsSecured: true } })).status).toBe(400)
  })
})

describe('hostile input on the new routes', () => {
  test('bad bodies, references and paths get Dataverse-style 4xx (never a 500)', async () => {
    const profile = idFrom(await app.post('fieldsecurityprofiles', { name: 'Hostile' }))
    const cases: Array<[string, string, string | undefined]> = [
      ['POST', `fieldsecurityprofiles(${profile})/systemuserprofiles_association/$ref`, 'null'],
      ['POST', `fieldsecurityprofiles(${profile})/systemuserprofiles_association/$ref`, '[1,2]'],
      ['POST', `fieldsecurityprofiles(${profile})/systemuserprofiles_association/$ref`, '{"@odata.id":"contacts(00000000-0000-0000-0000-000000000001)"}'],
      ['POST', `fieldsecurityprofiles(${profile})/systemuserprofiles_association/$ref`, '{"@odata.id":42}'],
      ['DELETE', `fieldsecurityprofiles(${profile})/systemuserprofiles_association/$ref`, undefined],
      ['DELETE', `fieldsecurityprofiles(${profile})/systemuserprofiles_association(${alice.systemuserid})/$ref`, undefined],
      ['PATCH', `fieldsecurityprofiles(${profile})/systemuserprofiles_association`, '{}'],
      ['PUT', "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='jobtitle')", 'null'],
      ['PUT', "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='jobtitle')", '{"IsSecured":"yes"}'],
      ['PUT', "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='jobtitle')", '{"IsSecured":true,"LogicalName":"lastname"}'],
      ['GET', "EntityDefinitions(LogicalName='nosuch')/Attributes", undefined],
      ['GET', "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='nosuch')", undefined],
      ['GET', "EntityDefinitions(LogicalName='contact')/Attributes?$filter=LogicalName eq 'x'", undefined],
      ['GET', "EntityDefinitions(LogicalName='contact')/Attributes?$select=Nope", undefined],
      ['GET', 'EntityDefinitions', undefined],
      ['POST', 'WinOpportunity', 'null'],
      ['POST', 'WinOpportunity', '{"OpportunityClose":{"opportunityid@odata.bind":"/opportunities(not-a-guid)"}}'],
      ['GET', 'WinOpportunity', undefined],
      ['POST', 'fieldpermissions', '{"entityname":"nosuch","attributelogicalname":"x"}'],
      ['POST', 'fieldpermissions', '{"entityname":"contact","attributelogicalname":"jobtitle"}'],
      ['POST', 'leads', '{"statecode":7}'],
      ['POST', 'leads', '{"leadsourcecode":99}'],
    ]
    for (const [method, path, raw] of cases) {
      const r = await app.request(method, path, raw === undefined ? {} : { raw, headers: { 'Content-Type': 'application/json' } })
      expect(r.status, `${method} ${path} ${raw ?? ''} → ${r.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400)
      expect(r.status, `${method} ${path}`).toBeLessThan(502)
      expect(r.status, `${method} ${path}`).not.toBe(500)
      expect(typeof r.json?.error?.code, `${method} ${path}`).toBe('string')
    }
  })
})

