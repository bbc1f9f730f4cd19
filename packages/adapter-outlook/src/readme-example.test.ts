import { expect, test } from 'vitest'
import { clientSyncExample } from '../examples/client-sync.js'

test('the README example syncs a contact to Outlook and a tracked task to the CRM over a WebSocket', async () => {
  expect(await clientSyncExample()).toEqual({ contactsInOutlook: 1, tasksInCrm: 1, designated: true })
})
