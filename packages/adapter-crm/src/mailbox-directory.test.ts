import { expect, test } from 'vitest'
import { MailboxRowSchema, syncEligibility } from './mailbox-directory.js'

const USER = '11111111-1111-4111-8111-111111111111'
const QUEUE = '22222222-2222-4222-8222-222222222222'
/** A fully tested, approved user mailbox as Dataverse returns it. */
const wire = (over: Record<string, unknown> = {}) => ({
  '@odata.etag': 'W/"10"',
  mailboxid: '33333333-3333-4333-8333-333333333333',
  name: 'Alice',
  emailaddress: 'alice@contoso.test',
  emailrouteraccessapproval: 1,
  isemailaddressapprovedbyo365admin: true,
  enabledforincomingemail: true,
  enabledforoutgoingemail: true,
  enabledforact: true,
  incomingemailstatus: 1,
  outgoingemailstatus: 1,
  actstatus: 1,
  incomingemaildeliverymethod: 2,
  outgoingemaildeliverymethod: 2,
  actdeliverymethod: 1,
  testemailconfigurationscheduled: false,
  orgmarkedasprimaryforexchangesync: true,
  statecode: 0,
  statuscode: 1,
  _ownerid_value: USER,
  _regardingobjectid_value: USER,
  '_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname': 'systemuser',
  ...over,
})
const row = (over: Record<string, unknown> = {}) => MailboxRowSchema.parse(wire(over))
const EXO = { requireApproval: true, exchangeOnlineProfile: true }

test('a tested, approved user mailbox is eligible for every workload; missing columns default to not eligible', () => {
  expect(syncEligibility(row(), EXO)).toEqual({ incoming: true, outgoing: true, act: true, reasons: [] })
  const bare = MailboxRowSchema.parse({ '@odata.etag': 'W/"1"', mailboxid: '33333333-3333-4333-8333-333333333333', statecode: 0 })
  expect(syncEligibility(bare, { requireApproval: false, exchangeOnlineProfile: false })).toMatchObject({ incoming: false, outgoing: false, act: false })
})

test('approval: pending/rejected blocks everything when required; the Exchange Online profile always requires it plus the O365 admin flag', () => {
  for (const approval of [0, 2, 3]) {
    const e = syncEligibility(row({ emailrouteraccessapproval: approval }), { requireApproval: true, exchangeOnlineProfile: false })
    expect(e).toMatchObject({ incoming: false, outgoing: false, act: false })
  }
  expect(syncEligibility(row({ emailrouteraccessapproval: 2 }), { requireApproval: false, exchangeOnlineProfile: false }).incoming).toBe(true)
  expect(syncEligibility(row({ emailrouteraccessapproval: 2 }), { requireApproval: false, exchangeOnlineProfile: true }).incoming).toBe(false)
  const noAdmin = syncEligibility(row({ isemailaddressapprovedbyo365admin: false }), EXO)
  expect(noAdmin.incoming).toBe(false)
  expect(syncEligibility(row({ isemailaddressapprovedbyo365admin: false }), { requireApproval: true, exchangeOnlineProfile: false }).incoming).toBe(true)
})

test('per workload: enabled flag, server-side-sync delivery method and a Success test are each required', () => {
  expect(syncEligibility(row({ enabledforoutgoingemail: false }), EXO)).toMatchObject({ incoming: true, outgoing: false, act: true })
  expect(syncEligibility(row({ incomingemaildeliverymethod: 3 }), EXO)).toMatchObject({ incoming: false, outgoing: true })
  expect(syncEligibility(row({ actdeliverymethod: 0 }), EXO)).toMatchObject({ act: false })
  expect(syncEligibility(row({ actstatus: 2 }), EXO).reasons).toEqual(['act: actstatus is 2 (Failure), not 1 (Success): run Test & Enable'])
  expect(syncEligibility(row({ outgoingemailstatus: 0 }), EXO).outgoing).toBe(false)
  expect(syncEligibility(row({ statecode: 1 }), EXO)).toMatchObject({ incoming: false, outgoing: false, act: false })
})

test('queue mailboxes never sync appointments, contacts and tasks; act needs the primary organization', () => {
  const queue = row({ _regardingobjectid_value: QUEUE, '_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname': 'queue' })
  expect(queue.ownerId).toBeNull()
  expect(syncEligibility(queue, EXO)).toMatchObject({ incoming: true, outgoing: true, act: false })
  expect(syncEligibility(row({ orgmarkedasprimaryforexchangesync: false }), EXO)).toMatchObject({ incoming: true, act: false })
  expect(row().ownerId).toBe(USER)
})

test('bad options are a Validation error', () => {
  expect(() => syncEligibility(row(), { requireApproval: 'yes' } as never)).toThrow(/requireApproval/)
})
