import type { NativeId } from '@concord/engine'
import { sampleFields } from '@concord/engine/testing'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { type TestClient, type TestServer, convergence, makeClient, startServer } from './test/fixtures.js'

let server: TestServer
let alice: TestClient
beforeEach(async () => {
  server = await startServer()
  alice = await makeClient(server.url, 'tok-alice', 'alice-laptop')
  await alice.client.start()
})
afterEach(async () => {
  await alice.client.stop()
  await server.close()
})

test('Track from the client creates the CRM activity at once; the next sync links it instead of duplicating', async () => {
  const email = await alice.replica.createItem('email', { ...sampleFields('email', 1), categories: [] })
  await alice.client.syncNow()
  expect(server.crm.remoteFor('alice').liveRecords()).toHaveLength(0) // untracked e-mail stays in Outlook
  const { crmId } = await alice.client.track(email.nativeId, { regarding: { table: 'account', id: 'acc-1', name: 'Contoso' } })
  const record = server.crm.remoteFor('alice').get(crmId as NativeId)
  expect(record?.fields.subject).toBe(email.fields.subject)
  expect(record?.fields.regarding).toEqual({ table: 'account', id: 'acc-1', name: 'Contoso' })
  expect((await alice.replica.getItem(email.nativeId))?.meta?.tracked).toBe(true)
  await alice.client.syncNow()
  await alice.client.syncNow()
  expect(server.crm.remoteFor('alice').liveRecords().filter((r) => r.kind === 'email')).toHaveLength(1)
  expect(await convergence(server, 'alice', 'alice-laptop', alice.replica)).toEqual([])
})

test('Set Regarding fills the regarding of a tracked record', async () => {
  const { crmId } = await alice.client.trackRecord({ kind: 'email', fields: sampleFields('email', 2) })
  await alice.client.setRegarding(crmId, { table: 'opportunity', id: 'opp-7' })
  expect(server.crm.remoteFor('alice').get(crmId as NativeId)?.fields.regarding).toEqual({ table: 'opportunity', id: 'opp-7' })
})

test('Stop tracking deletes the CRM copy only when the user owns it', async () => {
  const crm = server.crm.remoteFor('alice')
  const own = crm.create('task', sampleFields('task', 1), undefined, { ownerId: 'alice', tracked: true })
  const shared = crm.create('task', sampleFields('task', 2), undefined, { ownerId: 'carol', tracked: true })
  expect(await alice.client.stopTracking(own)).toEqual({ deleted: true })
  expect(crm.get(own)).toBeUndefined()
  expect(await alice.client.stopTracking(shared)).toEqual({ deleted: false })
  expect(crm.get(shared)?.meta?.tracked).toBe(false)
  await expect(alice.client.stopTracking('crm-alice-999')).rejects.toMatchObject({ code: 'not_found' })
})

test('add the sender of an e-mail as a CRM contact, once', async () => {
  const first = await alice.client.addContact({ address: 'dana@fabrikam.test', name: 'Dana Scully' })
  expect(first.created).toBe(true)
  expect(server.crm.remoteFor('alice').get(first.crmId as NativeId)?.fields).toEqual({ email1: 'dana@fabrikam.test', givenName: 'Dana', surname: 'Scully' })
  const again = await alice.client.addContact({ address: 'DANA@fabrikam.test' })
  expect(again).toEqual({ crmId: first.crmId, created: false })
  // the should-track check now knows the sender
  expect(await alice.client.shouldTrack({ from: { address: 'dana@fabrikam.test' }, to: [{ address: 'alice@contoso.test' }], cc: [], subject: 'Hi' })).toEqual({ track: true })
  expect(await alice.client.shouldTrack({ from: { address: 'eve@elsewhere.test' }, to: [], cc: [], subject: 'Hi' })).toEqual({ track: false })
})

test('lightweight mode: ids only, details on demand', async () => {
  const crm = server.crm.remoteFor('alice')
  const ids = [0, 1, 2].map((n) => crm.create('contact', sampleFields('contact', n), undefined, { ownerId: 'alice' }))
  expect((await alice.client.lookupIds('contact')).sort()).toEqual([...ids].sort())
  const [detail] = await alice.client.lookupDetails([ids[1]!])
  expect(detail).toEqual({ crmId: ids[1], kind: 'contact', fields: sampleFields('contact', 1) })
})
