import { expect, test } from 'vitest'
// The block below is the README "Embedding" example, verbatim.
// --- README START ---
import { startDataverseEmulator } from '@concord/emulator-dataverse'

async function example(): Promise<{ fullname: string; changes: number }> {
  const emu = await startDataverseEmulator({ users: ['alice@contoso.test'] })
  try {
    const token = await emu.getToken() // or POST grant_type=client_credentials to emu.tokenUrl
    const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }
    const alice = emu.users[0]!

    // create a contact as Alice (impersonation via CallerObjectId)
    const created = await fetch(`${emu.apiUrl}/contacts`, {
      method: 'POST',
      headers: { ...headers, CallerObjectId: alice.azureactivedirectoryobjectid, Prefer: 'return=representation' },
      body: JSON.stringify({ firstname: 'Ann', lastname: 'Lee', emailaddress1: 'ann@example.test' }),
    })
    const contact = (await created.json()) as { contactid: string; fullname: string }

    // start change tracking, change something, read the delta
    const first = await fetch(`${emu.apiUrl}/contacts?$select=fullname`, { headers: { ...headers, Prefer: 'odata.track-changes' } })
    const { '@odata.deltaLink': deltaLink } = (await first.json()) as { '@odata.deltaLink': string }
    await fetch(`${emu.apiUrl}/contacts(${contact.contactid})`, { method: 'PATCH', headers, body: JSON.stringify({ jobtitle: 'CTO' }) })
    const delta = (await (await fetch(deltaLink, { headers })).json()) as { value: unknown[] }

    return { fullname: contact.fullname, changes: delta.value.length }
  } finally {
    await emu.close()
  }
}
// --- README END ---

test('README embedding example runs', async () => {
  expect(await example()).toEqual({ fullname: 'Ann Lee', changes: 1 })
})
