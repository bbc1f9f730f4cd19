import { describe, expect, test } from 'vitest'
import type { Fields } from '../model/item.js'
import { openMemoryStore } from '../store/open-memory.js'
import { createTwoReplicaWorld, syncUntilQuiet, type TwoReplicaWorld } from '../testing/world.js'
import type { ConcordId } from '../ids.js'
import { DELETE_EXPLAIN_FIELD, PolicyMerge } from './policy-merge.js'

/** End to end: SyncPair + memory replicas + store + PolicyMerge, with the pair's injected clock as "now". */
const alice = { id: 'u-alice', addresses: ['alice@contoso.test'] }
const START = Date.UTC(2026, 5, 1, 12) // the pair's clock starts 2026-06-01T12:00Z
const future = { dateTime: '2026-07-01T09:00:00', timeZone: 'Europe/Berlin' }
const past = { dateTime: '2026-05-01T09:00:00', timeZone: 'Europe/Berlin' }
const meeting = (organizer: string, start: Fields['start']): Fields => ({ subject: 'QBR', organizer: { address: organizer }, start, end: start, requiredAttendees: [{ address: 'carol@fabrikam.test' }] })

async function world(config: unknown = {}) {
  const { store } = await openMemoryStore()
  let now = START
  const w = createTwoReplicaWorld({ store, merge: new PolicyMerge(config), now: () => (now += 1000) })
  w.pair.setContext({ user: alice })
  return w
}

async function concordIdOf(w: TwoReplicaWorld, side: 'crm' | 'mailbox', nativeId: string): Promise<ConcordId> {
  const snapshot = await w.store.getSnapshot(side === 'crm' ? w.crmAdapter.replicaId : w.mailboxAdapter.replicaId, nativeId as never)
  return snapshot!.concordId
}

/** After an unlink: edits on both sides and further cycles push nothing and re-create nothing. */
async function expectQuietAfter(w: TwoReplicaWorld, edit: () => void) {
  const writes = { crm: w.crm.pushWrites, mailbox: w.mailbox.pushWrites }
  edit()
  await syncUntilQuiet(w)
  const report = await w.pair.runCycle()
  expect(report.pushed).toEqual({ crm: 0, mailbox: 0 })
  expect({ crm: w.crm.pushWrites, mailbox: w.mailbox.pushWrites }).toEqual(writes)
}

describe('per-item-type deletion rules through the sync loop', () => {
  test('an organizer’s future meeting deleted in the CRM disappears from the mailbox', async () => {
    const w = await world()
    const id = w.crm.create('appointment', meeting('alice@contoso.test', future), undefined, { ownerId: alice.id })
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toHaveLength(1)
    const concordId = await concordIdOf(w, 'crm', id)
    w.crm.remove(id)
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toEqual([])
    expect(await w.pair.explain(concordId, DELETE_EXPLAIN_FIELD)).toMatchObject({ outcome: 'take-crm', value: 'deleted' })
    const [tombstone] = await w.pair.listTombstones()
    expect(tombstone?.provenance).toBe('user-deleted')
  })

  test('a past meeting deleted in the CRM stays in the mailbox, unlinked: later edits do not flow, nothing is re-created', async () => {
    const w = await world()
    const id = w.crm.create('appointment', meeting('alice@contoso.test', past), undefined, { ownerId: alice.id })
    await syncUntilQuiet(w)
    const [copy] = w.mailbox.liveRecords()
    const concordId = await concordIdOf(w, 'crm', id)
    w.crm.remove(id)
    await syncUntilQuiet(w)
    expect(w.mailbox.get(copy!.nativeId)?.fields.subject).toBe('QBR')
    expect(await w.pair.explain(concordId, DELETE_EXPLAIN_FIELD)).toMatchObject({ outcome: 'blocked', value: 'unlinked', rule: expect.stringMatching(/not in the future/) })
    expect((await w.store.getBase(w.pair.pairId, concordId))?.unlinked?.rule).toMatch(/not in the future/)
    // a mailbox edit does not bring the meeting back to the CRM
    await expectQuietAfter(w, () => w.mailbox.update(copy!.nativeId, { subject: 'QBR (my notes)', categories: ['Tracked to Dynamics 365'] }))
    expect(w.crm.liveRecords()).toEqual([])
    // deleting the kept copy later forgets the item entirely
    w.mailbox.remove(copy!.nativeId)
    await syncUntilQuiet(w)
    expect(await w.store.getBase(w.pair.pairId, concordId)).toBeUndefined()
    expect(w.crm.liveRecords()).toEqual([])
  })

  test('a non-organizer’s delete in Outlook does not delete the CRM appointment; later CRM edits do not re-create it', async () => {
    const w = await world()
    const id = w.crm.create('appointment', meeting('bob@contoso.test', future), undefined, { ownerId: 'u-bob', attendeeIds: [alice.id] })
    await syncUntilQuiet(w)
    const [copy] = w.mailbox.liveRecords()
    expect(copy).toBeDefined()
    w.mailbox.remove(copy!.nativeId)
    await syncUntilQuiet(w)
    expect(w.crm.get(id)?.fields.subject).toBe('QBR')
    expect(await w.pair.explain(await concordIdOf(w, 'crm', id), DELETE_EXPLAIN_FIELD)).toMatchObject({ outcome: 'blocked', rule: expect.stringMatching(/not the organizer \(organizer bob@contoso.test\)/) })
    await expectQuietAfter(w, () => w.crm.update(id, { subject: 'QBR (moved)' }))
    expect(w.mailbox.liveRecords()).toEqual([])
    expect(w.crm.get(id)?.fields.subject).toBe('QBR (moved)')
  })

  test('a completed CRM appointment is not deleted by an Outlook delete', async () => {
    const w = await world()
    const id = w.crm.create('appointment', meeting('alice@contoso.test', future), undefined, { ownerId: alice.id, state: 'open' })
    await syncUntilQuiet(w)
    w.crm.setMeta(id, { state: 'completed' })
    await syncUntilQuiet(w)
    const [copy] = w.mailbox.liveRecords()
    w.mailbox.remove(copy!.nativeId)
    await syncUntilQuiet(w)
    expect(w.crm.get(id)).toBeDefined()
    expect(await w.pair.explain(await concordIdOf(w, 'crm', id), DELETE_EXPLAIN_FIELD)).toMatchObject({ rule: expect.stringMatching(/the crm row is completed/) })
    await expectQuietAfter(w, () => w.crm.update(id, { subject: 'QBR (done)' }))
    expect(w.mailbox.liveRecords()).toEqual([])
  })

  test('an open, future meeting the user organizes, deleted in Outlook, is deleted in the CRM', async () => {
    const w = await world()
    const id = w.crm.create('appointment', meeting('alice@contoso.test', future), undefined, { ownerId: alice.id, state: 'open' })
    await syncUntilQuiet(w)
    w.mailbox.remove(w.mailbox.liveRecords()[0]!.nativeId)
    await syncUntilQuiet(w)
    expect(w.crm.get(id)).toBeUndefined()
  })

  test('a completed Exchange task survives a CRM delete, unlinked', async () => {
    const w = await world()
    const id = w.crm.create('task', { subject: 'Call Contoso', status: 'notStarted' }, undefined, { ownerId: alice.id })
    await syncUntilQuiet(w)
    const [copy] = w.mailbox.liveRecords()
    w.mailbox.update(copy!.nativeId, { status: 'completed' })
    await syncUntilQuiet(w)
    expect(w.crm.get(id)?.fields.status).toBe('completed')
    w.crm.remove(id)
    await syncUntilQuiet(w)
    expect(w.mailbox.get(copy!.nativeId)?.fields.status).toBe('completed')
    await expectQuietAfter(w, () => w.mailbox.update(copy!.nativeId, { subject: 'Call Contoso (done)' }))
    expect(w.crm.liveRecords()).toEqual([])
  })

  test('an open Exchange task is deleted by a CRM delete; an Exchange task delete deletes the CRM task', async () => {
    const w = await world()
    const open = w.crm.create('task', { subject: 'Open task', status: 'inProgress' }, undefined, { ownerId: alice.id })
    const other = w.crm.create('task', { subject: 'Done in Outlook', status: 'completed' }, undefined, { ownerId: alice.id })
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toHaveLength(2)
    w.crm.remove(open)
    const otherCopy = w.mailbox.liveRecords().find((r) => r.fields.subject === 'Done in Outlook')!
    w.mailbox.remove(otherCopy.nativeId)
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toEqual([])
    expect(w.crm.get(other)).toBeUndefined()
  })

  test('contacts: by default the owner keeps the mailbox contact when the CRM record is deleted (configurable)', async () => {
    for (const [config, kept] of [[{}, true], [{ deletionRules: { contactCrmDelete: 'owner-only' } }, false]] as const) {
      const w = await world(config)
      const id = w.crm.create('contact', { givenName: 'Ann', surname: 'Lee' }, undefined, { ownerId: alice.id })
      await syncUntilQuiet(w)
      w.crm.remove(id)
      await syncUntilQuiet(w)
      expect(w.mailbox.liveRecords()).toHaveLength(kept ? 1 : 0)
    }
  })

  test('leaving the sync filter still removes only the mailbox copy (not an item-type rule)', async () => {
    const w = await world()
    // Bob's meeting, Alice attends: had it been a physical delete, the non-organizer rule would keep Alice's copy
    const id = w.crm.create('appointment', meeting('bob@contoso.test', past), undefined, { ownerId: 'u-bob', attendeeIds: [alice.id] })
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toHaveLength(1)
    w.crm.setMeta(id, { attendeeIds: [] })
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toEqual([])
    expect(w.crm.get(id)).toBeDefined()
  })
})
