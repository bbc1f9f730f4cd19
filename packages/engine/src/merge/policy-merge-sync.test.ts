import { describe, expect, test } from 'vitest'
import { openMemoryStore } from '../store/open-memory.js'
import { checkConvergence, createTwoReplicaWorld, syncUntilQuiet } from '../testing/world.js'
import { PolicyMerge } from './policy-merge.js'

/** End to end through the real sync loop (SyncPair + memory replicas + store) with PolicyMerge plugged in. */
async function world(config: unknown) {
  const { store } = await openMemoryStore()
  let now = 1_000
  return createTwoReplicaWorld({ store, merge: new PolicyMerge(config), now: () => ++now })
}

describe('PolicyMerge through the sync loop', () => {
  test('text-merge: concurrent body edits on both sides are both kept', async () => {
    const w = await world({ policies: { appointment: { body: 'text-merge' } } })
    const id = w.crm.create('appointment', { subject: 'Review', body: 'Agenda: numbers. Then questions.' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.update(id, { body: 'Agenda: Q3 numbers. Then questions.' })
    w.mailbox.update(mailboxId, { body: 'Agenda: numbers. Then questions and lunch.' })
    await syncUntilQuiet(w)
    expect(w.crm.live(id).fields.body).toBe('Agenda: Q3 numbers. Then questions and lunch.')
    expect((await checkConvergence(w)).problems).toEqual([])
  })

  test('set-merge: category edits on both sides merge as sets', async () => {
    const w = await world({ directions: { task: { categories: 'both' } }, policies: { task: { categories: 'set-merge' } } })
    const id = w.crm.create('task', { subject: 'Call', categories: ['Red', 'Blue'] })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.update(id, { categories: ['Red', 'Blue', 'Green'] })
    w.mailbox.update(mailboxId, { categories: ['Blue'] })
    await syncUntilQuiet(w)
    expect(w.crm.live(id).fields.categories).toEqual(['Blue', 'Green'])
    expect((await checkConvergence(w)).problems).toEqual([])
  })

  test('lww: a remote reporting sub-millisecond modification times still merges (HLC walls are whole ms)', async () => {
    const { store } = await openMemoryStore()
    let now = 1_000.25
    const w = createTwoReplicaWorld({ store, merge: new PolicyMerge({ policies: { default: 'lww' } }), now: () => (now += 0.5) })
    const id = w.crm.create('contact', { givenName: 'Ann', jobTitle: 'Buyer' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.update(id, { jobTitle: 'CFO' })
    now += 10.3
    w.mailbox.update(mailboxId, { jobTitle: 'CEO' }) // the later edit
    await syncUntilQuiet(w)
    expect(w.crm.live(id).fields.jobTitle).toBe('CEO')
    expect((await checkConvergence(w)).problems).toEqual([])
  })

  test('exchange-wins: the mailbox value wins a conflict', async () => {
    const w = await world({ policies: { default: 'exchange-wins' } })
    const id = w.crm.create('contact', { givenName: 'Ann', jobTitle: 'Buyer' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.update(id, { jobTitle: 'CFO' })
    w.mailbox.update(mailboxId, { jobTitle: 'CEO' })
    await syncUntilQuiet(w)
    expect(w.crm.live(id).fields.jobTitle).toBe('CEO')
    expect((await checkConvergence(w)).problems).toEqual([])
  })

  test('a CRM → mailbox field edited in the mailbox is not sent, and is overwritten when the CRM value changes', async () => {
    const w = await world({ directions: { contact: { jobTitle: 'toExchange' } } })
    const id = w.crm.create('contact', { givenName: 'Ann', jobTitle: 'Buyer' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    const writes = w.crm.pushWrites
    w.mailbox.update(mailboxId, { jobTitle: 'Chief Buyer' })
    await syncUntilQuiet(w)
    expect(w.crm.live(id).fields.jobTitle).toBe('Buyer')
    expect(w.crm.pushWrites).toBe(writes)
    expect(w.mailbox.live(mailboxId).fields.jobTitle).toBe('Chief Buyer')
    // No loop: another cycle writes nothing.
    const report = await w.pair.runCycle()
    expect(report.pushed).toEqual({ crm: 0, mailbox: 0 })
    w.crm.update(id, { jobTitle: 'Head of Buying' })
    await syncUntilQuiet(w)
    expect(w.mailbox.live(mailboxId).fields.jobTitle).toBe('Head of Buying')
    expect((await checkConvergence(w)).problems).toEqual([])
  })

  test('an untracked mailbox task stays out of the CRM; a tracked one arrives', async () => {
    const w = await world({})
    w.mailbox.create('task', { subject: 'private errand' })
    w.mailbox.create('task', { subject: 'customer call', categories: ['Tracked to Dynamics 365'] })
    await syncUntilQuiet(w)
    expect(w.crm.liveRecords().map((r) => r.fields)).toEqual([{ subject: 'customer call' }])
  })
})
