import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startDataverseEmulator, type DataverseEmulator, type SeededUser } from './index.js'
import { apiClient, idFrom, type ApiClient } from './test-support.js'

let emu: DataverseEmulator
let app: ApiClient
let alice: SeededUser
let bob: SeededUser
let carol: SeededUser
let asAlice: ApiClient
let asBob: ApiClient
let asCarol: ApiClient
let aliceContact: string
let bobContact: string

beforeAll(async () => {
  emu = await startDataverseEmulator({ users: ['alice@contoso.test', 'bob@contoso.test', 'carol@contoso.test'] })
  ;[alice, bob, carol] = emu.users as [SeededUser, SeededUser, SeededUser]
  app = await apiClient(emu)
  asAlice = app.as({ CallerObjectId: alice.azureactivedirectoryobjectid })
  asBob = app.as({ MSCRMCallerID: bob.systemuserid })
  asCarol = app.as({ CallerObjectId: carol.azureactivedirectoryobjectid })
  aliceContact = idFrom(await app.post('contacts', { lastname: 'OwnedByAlice', jobtitle: 'Engineer', 'ownerid@odata.bind': `/systemusers(${alice.systemuserid})` }))
  bobContact = idFrom(await app.post('contacts', { lastname: 'OwnedByBob', jobtitle: 'Manager', 'ownerid@odata.bind': `/systemusers(${bob.systemuserid})` }))
})
afterAll(async () => {
  await emu.close()
})

describe('impersonation', () => {
  test('CallerObjectId and MSCRMCallerID switch the effective user', async () => {
    expect((await asAlice.get('WhoAmI')).json.UserId).toBe(alice.systemuserid)
    expect((await asBob.get('WhoAmI')).json.UserId).toBe(bob.systemuserid)
    const unknown = await app.get('WhoAmI', { CallerObjectId: '11111111-2222-3333-4444-555555555555' })
    expect(unknown.status).toBe(404)
    const bad = await app.get('WhoAmI', { CallerObjectId: 'not-a-guid' })
    expect(bad.status).toBe(400)
    const created = await asAlice.post('contacts', { lastname: 'AliceMade' }, { Prefer: 'return=representation' })
    expect(created.json._ownerid_value).toBe(alice.systemuserid)
    expect(created.json._createdby_value).toBe(alice.systemuserid)
  })
})

describe('security roles and record ownership', () => {
  test('user-depth read: a Basic User sees only rows they own', async () => {
    const list = await asAlice.get('contacts?$select=lastname')
    expect(list.status).toBe(200)
    const names = list.json.value.map((v: { lastname: string }) => v.lastname)
    expect(names).toContain('OwnedByAlice')
    expect(names).not.toContain('OwnedByBob')
    const other = await asAlice.get(`contacts(${bobContact})`)
    expect(other.status).toBe(403)
    expect(other.json.error.code).toBe('0x80040220')
    expect(other.json.error.message).toContain('prvReadContact')
    expect((await asAlice.patch(`contacts(${bobContact})`, { firstname: 'x' })).status).toBe(403)
    expect((await asAlice.patch(`contacts(${aliceContact})`, { firstname: 'ok' })).status).toBe(204)
  })

  test('no read privilege on a table → 403 for queries and reads', async () => {
    await fetch(`${emu.url}/_emulator/roles`, {
      method: 'POST',
      body: JSON.stringify({ name: 'Contacts Only', privileges: { prvReadContact: 'Global', prvWriteContact: 'User' } }),
    })
    emu.admin.assignRoles(carol.systemuserid, ['Contacts Only'])
    const accounts = await asCarol.get('accounts')
    expect(accounts.status).toBe(403)
    expect(accounts.json.error.message).toContain('prvReadAccount')
    const contacts = await asCarol.get('contacts?$select=lastname')
    expect(contacts.json.value.map((v: { lastname: string }) => v.lastname)).toEqual(expect.arrayContaining(['OwnedByAlice', 'OwnedByBob']))
    expect((await asCarol.patch(`contacts(${bobContact})`, { firstname: 'x' })).status).toBe(403)
    expect((await asCarol.post('contacts', { lastname: 'x' })).status).toBe(403)
  })

  test('sharing with GrantAccess / ModifyAccess / RevokeAccess', async () => {
    const grant = (mask: string, action = 'GrantAccess') =>
      asBob.post(action, {
        Target: { '@odata.type': 'Microsoft.Dynamics.CRM.contact', contactid: bobContact },
        PrincipalAccess: { Principal: { '@odata.type': 'Microsoft.Dynamics.CRM.systemuser', systemuserid: alice.systemuserid }, AccessMask: mask },
      })
    expect((await grant('ReadAccess')).status).toBe(204)
    expect((await asAlice.get(`contacts(${bobContact})?$select=lastname`)).json.lastname).toBe('OwnedByBob')
    expect((await asAlice.get('contacts?$select=lastname')).json.value.map((v: { lastname: string }) => v.lastname)).toContain('OwnedByBob')
    expect((await asAlice.patch(`contacts(${bobContact})`, { firstname: 'x' })).status).toBe(403)
    expect((await grant('ReadAccess, WriteAccess')).status).toBe(204)
    expect((await asAlice.patch(`contacts(${bobContact})`, { firstname: 'shared' })).status).toBe(204)
    // alice cannot share bob's record further without ShareAccess
    const reshare = await asAlice.post('GrantAccess', {
      Target: { '@odata.type': 'Microsoft.Dynamics.CRM.contact', contactid: bobContact },
      PrincipalAccess: { Principal: { systemuserid: carol.systemuserid }, AccessMask: 'ReadAccess' },
    })
    expect(reshare.status).toBe(403)
    const access = await asAlice.get(
      `systemusers(${alice.systemuserid})/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@tid)?@tid=${encodeURIComponent(JSON.stringify({ '@odata.id': `contacts(${bobContact})` }))}`,
    )
    expect(access.status).toBe(200)
    expect(access.json.AccessRights.split(', ')).toEqual(expect.arrayContaining(['ReadAccess', 'WriteAccess', 'CreateAccess']))
    expect(access.json.AccessRights).not.toContain('DeleteAccess')
    const revoke = await asBob.post('RevokeAccess', {
      Target: { '@odata.type': 'Microsoft.Dynamics.CRM.contact', contactid: bobContact },
      Revokee: { '@odata.type': 'Microsoft.Dynamics.CRM.systemuser', systemuserid: alice.systemuserid },
    })
    expect(revoke.status).toBe(204)
    expect((await asAlice.get(`contacts(${bobContact})`)).status).toBe(403)
    expect((await grant('BogusAccess')).status).toBe(400)
  })

  test('RetrieveUserPrivileges reports effective privileges with depth', async () => {
    const r = await asAlice.get(`systemusers(${alice.systemuserid})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()`)
    expect(r.status).toBe(200)
    const privs = new Map<string, string>(r.json.RolePrivileges.map((p: { PrivilegeName: string; Depth: string }) => [p.PrivilegeName, p.Depth]))
    expect(privs.get('prvReadContact')).toBe('Basic')
    expect(privs.get('prvSyncToOutlook')).toBe('Global')
    expect(privs.has('prvSendAsUser')).toBe(false)
    const admin = await app.get(`systemusers(${(await app.get('WhoAmI')).json.UserId})/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()`)
    const adminPrivs = admin.json.RolePrivileges.map((p: { PrivilegeName: string }) => p.PrivilegeName)
    expect(adminPrivs).toEqual(expect.arrayContaining(['prvSendAsUser', 'prvActOnBehalfOfAnotherUser', 'prvReadActivity']))
  })
})

describe('field (column) security', () => {
  beforeAll(() => {
    emu.admin.secureColumn('contact', 'jobtitle')
    emu.admin.addFieldSecurityProfile({
      name: 'HR readers',
      members: [alice.systemuserid],
      permissions: [{ table: 'contact', column: 'jobtitle', canRead: true, canUpdate: false, canCreate: false }],
    })
  })

  test('a secured column the caller cannot read comes back as null', async () => {
    await asBob.get('WhoAmI')
    const bobView = await asBob.get(`contacts(${bobContact})?$select=lastname,jobtitle`)
    expect(bobView.json.lastname).toBe('OwnedByBob')
    expect(bobView.json.jobtitle).toBeNull()
    const aliceView = await asAlice.get(`contacts(${aliceContact})?$select=jobtitle`)
    expect(aliceView.json.jobtitle).toBe('Engineer')
    const adminView = await app.get(`contacts(${bobContact})?$select=jobtitle`)
    expect(adminView.json.jobtitle).toBe('Manager')
  })

  test('writing a secured column without update permission → 403 AttributePermissionUpdateIsMissingDuringUpdate', async () => {
    const r = await asAlice.patch(`contacts(${aliceContact})`, { jobtitle: 'Boss' })
    expect(r.status).toBe(403)
    expect(r.json.error.message).toContain('AttributePermissionUpdateIsMissingDuringUpdate')
    const create = await asBob.post('contacts', { lastname: 'x', jobtitle: 'y' })
    expect(create.status).toBe(403)
    expect(create.json.error.message).toContain('AttributePrivilegeCreateIsMissing')
    expect((await app.patch(`contacts(${aliceContact})`, { jobtitle: 'Boss' })).status).toBe(204)
  })

  test('RetrieveUserFieldPermissions lists secured columns with the caller permissions', async () => {
    const r = await asBob.get(`systemusers(${bob.systemuserid})/Microsoft.Dynamics.CRM.RetrieveUserFieldPermissions()`)
    expect(r.json.FieldPermissions).toEqual([{ EntityName: 'contact', AttributeLogicalName: 'jobtitle', CanRead: false, CanCreate: false, CanUpdate: false }])
    const a = await asAlice.get(`systemusers(${alice.systemuserid})/Microsoft.Dynamics.CRM.RetrieveUserFieldPermissions()`)
    expect(a.json.FieldPermissions[0]).toMatchObject({ CanRead: true, CanUpdate: false })
  })

  test('systemuserroles_association lists a user\'s roles with the System Administrator role template', async () => {
    const appUser = (await app.get('WhoAmI')).json.UserId as string
    const admin = await app.get(`systemusers(${appUser})/systemuserroles_association?$select=name,_roletemplateid_value`)
    expect(admin.status).toBe(200)
    expect(admin.json.value).toEqual([{ name: 'System Administrator', _roletemplateid_value: '627090ff-40a3-4053-8790-584edc5be201' }])
    const basic = await app.get(`systemusers(${bob.systemuserid})/systemuserroles_association`)
    expect(basic.json.value.length).toBeGreaterThan(0)
    for (const r of basic.json.value) expect(r).toMatchObject({ roleid: expect.any(String), name: expect.any(String), _roletemplateid_value: null })
    expect((await app.get(`systemusers(${bob.systemuserid})/systemuserroles_association?$select=nope`)).status).toBe(400)
    expect((await app.get(`systemusers(${bob.systemuserid})/systemuserroles_association?$filter=name eq 'x'`)).status).toBe(400)
    expect((await app.post(`systemusers(${bob.systemuserid})/systemuserroles_association`, {})).status).toBe(405)
  })
})

describe('send email as user', () => {
  test('SendEmail sets Pending Send; sending as another user needs prvSendAsUser', async () => {
    const mine = await asAlice.post('emails', {
      subject: 'From alice',
      email_activity_parties: [
        { 'partyid_systemuser@odata.bind': `/systemusers(${alice.systemuserid})`, participationtypemask: 1 },
        { addressused: 'someone@outside.test', participationtypemask: 2 },
      ],
    })
    const id = idFrom(mine)
    const sent = await asAlice.post(`emails(${id})/Microsoft.Dynamics.CRM.SendEmail`, { IssueSend: true })
    expect(sent.status).toBe(200)
    expect(sent.json.Subject).toMatch(/^From alice CRM:\d{7}$/)
    const row = await asAlice.get(`emails(${id})?$select=statecode,statuscode,trackingtoken,directioncode`)
    expect(row.json).toMatchObject({ statecode: 1, statuscode: 6, directioncode: true })
    expect(row.json.trackingtoken).toMatch(/^CRM:\d{7}$/)

    const forged = await asAlice.post('emails', {
      subject: 'As bob',
      email_activity_parties: [{ 'partyid_systemuser@odata.bind': `/systemusers(${bob.systemuserid})`, participationtypemask: 1 }],
    })
    const denied = await asAlice.post(`emails(${idFrom(forged)})/Microsoft.Dynamics.CRM.SendEmail`, { IssueSend: true })
    expect(denied.status).toBe(403)
    expect(denied.json.error.message).toContain('prvSendAsUser')
  })
})
