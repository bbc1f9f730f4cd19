import { afterAll, beforeAll, expect, test } from 'vitest'
import { startDataverseEmulator, type DataverseEmulator } from './index.js'
import { apiClient, type ApiClient } from './test-support.js'

let emu: DataverseEmulator
let c: ApiClient
const ctl = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${emu.url}/_emulator/${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined }
}

beforeAll(async () => {
  emu = await startDataverseEmulator({ users: ['alice@contoso.test'] })
  c = await apiClient(emu)
})
afterAll(async () => {
  await emu.close()
})

test('control API: seed users and records, roles, shares, field security, retention, clock, reset', async () => {
  const seeded = await ctl('POST', 'users', { users: ['dan@contoso.test', { email: 'eve@contoso.test', roles: ['System Administrator'], mailbox: 'none' }] })
  expect(seeded.status).toBe(201)
  const [dan, eve] = seeded.json?.users as Array<{ systemuserid: string; azureactivedirectoryobjectid: string; mailboxid: string | null }>
  expect(dan?.mailboxid).toMatch(/^[0-9a-f-]{36}$/)
  expect(eve?.mailboxid).toBeNull()
  const again = await ctl('POST', 'users', { users: ['dan@contoso.test'] })
  expect((again.json?.users as Array<{ systemuserid: string }>)[0]?.systemuserid).toBe(dan?.systemuserid)

  const recs = await ctl('POST', 'records/contacts', { records: [{ lastname: 'Seed1' }, { lastname: 'Seed2', jobtitle: 'Secret' }], asUserId: eve?.systemuserid })
  expect(recs.status).toBe(201)
  const [, seed2] = recs.json?.ids as string[]
  const raw = await ctl('GET', `records/contacts?filter=${encodeURIComponent("lastname eq 'Seed2'")}`)
  expect((raw.json?.value as Array<{ id: string; lookups: { ownerid: { id: string } } }>)[0]?.lookups.ownerid.id).toBe(eve?.systemuserid)

  const asDan = c.as({ CallerObjectId: dan!.azureactivedirectoryobjectid })
  expect((await asDan.get(`contacts(${seed2})`)).status).toBe(403)
  expect((await ctl('POST', 'shares', { table: 'contact', id: seed2, userId: dan?.systemuserid, rights: ['Read'] })).status).toBe(204)
  expect((await asDan.get(`contacts(${seed2})?$select=jobtitle`)).json.jobtitle).toBe('Secret')
  expect((await ctl('POST', 'field-security/columns', { table: 'contact', column: 'jobtitle' })).status).toBe(204)
  expect((await asDan.get(`contacts(${seed2})?$select=jobtitle`)).json.jobtitle).toBeNull()
  expect((await ctl('POST', 'field-security/profiles', { name: 'p', members: [dan?.systemuserid], permissions: [{ table: 'contact', column: 'jobtitle', canRead: true }] })).status).toBe(201)
  expect((await asDan.get(`contacts(${seed2})?$select=jobtitle`)).json.jobtitle).toBe('Secret')

  expect((await ctl('PUT', `users/${dan?.systemuserid}/roles`, { roles: ['System Administrator'] })).status).toBe(204)
  expect((await asDan.get('contacts?$select=lastname', { Prefer: 'odata.track-changes' })).status).toBe(200)

  // retention 0 → next use of any token is expired
  const link = (await c.get('accounts', { Prefer: 'odata.track-changes' })).json['@odata.deltaLink'] as string
  expect((await ctl('POST', 'change-tracking/retention', { ms: 1000 })).status).toBe(204)
  expect((await ctl('POST', 'clock', { advanceMs: 5000 })).status).toBe(200)
  expect((await c.get(link)).status).toBe(410)

  // validation errors name the field
  const bad = await ctl('POST', 'roles', { name: 'x', privileges: { readContact: 'Global' } })
  expect(bad.status).toBe(400)
  expect(JSON.stringify(bad.json)).toContain('prvReadContact')
  expect((await ctl('POST', 'latency', { ms: 'fast' })).status).toBe(400)
  expect((await ctl('POST', 'records/nosuch', {})).status).toBe(404)

  const stats = await ctl('GET', 'stats')
  expect((stats.json?.rows as Record<string, number>).contacts).toBeGreaterThanOrEqual(2)

  const reset = await ctl('POST', 'reset')
  expect(reset.status).toBe(200)
  expect((reset.json?.users as unknown[]).length).toBe(1)
  const fresh = await apiClient(emu)
  expect((await fresh.get('contacts')).json.value).toEqual([])
  expect((await fresh.get(`systemusers?$select=internalemailaddress&$filter=internalemailaddress eq 'dan@contoso.test'`)).json.value).toEqual([])
})
