import { describe, expect, test } from 'vitest'
import { asConcordId } from '../ids.js'
import { openMemoryStore } from '../store/open-memory.js'
import { sampleFields } from '../testing/sample-fields.js'
import { checkConvergence, createTwoReplicaWorld, syncUntilQuiet } from '../testing/world.js'

async function syncedWorld(contacts: number) {
  const { store } = await openMemoryStore()
  const w = createTwoReplicaWorld({ store, pageLimit: 500 })
  for (let i = 0; i < contacts; i++) w.crm.create('contact', { ...sampleFields('contact', i), givenName: `P${i}` })
  await syncUntilQuiet(w)
  return w
}

describe('mass-deletion guard and quarantine', () => {
  test('a cycle deleting more than 20 % (and ≥ 50) of the items is held; nothing is deleted while it waits', async () => {
    const w = await syncedWorld(200)
    for (const record of w.mailbox.liveRecords().slice(0, 120)) w.mailbox.remove(record.nativeId) // someone empties a folder
    await syncUntilQuiet(w)
    expect(w.crm.liveRecords()).toHaveLength(200)
    const held = await w.pair.listQuarantine()
    expect(held).toHaveLength(1)
    expect(held[0]!.entries).toHaveLength(120)
    expect(held[0]!.reason).toMatch(/120 deletes/)
  })

  test('confirming the quarantine deletes the items; rejecting it restores the mailbox copies', async () => {
    const confirmed = await syncedWorld(100)
    for (const record of confirmed.mailbox.liveRecords().slice(0, 60)) confirmed.mailbox.remove(record.nativeId)
    await syncUntilQuiet(confirmed)
    const [q] = await confirmed.pair.listQuarantine()
    expect(await confirmed.pair.confirmQuarantine(q!.id)).toBe(60)
    await syncUntilQuiet(confirmed)
    expect(confirmed.crm.liveRecords()).toHaveLength(40)
    expect(await confirmed.pair.listQuarantine()).toEqual([])
    expect((await checkConvergence(confirmed)).converged).toBe(true)

    const rejected = await syncedWorld(100)
    for (const record of rejected.mailbox.liveRecords().slice(0, 60)) rejected.mailbox.remove(record.nativeId)
    await syncUntilQuiet(rejected)
    const [r] = await rejected.pair.listQuarantine()
    expect(await rejected.pair.rejectQuarantine(r!.id)).toBe(60)
    await syncUntilQuiet(rejected)
    expect(rejected.crm.liveRecords()).toHaveLength(100)
    expect(rejected.mailbox.liveRecords()).toHaveLength(100)
    expect((await checkConvergence(rejected)).converged).toBe(true)
  })

  test('small deletes pass the guard', async () => {
    const w = await syncedWorld(100)
    for (const record of w.mailbox.liveRecords().slice(0, 10)) w.mailbox.remove(record.nativeId)
    await syncUntilQuiet(w)
    expect(w.crm.liveRecords()).toHaveLength(90)
    expect(await w.pair.listQuarantine()).toEqual([])
  })
})

describe('tombstones and explain', () => {
  test('a delete made by sync can be undone from its tombstone', async () => {
    const w = await syncedWorld(3)
    const victim = w.mailbox.liveRecords()[0]!
    w.mailbox.remove(victim.nativeId)
    await syncUntilQuiet(w)
    expect(w.crm.liveRecords()).toHaveLength(2)
    const [tombstone] = await w.pair.listTombstones()
    expect(tombstone).toMatchObject({ concordId: victim.concordId, provenance: 'user-deleted', fields: victim.fields })
    await w.pair.restoreDeleted(tombstone!.concordId)
    await syncUntilQuiet(w)
    expect(w.crm.liveRecords()).toHaveLength(3)
    expect(w.mailbox.liveRecords()).toHaveLength(3)
    expect(w.crm.liveRecords().some((r) => r.fields.givenName === victim.fields.givenName)).toBe(true)
    expect((await checkConvergence(w)).converged).toBe(true)
  })

  test('listing tombstones waits for the cycle in flight (its prune runs in the pair queue), so that cycle\'s delete is listed', async () => {
    const w = await syncedWorld(3)
    const victim = w.mailbox.liveRecords()[0]!
    w.mailbox.remove(victim.nativeId)
    const cycle = w.pair.runCycle()
    const listed = await w.pair.listTombstones()
    await cycle
    expect(listed.map((t) => t.concordId)).toEqual([victim.concordId])
  })

  test('explain returns the decision behind a field after the fact', async () => {
    const w = await syncedWorld(1)
    const crmRecord = w.crm.liveRecords()[0]!
    const original = crmRecord.fields.jobTitle
    const mailboxRecord = w.mailbox.liveRecords()[0]!
    w.crm.update(crmRecord.nativeId, { jobTitle: 'CRM title' })
    w.mailbox.update(mailboxRecord.nativeId, { jobTitle: 'Mailbox title' })
    await syncUntilQuiet(w)
    const why = await w.pair.explain(mailboxRecord.concordId!, 'jobTitle')
    expect(why).toMatchObject({ field: 'jobTitle', crm: 'CRM title', mailbox: 'Mailbox title', value: 'CRM title' })
    expect(why!.base).toBe(original)
    expect(await w.pair.explain(asConcordId('nope'), 'jobTitle')).toBeUndefined()
  })

  test('a pair with explainRecords off merges the same, stores no explain record, and says so when asked', async () => {
    const { store } = await openMemoryStore()
    const w = createTwoReplicaWorld({ store, pageLimit: 500, explainRecords: false })
    const crmId = w.crm.create('contact', sampleFields('contact', 1))
    await syncUntilQuiet(w)
    const mailboxRecord = w.mailbox.liveRecords()[0]!
    w.crm.update(crmId, { jobTitle: 'CRM title' })
    w.mailbox.update(mailboxRecord.nativeId, { jobTitle: 'Mailbox title' })
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()[0]!.fields.jobTitle).toBe('CRM title')
    expect((await checkConvergence(w)).converged).toBe(true)
    expect(await store.getExplain(w.pair.pairId, mailboxRecord.concordId!)).toBeUndefined()
    await expect(w.pair.explain(mailboxRecord.concordId!, 'jobTitle')).rejects.toMatchObject({ code: 'Config', message: expect.stringMatching(/keeps no explain records/) })
  })
})
