import { expect, test } from 'vitest'
import { syncMailboxExample } from '../examples/sync-mailbox.js'

test('the README example syncs a contact each way through the emulator', async () => {
  const result = await syncMailboxExample()
  expect(result.contactsInMailbox).toBe(2)
  expect(result.crmRecords).toBe(2)
})

test('the README server-side-sync example tests the mailbox and sends a CRM e-mail exactly once', async () => {
  const { sendCrmEmailExample } = await import('../examples/send-crm-email.js')
  expect(await sendCrmEmailExample()).toEqual({ access: 'success/success/success', first: 'sent', second: 'already-sent' })
})
