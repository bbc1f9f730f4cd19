import { expect, test } from 'vitest'
// The block below is the README "Embedding" example, verbatim.
// --- README START ---
import { asConcordId, asOpId, asReplicaId } from '@concord/engine'
import { pullAll } from '@concord/engine/testing'
import { startDataverseEmulator } from '@concord/emulator-dataverse'
import { CrmAdapter } from '@concord/adapter-crm'

async function example(): Promise<{ maySync: boolean; listed: number; created: string }> {
  const emu = await startDataverseEmulator({ users: [{ email: 'alice@contoso.test', roles: ['System Administrator'] }] })
  try {
    const alice = emu.users[0]!
    const crm = new CrmAdapter(
      {
        orgUrl: emu.url,
        tokenUrl: emu.tokenUrl,
        clientId: emu.clientId,
        clientSecret: emu.clientSecret,
        impersonate: { callerObjectId: alice.azureactivedirectoryobjectid }, // security applies as Alice
      },
      { replicaId: asReplicaId('crm~alice') },
    )
    const masks = await crm.getOwnerMasks() // sync/send privileges, secured fields
    emu.admin.createRecord('contacts', { firstname: 'Ann', lastname: 'Lee' }, alice.systemuserid)
    const { changes } = await pullAll(crm, null) // change tracking over every table
    const pushed = await crm.push([
      { opId: asOpId('op-1'), type: 'create', concordId: asConcordId('c-1'), kind: 'contact', fields: { givenName: 'Bo', surname: 'Ng' } },
    ])
    return { maySync: masks.maySync, listed: changes.length, created: String(pushed.applied[0]?.nativeId) }
  } finally {
    await emu.close()
  }
}
// --- README END ---

test('README embedding example runs', async () => {
  const r = await example()
  expect(r.maySync).toBe(true)
  expect(r.listed).toBe(1)
  expect(r.created).toMatch(/^contacts\([0-9a-f-]{36}\)$/)
})
