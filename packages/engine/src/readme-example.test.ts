import { expect, test } from 'vitest'
import { twoReplicaExample } from '../examples/two-replicas.js'

test('the README example syncs both edits of one contact', async () => {
  const { crm, mailbox, report } = await twoReplicaExample()
  const expected = { givenName: 'Ann', surname: 'Lee-Smith', jobTitle: 'Head of Buying' }
  expect(crm).toEqual(expected)
  expect(mailbox).toEqual(expected)
  expect(report.pushed).toEqual({ crm: 1, mailbox: 1 })
})
