import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { startDataverseEmulator } from './index.js'
import { SnapshotFile } from './store/persist.js'
import { apiClient, idFrom } from './test-support.js'

const dirs: string[] = []
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

test('--data DIR: rows, versions, change-tracking tokens and security survive a restart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dv-emu-'))
  dirs.push(dir)
  const first = await startDataverseEmulator({ dataDir: dir, users: ['alice@contoso.test'] })
  const c1 = await apiClient(first)
  const id = idFrom(await c1.post('contacts', { lastname: 'Persisted', emailaddress1: 'p@x.test' }))
  const gone = idFrom(await c1.post('contacts', { lastname: 'ToDelete' }))
  const delta = (await c1.get('contacts?$select=lastname', { Prefer: 'odata.track-changes' })).json['@odata.deltaLink'] as string
  await c1.del(`contacts(${gone})`)
  first.admin.secureColumn('contact', 'jobtitle')
  const etag = (await c1.get(`contacts(${id})`)).json['@odata.etag'] as string
  await first.close()
  expect(await readdir(dir)).toEqual(['dataverse-emulator.json'])

  const second = await startDataverseEmulator({ dataDir: dir, users: ['alice@contoso.test'] })
  expect(second.users[0]?.systemuserid).toBe(first.users[0]?.systemuserid)
  const c2 = await apiClient(second)
  const row = await c2.get(`contacts(${id})`)
  expect(row.json.lastname).toBe('Persisted')
  expect(row.json['@odata.etag']).toBe(etag)
  expect((await c2.get("contacts(emailaddress1='p@x.test')?$select=lastname")).json.lastname).toBe('Persisted')
  const url = new URL(delta)
  const r = await c2.get(`contacts?${url.searchParams.toString()}`)
  expect(r.status).toBe(200)
  expect(r.json.value).toEqual([expect.objectContaining({ id: gone, reason: 'deleted' })])
  const created = await c2.post('contacts', { lastname: 'After' }, { Prefer: 'return=representation' })
  expect(Number(/\d+/.exec(created.json['@odata.etag'])?.[0])).toBeGreaterThan(Number(/\d+/.exec(etag)?.[0]))
  const asAlice = c2.as({ CallerObjectId: second.users[0]!.azureactivedirectoryobjectid })
  const perms = await asAlice.get(`systemusers(${second.users[0]!.systemuserid})/Microsoft.Dynamics.CRM.RetrieveUserFieldPermissions()`)
  expect(perms.json.FieldPermissions).toEqual([expect.objectContaining({ AttributeLogicalName: 'jobtitle', CanRead: false })])
  await second.close()
})

test('an unusable --data path fails start-up clearly; failed background writes surface on flush, not as crashes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dv-emu-'))
  dirs.push(dir)
  const blocker = join(dir, 'not-a-dir')
  await writeFile(blocker, 'x')
  await expect(startDataverseEmulator({ dataDir: blocker })).rejects.toThrow(/ENOTDIR/)

  const file = new SnapshotFile(join(blocker, 'sub'), () => ({ a: 1 }), 1)
  file.schedule()
  for (let i = 0; i < 200 && file.lastError === null; i++) await new Promise((r) => setTimeout(r, 5))
  expect(file.lastError).not.toBeNull()
  await expect(file.flush()).rejects.toThrow()
})
