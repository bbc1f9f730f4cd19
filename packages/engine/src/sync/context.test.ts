import { describe, expect, test } from 'vitest'
import { PolicyMerge } from '../merge/policy-merge.js'
import { openMemoryStore } from '../store/open-memory.js'
import { sampleFields } from '../testing/sample-fields.js'
import { beforeFirstDeletePush, checkConvergence, createTwoReplicaWorld, syncUntilQuiet } from '../testing/world.js'
import type { PairContext } from './sync-pair.js'

const alice = { id: 'user-alice', addresses: ['alice@contoso.test'] }

async function world(config: unknown = {}, context: PairContext = { user: alice }) {
  const { store } = await openMemoryStore()
  let now = 1_000
  const w = createTwoReplicaWorld({ store, merge: new PolicyMerge(config), now: () => ++now })
  w.pair.setContext(context)
  return w
}

describe('the sync loop feeds the merge its context', () => {
  test('sync filters: only records the owner owns reach the mailbox; leaving the filter removes the mailbox copy only', async () => {
    const w = await world()
    const mine = w.crm.create('contact', { ...sampleFields('contact', 1), givenName: 'Mine' }, undefined, { ownerId: alice.id })
    w.crm.create('contact', { ...sampleFields('contact', 2), givenName: 'Theirs' }, undefined, { ownerId: 'user-bob' })
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords().map((r) => r.fields.givenName)).toEqual(['Mine'])

    w.crm.setMeta(mine, { ownerId: 'user-bob' }) // reassigned to Bob
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toEqual([])
    expect(w.crm.liveRecords()).toHaveLength(2) // the CRM record stays
    const [tombstone] = await w.pair.listTombstones()
    expect(tombstone?.provenance).toBe('left-filter')
  })

  test('only tracked mailbox items are brought to the CRM', async () => {
    const w = await world()
    w.mailbox.create('email', { ...sampleFields('email', 2), subject: 'private' })
    const tracked = w.mailbox.create('email', { ...sampleFields('email', 3), subject: 'deal' }, undefined, { tracked: true })
    await syncUntilQuiet(w)
    expect(w.crm.liveRecords().map((r) => r.fields.subject)).toEqual(['deal'])
    expect(w.mailbox.get(tracked)).toBeDefined()
  })

  test('without the sync privilege nothing syncs, and nothing is lost once it is granted', async () => {
    const w = await world({}, { user: alice, mask: { canSync: false, canSendFromCrm: false, canReadRecord: true } })
    w.crm.create('task', { ...sampleFields('task', 1) }, undefined, { ownerId: alice.id })
    const report = await w.pair.runCycle()
    expect(report.skipped).toMatch(/no sync privilege/)
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toEqual([])

    w.pair.setContext({ user: alice, mask: { canSync: true, canSendFromCrm: false, canReadRecord: true } })
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toHaveLength(1)
  })

  test('a field the owner cannot read is never written as null to either side', async () => {
    const mask = { canSync: true, canSendFromCrm: true, canReadRecord: true, fields: { jobTitle: { read: false, update: false } } }
    const w = await world({}, { user: alice, mask })
    // The CRM adapter reports a secured field as absent.
    const id = w.crm.create('contact', { givenName: 'Ann', surname: 'Lee' }, undefined, { ownerId: alice.id })
    await syncUntilQuiet(w)
    const copy = w.mailbox.liveRecords()[0]!
    w.mailbox.update(copy.nativeId, { jobTitle: 'Spy', surname: 'Lee-Smith' })
    await syncUntilQuiet(w)
    expect(w.crm.live(id).fields).toEqual({ givenName: 'Ann', surname: 'Lee-Smith' })
    expect('jobTitle' in w.crm.live(id).fields).toBe(false)
  })

  test('keep-both: a conflict is listed instead of written, and resolving it converges', async () => {
    const w = await world({ policies: { default: 'keep-both' } })
    const id = w.crm.create('appointment', { ...sampleFields('appointment', 1), location: 'Room 1' }, undefined, { ownerId: alice.id })
    await syncUntilQuiet(w)
    const copy = w.mailbox.liveRecords()[0]!
    w.crm.update(id, { location: 'Room 2' })
    w.mailbox.update(copy.nativeId, { location: 'Room 3' })
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toHaveLength(1) // no second invitation
    const [open] = await w.pair.listConflicts()
    expect(open?.conflicts).toEqual([expect.objectContaining({ field: 'location', crm: 'Room 2', mailbox: 'Room 3' })])
    await w.pair.resolveConflict(open!.concordId, 'location', 'mailbox')
    await syncUntilQuiet(w)
    expect(w.crm.live(id).fields.location).toBe('Room 3')
    expect(await w.pair.listConflicts()).toEqual([])
    expect((await checkConvergence(w)).problems).toEqual([])
  })
})

describe('lww with hybrid logical clocks', () => {
  test('the later edit wins, the winning clock is kept with the base, and a lagging clock is still ordered after it', async () => {
    const { store } = await openMemoryStore()
    let now = 10_000
    const w = createTwoReplicaWorld({ store, merge: new PolicyMerge({ policies: { default: 'lww' } }), now: () => now })
    const id = w.crm.create('task', { subject: 'Call', description: 'v0' })
    await syncUntilQuiet(w)
    const copy = w.mailbox.liveRecords()[0]!
    now = 20_000
    w.crm.update(id, { description: 'crm at 20s' })
    now = 30_000
    w.mailbox.update(copy.nativeId, { description: 'mailbox at 30s' })
    await syncUntilQuiet(w)
    expect(w.crm.live(id).fields.description).toBe('mailbox at 30s')
    const base = await store.getBase(w.pair.pairId, copy.concordId!)
    expect(base?.clocks?.description).toMatch(/^000000000030000-000000-mailbox$/)

    // Both edit again, but both remote clocks now lag behind the agreed clock (skew): each edit is
    // still ordered after the base, and the decision records clocks later than it.
    now = 5_000
    w.crm.update(id, { description: 'crm again' })
    w.mailbox.update(copy.nativeId, { description: 'mailbox again' })
    await syncUntilQuiet(w)
    const why = await w.pair.explain(copy.concordId!, 'description')
    const agreed = base?.clocks?.description ?? ''
    expect((why?.clocks?.crm ?? '') > agreed).toBe(true)
    expect((why?.clocks?.mailbox ?? '') > agreed).toBe(true)
    expect((await checkConvergence(w)).problems).toEqual([])
  })
})

test('a field the owner may read but not update is not pushed to the CRM, and the mailbox copy is brought back', async () => {
  const mask = { canSync: true, canSendFromCrm: true, canReadRecord: true, fields: { jobTitle: { read: true, update: false } } }
  const w = await world({}, { user: alice, mask })
  const id = w.crm.create('contact', { givenName: 'Ann', jobTitle: 'Buyer' }, undefined, { ownerId: alice.id })
  await syncUntilQuiet(w)
  const copy = w.mailbox.liveRecords()[0]!
  const crmWrites = w.crm.pushWrites
  w.mailbox.update(copy.nativeId, { jobTitle: 'CEO' })
  await syncUntilQuiet(w)
  expect(w.crm.live(id).fields.jobTitle).toBe('Buyer')
  expect(w.crm.pushWrites).toBe(crmWrites)
  expect(w.mailbox.live(copy.nativeId).fields.jobTitle).toBe('Buyer')
  expect((await checkConvergence(w)).problems).toEqual([])
})

describe('a refused delete is re-merged with what the first merge knew', () => {
  test('a CRM delete refused (412) because the mailbox copy was only touched still sees the deleted row\'s owner: the owner-only rule deletes the copy', async () => {
    const w = await world({ deletionRules: { itemTypeRules: true, contactCrmDelete: 'owner-only' } })
    const id = w.crm.create('contact', { givenName: 'Ann', surname: 'Lee' }, undefined, { ownerId: alice.id })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.remove(id)
    // Between our pull and our push, Exchange rewrites the copy without changing it: the delete's If-Match goes stale.
    const raced = beforeFirstDeletePush(w.mailboxAdapter, () => w.mailbox.touch(mailboxId))
    const report = await w.pair.runCycle()
    expect(raced()).toBe(true)
    expect(report.rejected.mailbox).toBe(1)
    await syncUntilQuiet(w)
    // Re-merged without the deleted row's metadata, the owner would be unknown and the copy kept, unlinked.
    expect(w.mailbox.liveRecords()).toEqual([])
    expect(w.crm.liveRecords()).toEqual([])
    expect((await checkConvergence(w)).problems).toEqual([])
  })
})
