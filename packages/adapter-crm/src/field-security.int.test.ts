import { asConcordId, asOpId, SyncError, type RemoteUpsert } from '@concord/engine'
import { pullAll } from '@concord/engine/testing'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { CrmAdapter } from './index.js'
import { SYSADMIN_FIELD_PROFILE_ID } from './field-security.js'
import { startCrmWorld, type CrmWorld } from '../test/harness.js'
import type { SeededUser } from '@concord/emulator-dataverse'

// Column security computed from documented Web API reads (field security profiles, field permissions,
// IsSecured column definitions, security roles) as the application user, against the emulator over HTTP.

let w: CrmWorld
let clock: number
/** Every request the adapters under test send: URL and whether it impersonated someone. */
let sent: Array<{ url: string; impersonated: boolean }>

const recordingFetch: typeof fetch = async (input, init) => {
  const headers = new Headers(init?.headers)
  sent.push({ url: String(input), impersonated: headers.has('CallerObjectId') || headers.has('MSCRMCallerID') })
  return fetch(input, init)
}

function adapterOf(user: SeededUser, ttlMs = 60_000): CrmAdapter {
  return new CrmAdapter(
    { orgUrl: w.emu.url, tokenUrl: w.emu.tokenUrl, clientId: w.emu.clientId, clientSecret: w.emu.clientSecret, impersonate: { callerObjectId: user.azureactivedirectoryobjectid }, kinds: ['contact'], fieldSecurityCacheMs: ttlMs },
    { replicaId: w.adapter.replicaId, fetch: recordingFetch, now: () => clock },
  )
}

/** A profile configured the Dataverse way (Web API rows), as an administrator would. */
async function createProfile(name: string, perm: { canread: number; cancreate: number; canupdate: number }): Promise<{ profileId: string; permissionId: string }> {
  const profile = await w.api('POST', 'fieldsecurityprofiles', { name })
  expect(profile.status).toBe(201)
  const profileId = profile.json.fieldsecurityprofileid as string
  const permission = await w.api('POST', 'fieldpermissions', {
    entityname: 'contact',
    attributelogicalname: 'jobtitle',
    ...perm,
    'fieldsecurityprofileid@odata.bind': `/fieldsecurityprofiles(${profileId})`,
  })
  expect(permission.status).toBe(201)
  return { profileId, permissionId: permission.json.fieldpermissionid as string }
}

async function addMember(profileId: string, user: SeededUser): Promise<void> {
  const res = await w.api('POST', `fieldsecurityprofiles(${profileId})/systemuserprofiles_association/$ref`, { '@odata.id': `${w.emu.apiUrl}/systemusers(${user.systemuserid})` })
  expect(res.status).toBe(204)
}

const upserts = (changes: readonly { type: string }[]) => changes.filter((c): c is RemoteUpsert => c.type === 'upsert')

beforeEach(async () => {
  w = await startCrmWorld({ kinds: ['contact'] })
  clock = 1_000_000
  sent = []
  // jobtitle is secured through the column definition (IsSecured), as in Dataverse.
  const secured = await w.api('PUT', `EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='jobtitle')`, {
    '@odata.type': 'Microsoft.Dynamics.CRM.StringAttributeMetadata',
    LogicalName: 'jobtitle',
    IsSecured: true,
  })
  expect(secured.status).toBe(204)
})
afterEach(async () => {
  await w.close()
})

test('a secured column is unreadable for a user without a profile, readable after joining a profile with canread', async () => {
  const id = await w.createRemote('contact', { givenName: 'Ann', surname: 'Lee' }, w.bob)
  expect((await w.api('PATCH', `contacts(${id.slice(9, -1)})`, { jobtitle: 'Secret title' })).status).toBe(200) // a privileged user fills it
  const alice = adapterOf(w.alice)
  const before = await alice.getOwnerMasks()
  expect(before.columns.contact).toEqual({ jobtitle: { read: false, create: false, update: false } })
  expect(before.fields.contact.jobTitle).toEqual({ read: false, create: false, update: false })
  expect('jobTitle' in upserts((await pullAll(alice, null)).changes).find((c) => c.nativeId === id)!.fields).toBe(false)

  const { profileId } = await createProfile('Job title readers', { canread: 4, cancreate: 0, canupdate: 0 })
  await addMember(profileId, w.alice)
  const after = await alice.getOwnerMasks(undefined, undefined, { refresh: true })
  expect(after.fields.contact.jobTitle).toEqual({ read: true, create: false, update: false })
  const fresh = adapterOf(w.alice)
  expect(upserts((await pullAll(fresh, null)).changes).find((c) => c.nativeId === id)!.fields.jobTitle).toBe('Secret title')

  // Only documented reads, and those run as the application user (never impersonated).
  expect(sent.some((r) => r.url.includes('RetrieveUserFieldPermissions'))).toBe(false)
  const securityReads = sent.filter((r) => /EntityDefinitions|systemuserprofiles_association|systemuserroles_association|fieldpermissions/.test(r.url))
  expect(securityReads.length).toBeGreaterThan(0)
  expect(securityReads.every((r) => !r.impersonated)).toBe(true)
  expect(securityReads.some((r) => decodeURIComponent(r.url).includes(`_fieldsecurityprofileid_value eq ${profileId}`) && decodeURIComponent(r.url).includes("entityname eq 'contact'"))).toBe(true)
})

test('a basic user cannot read the field security tables, which is why the adapter reads them as the application user', async () => {
  const alice = adapterOf(w.alice)
  expect((await alice.http.raw('GET', 'fieldpermissions?$select=entityname')).status).toBe(403)
  expect((await alice.appHttp.raw('GET', 'fieldpermissions?$select=entityname')).status).toBe(200)
})

test('permissions are the union over profiles; cached per user until the TTL runs out', async () => {
  const readers = await createProfile('Readers', { canread: 4, cancreate: 0, canupdate: 0 })
  const writers = await createProfile('Writers', { canread: 0, cancreate: 4, canupdate: 4 })
  await addMember(readers.profileId, w.alice)
  await addMember(writers.profileId, w.alice)
  await addMember(readers.profileId, w.bob)
  const alice = adapterOf(w.alice, 60_000)
  expect((await alice.getOwnerMasks()).fields.contact.jobTitle).toEqual({ read: true, create: true, update: true })
  expect((await alice.getOwnerMasks(w.bob.systemuserid)).fields.contact.jobTitle).toEqual({ read: true, create: false, update: false })
  expect(alice.fieldSecurity.reads).toBe(2) // one per user

  // Revoke read in the "Readers" profile: within the TTL the cached result stands, after it the change shows.
  expect((await w.api('PATCH', `fieldpermissions(${readers.permissionId})`, { canread: 0 })).status).toBeLessThan(300)
  clock += 59_999
  expect((await alice.getOwnerMasks()).fields.contact.jobTitle!.read).toBe(true)
  expect(alice.fieldSecurity.reads).toBe(2)
  clock += 1
  expect((await alice.getOwnerMasks()).fields.contact.jobTitle).toEqual({ read: false, create: true, update: true })
  expect(alice.fieldSecurity.reads).toBe(3)
  alice.fieldSecurity.invalidate(w.bob.systemuserid)
  expect((await alice.getOwnerMasks(w.bob.systemuserid)).fields.contact.jobTitle!.read).toBe(false)
  expect(alice.fieldSecurity.reads).toBe(4)
})

test('System Administrator: the built-in profile 572329c1-… and the System Administrator role give full access', async () => {
  const alice = adapterOf(w.alice, 0)
  await addMember(SYSADMIN_FIELD_PROFILE_ID, w.alice)
  expect((await alice.getOwnerMasks()).fields.contact.jobTitle).toEqual({ read: true, create: true, update: true })
  // Bob holds the System Administrator role but is no member of any profile.
  w.emu.admin.assignRoles(w.bob.systemuserid, ['System Administrator'])
  expect((await alice.getOwnerMasks(w.bob.systemuserid)).fields.contact.jobTitle).toEqual({ read: true, create: true, update: true })
  const bob = adapterOf(w.bob, 0)
  const id = await w.createRemote('contact', { givenName: 'Sam', jobTitle: 'Admin-visible' }, w.alice)
  expect(upserts((await pullAll(bob, null)).changes).find((c) => c.nativeId === id)!.fields.jobTitle).toBe('Admin-visible')
})

test('no secured column: no profile or permission reads at all', async () => {
  expect((await w.api('PUT', `EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='jobtitle')`, { LogicalName: 'jobtitle', IsSecured: false })).status).toBe(204)
  const alice = adapterOf(w.alice)
  const masks = await alice.getOwnerMasks()
  expect(masks.columns).toEqual({})
  expect(masks.fields.contact).toEqual({})
  expect(sent.some((r) => /systemuserprofiles_association|fieldpermissions/.test(r.url))).toBe(false)
})

test('a write the CRM refuses (permission revoked after the masks were read) is rejected and classified Forbidden', async () => {
  const { profileId, permissionId } = await createProfile('Editors', { canread: 4, cancreate: 4, canupdate: 4 })
  await addMember(profileId, w.alice)
  const alice = adapterOf(w.alice, 60_000)
  const id = await w.createRemote('contact', { givenName: 'Ann', jobTitle: 'Old' }, w.alice)
  const listed = upserts((await pullAll(alice, null)).changes).find((c) => c.nativeId === id)!
  expect(listed.fields.jobTitle).toBe('Old')
  // The administrator takes update away; the adapter's cached masks still allow it.
  expect((await w.api('PATCH', `fieldpermissions(${permissionId})`, { canupdate: 0 })).status).toBeLessThan(300)
  const res = await alice.push([{ opId: asOpId('u'), type: 'update', concordId: asConcordId('k'), kind: 'contact', nativeId: listed.nativeId, ifMatch: listed.version, fields: { jobTitle: 'New' } }])
  expect(res.applied).toEqual([])
  const error = res.rejected[0]!.error
  expect(error).toBeInstanceOf(SyncError)
  expect(error.code).toBe('Forbidden')
  expect(error.message).toMatch(/0x8004f507|AttributePermissionUpdateIsMissingDuringUpdate/)
  // After the TTL the masks say so, and the column is no longer written.
  clock += 60_000
  expect((await alice.getOwnerMasks()).fields.contact.jobTitle).toEqual({ read: true, create: true, update: false })
  const again = await alice.push([{ opId: asOpId('u2'), type: 'update', concordId: asConcordId('k'), kind: 'contact', nativeId: listed.nativeId, fields: { jobTitle: 'New', department: 'Sales' } }])
  expect(again.rejected).toEqual([])
  expect((await w.api('GET', `contacts(${listed.nativeId.slice(9, -1)})?$select=jobtitle,department`)).json).toMatchObject({ jobtitle: 'Old', department: 'Sales' })
})

test('masksMaxAgeMs: a frequent puller re-reads its privileges at a round start only once they are that old', async () => {
  await w.createRemote('contact', { givenName: 'Ann', surname: 'Lee' }, w.alice)
  const privilegeReads = () => sent.filter((r) => r.url.includes('RetrieveUserPrivileges')).length
  const feed = new CrmAdapter(
    { orgUrl: w.emu.url, tokenUrl: w.emu.tokenUrl, clientId: w.emu.clientId, clientSecret: w.emu.clientSecret, impersonate: { callerObjectId: w.alice.azureactivedirectoryobjectid }, kinds: ['contact'], masksMaxAgeMs: 60_000 },
    { replicaId: w.adapter.replicaId, fetch: recordingFetch, now: () => clock },
  )
  const first = await pullAll(feed, null)
  expect(privilegeReads()).toBe(1)
  const second = await pullAll(feed, first.cursor)
  await pullAll(feed, second.cursor)
  expect(privilegeReads()).toBe(1) // two more rounds within the minute: the masks are reused
  clock += 60_000
  await pullAll(feed, second.cursor)
  expect(privilegeReads()).toBe(2)
  // The default (0) reads them at every round, as before.
  const every = adapterOf(w.alice)
  const r1 = await pullAll(every, null)
  await pullAll(every, r1.cursor)
  expect(privilegeReads()).toBe(4)
})
