import { asConcordId, asOpId, SyncError, type RemoteUpsert } from '@concord/engine'
import { pullAll } from '@concord/engine/testing'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { toCrmPrivilegeReport } from './index.js'
import { crmSampleFields, NO_SYNC_ROLE, startCrmWorld, type CrmWorld } from '../test/harness.js'

let w: CrmWorld
beforeEach(async () => {
  w = await startCrmWorld({ kinds: ['contact'] })
  // jobtitle is a secured column: Bob's profile may read and update it, Alice has no profile.
  w.emu.admin.secureColumn('contact', 'jobtitle')
  w.emu.admin.addFieldSecurityProfile({ name: 'Job titles', members: [w.bob.systemuserid], permissions: [{ table: 'contact', column: 'jobtitle', canRead: true, canCreate: true, canUpdate: true }] })
})
afterEach(async () => {
  await w.close()
})

const upserts = (changes: readonly { type: string }[]) => changes.filter((c): c is RemoteUpsert => c.type === 'upsert')
const guid = (nativeId: string) => nativeId.slice(nativeId.indexOf('(') + 1, -1)
/** Contact sample without the secured column (Alice may not create it). */
const sample = (n: number) => {
  const { jobTitle: _omit, ...rest } = crmSampleFields('contact', n)
  return rest
}

test('getOwnerMasks reports the sync and send privileges and the secured fields per kind', async () => {
  const alice = await w.adapter.getOwnerMasks()
  expect(alice).toMatchObject({ userId: w.alice.systemuserid, maySync: true, maySend: false })
  expect(alice.fields.contact).toEqual({ jobTitle: { read: false, create: false, update: false } })
  expect(alice.fields.task).toEqual({})
  const bob = await w.adapter.getOwnerMasks(w.bob.systemuserid)
  expect(bob.fields.contact.jobTitle).toEqual({ read: true, create: true, update: true })
  expect(toCrmPrivilegeReport(alice, 'contact')).toEqual({ hasSyncPrivilege: true, canSendFromCrm: false, canReadRecord: true, securedFields: { jobTitle: { canRead: false, canUpdate: false } } })
  w.emu.admin.upsertRole({ name: 'Sender', privileges: { prvSendAsUser: 'Global' } })
  w.emu.admin.assignRoles(w.alice.systemuserid, ['Concord Salesperson', 'Sender'])
  expect((await w.adapter.getOwnerMasks()).maySend).toBe(true)
})

test('a secured column the owner cannot read is reported ABSENT (never null); a reader sees it', async () => {
  const id = await w.createRemote('contact', { ...sample(1), jobTitle: 'Secret title' }, w.bob)
  const asAlice = upserts((await pullAll(w.adapter, null)).changes).find((c) => c.nativeId === id)!
  expect('jobTitle' in asAlice.fields).toBe(false)
  expect(asAlice.fields.givenName).toBe('Given1')
  const asBob = upserts((await pullAll(w.adapterFor(w.bob), null)).changes).find((c) => c.nativeId === id)!
  expect(asBob.fields.jobTitle).toBe('Secret title')
})

test('a write to a secured column the owner cannot update is not attempted: other fields are written, the column keeps its value', async () => {
  const id = await w.createRemote('contact', sample(1), w.alice)
  expect((await w.api('PATCH', `contacts(${guid(id)})`, { jobtitle: 'Secret title' })).status).toBe(200) // a privileged user fills it
  const listed = upserts((await pullAll(w.adapter, null)).changes).find((c) => c.nativeId === id)!
  const res = await w.adapter.push([
    { opId: asOpId('u'), type: 'update', concordId: asConcordId('k'), kind: 'contact', nativeId: id, ifMatch: listed.version, fields: { jobTitle: null, department: 'Support' } },
    { opId: asOpId('c'), type: 'create', concordId: asConcordId('new'), kind: 'contact', fields: { givenName: 'New', jobTitle: 'Would need create permission' } },
  ])
  expect(res.rejected).toEqual([])
  expect(res.applied[0]!.fields).not.toHaveProperty('jobTitle')
  expect(res.applied[0]!.fields?.department).toBe('Support')
  const row = (await w.api('GET', `contacts(${guid(id)})?$select=jobtitle,department`)).json
  expect(row).toMatchObject({ jobtitle: 'Secret title', department: 'Support' })
  const created = (await w.api('GET', `contacts(${guid(res.applied[1]!.nativeId!)})?$select=jobtitle,firstname`)).json
  expect(created).toMatchObject({ jobtitle: null, firstname: 'New' })
})

test('a user without the sync privilege: getOwnerMasks says so and pull refuses with a Forbidden SyncError', async () => {
  w.emu.admin.assignRoles(w.bob.systemuserid, [NO_SYNC_ROLE])
  const bob = w.adapterFor(w.bob)
  expect((await bob.getOwnerMasks()).maySync).toBe(false)
  const err = await bob.pull(null, { limit: 10 }).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(SyncError)
  expect((err as SyncError).code).toBe('Forbidden')
  expect((err as SyncError).message).toMatch(/sync privilege/)
})

test('per-record access: owned, readable but not owned, and not readable', async () => {
  const mine = await w.createRemote('contact', sample(1), w.alice)
  const bobs = await w.createRemote('contact', sample(2), w.bob)
  expect(await w.adapter.checkRecordAccess(mine)).toEqual({ mayRead: true, owned: true, ownerId: w.alice.systemuserid })
  expect(await w.adapter.checkRecordAccess(bobs)).toEqual({ mayRead: true, owned: false, ownerId: w.bob.systemuserid })
  // A user whose role reads only their own contacts cannot read Bob's.
  w.emu.admin.upsertRole({ name: 'Own only', privileges: { prvReadContact: 'Basic', prvSyncToOutlook: 'Global' } })
  w.emu.admin.assignRoles(w.alice.systemuserid, ['Own only'])
  expect(await w.adapter.checkRecordAccess(bobs)).toEqual({ mayRead: false, owned: false, ownerId: null })
})

test('impersonation: rows created through the adapter are owned by the mailbox owner', async () => {
  const res = await w.adapter.push([{ opId: asOpId('c'), type: 'create', concordId: asConcordId('own'), kind: 'contact', fields: { givenName: 'Mine' } }])
  expect((await w.adapter.checkRecordAccess(res.applied[0]!.nativeId!)).owned).toBe(true)
  expect((await w.adapterFor(w.bob).checkRecordAccess(res.applied[0]!.nativeId!)).owned).toBe(false)
})

test('record metadata for the engine sync filters: owner, attendees (system users), state', async () => {
  const w2 = await startCrmWorld({ kinds: ['contact', 'appointment'] })
  try {
    const contact = await w2.createRemote('contact', sample(1), w2.bob)
    const appt = await w2.createRemote('appointment', { subject: 'Review', organizer: { address: 'alice@contoso.test' }, requiredAttendees: [{ address: 'bob@contoso.test' }, { address: 'guest@x.test' }] }, w2.alice)
    await pullAll(w2.adapter, null)
    expect(await w2.adapter.recordMeta(contact)).toEqual({ ownerId: w2.bob.systemuserid, state: 'active' })
    expect(await w2.adapter.recordMeta(appt)).toEqual({ ownerId: w2.alice.systemuserid, state: 'scheduled', attendeeIds: [w2.alice.systemuserid, w2.bob.systemuserid] })
    // Not seen by a pull yet: read on demand.
    const fresh = w2.adapterFor(w2.bob)
    expect(await fresh.recordMeta(appt)).toMatchObject({ ownerId: w2.alice.systemuserid, attendeeIds: [w2.alice.systemuserid, w2.bob.systemuserid] })
  } finally {
    await w2.close()
  }
})
