import { expect, test } from 'vitest'
import { syncMailboxExample } from '../examples/sync-mailbox.js'

test('the README example syncs a contact each way through the emulator', async () => {
  const result = await syncMailboxExample()
  expect(result.contactsInMailbox).toBe(2)
  expect(result.crmRecords).toBe(2)
})
