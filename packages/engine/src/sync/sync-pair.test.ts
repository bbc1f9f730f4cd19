import { describe, expect, test } from 'vitest'
import { openMemoryStore } from '../store/open-memory.js'
import { MAILBOX_REPLICA, beforeFirstDeletePush, checkConvergence, createTwoReplicaWorld, syncUntilQuiet } from '../testing/world.js'
import { sampleFields } from '../testing/sample-fields.js'
import { asReplicaId } from '../ids.js'
import { PreconditionFailedError } from '../errors.js'
import { ReplicaStore } from '../store/replica-store.js'
import { gatedDatabase, settled, ticks } from '../testing/gated-database.js'

async function world(options: Partial<Parameters<typeof createTwoReplicaWorld>[0]> = {}) {
  const { store } = await openMemoryStore()
  return createTwoReplicaWorld({ store, ...options })
}

describe('SyncPair cycle', () => {
  test('a CRM record reaches the mailbox and a mailbox item reaches the CRM, once', async () => {
    const w = await world()
    w.crm.create('contact', sampleFields('contact', 1))
    w.mailbox.create('task', sampleFields('task', 2))
    await syncUntilQuiet(w)
    expect(w.crm.liveRecords()).toHaveLength(2)
    expect(w.mailbox.liveRecords()).toHaveLength(2)
    expect((await checkConvergence(w)).problems).toEqual([])
    // a second round changes nothing
    const report = await w.pair.runCycle()
    expect(report.pushed).toEqual({ crm: 0, mailbox: 0 })
    expect(w.crm.pushWrites + w.mailbox.pushWrites).toBe(2)
  })

  test('edits on different fields of one item merge per field', async () => {
    const w = await world()
    const id = w.crm.create('contact', { givenName: 'Ann', surname: 'Lee', jobTitle: 'Buyer' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.update(id, { jobTitle: 'Head of Buying' })
    w.mailbox.update(mailboxId, { surname: 'Lee-Smith' })
    await syncUntilQuiet(w)
    expect(w.crm.live(id).fields).toEqual({ givenName: 'Ann', surname: 'Lee-Smith', jobTitle: 'Head of Buying' })
    expect((await checkConvergence(w)).converged).toBe(true)
  })

  test('both sides change one field: the CRM wins and the mailbox is brought back', async () => {
    const w = await world()
    const id = w.crm.create('task', { subject: 'Call Bob' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.update(id, { subject: 'Call Bob today' })
    w.mailbox.update(mailboxId, { subject: 'Call Bob tomorrow' })
    await syncUntilQuiet(w)
    expect(w.mailbox.live(mailboxId).fields.subject).toBe('Call Bob today')
  })

  test('the same change on both sides is agreed without a write', async () => {
    const w = await world()
    const id = w.crm.create('task', { subject: 'x' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    const writes = w.crm.pushWrites + w.mailbox.pushWrites
    w.crm.update(id, { subject: 'y' })
    w.mailbox.update(mailboxId, { subject: 'y' })
    await syncUntilQuiet(w)
    expect(w.crm.pushWrites + w.mailbox.pushWrites).toBe(writes)
  })

  test('a touched-but-equal record (new version, same content) is not a change', async () => {
    const w = await world()
    w.crm.create('appointment', sampleFields('appointment', 1))
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.mailbox.touch(mailboxId)
    const report = await w.pair.runCycle()
    expect(report.logged.mailbox).toBe(0)
    expect(report.pushed).toEqual({ crm: 0, mailbox: 0 })
  })

  test('a delete on one side removes the other copy; a delete against an edit loses', async () => {
    const w = await world()
    const a = w.crm.create('task', { subject: 'a' })
    const b = w.crm.create('task', { subject: 'b' })
    await syncUntilQuiet(w)
    const mbxB = w.mailbox.liveRecords().find((r) => r.fields.subject === 'b')!.nativeId
    w.crm.remove(a)
    w.mailbox.remove(mbxB)
    w.crm.update(b, { subject: 'b2' })
    await syncUntilQuiet(w)
    expect(w.crm.liveRecords().map((r) => r.fields.subject)).toEqual(['b2'])
    expect(w.mailbox.liveRecords().map((r) => r.fields.subject)).toEqual(['b2'])
    expect((await checkConvergence(w)).converged).toBe(true)
  })

  test('an expired cursor resyncs from a full listing without duplicates or deletes', async () => {
    const w = await world()
    for (let i = 0; i < 5; i++) w.crm.create('contact', sampleFields('contact', i))
    await syncUntilQuiet(w)
    w.crm.expireCursors()
    w.mailbox.expireCursors()
    w.crm.create('contact', sampleFields('contact', 99))
    const report = await w.pair.runCycle()
    expect(report.resynced.sort()).toEqual(['crm', 'mailbox'])
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toHaveLength(6)
    expect(w.crm.liveRecords()).toHaveLength(6)
    expect((await checkConvergence(w)).converged).toBe(true)
  })

  test('a record deleted while the cursor was expired is found missing by the full listing, confirmed, and deleted on the other side', async () => {
    const w = await world({ pageLimit: 3 })
    const ids = Array.from({ length: 8 }, (_, i) => w.crm.create('contact', sampleFields('contact', i)))
    await syncUntilQuiet(w)
    w.crm.expireCursors()
    w.crm.remove(ids[2]!) // no feed will say so: the new cursor starts after it
    w.crm.remove(ids[6]!)
    w.crm.update(ids[4]!, { jobTitle: 'Listed and changed' })
    const report = await w.pair.runCycle() // the listing spans three pages
    expect(report.resynced).toEqual(['crm'])
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toHaveLength(6)
    expect(w.mailbox.liveRecords().some((r) => r.fields.jobTitle === 'Listed and changed')).toBe(true)
    expect((await checkConvergence(w)).converged).toBe(true)
    // the next listing finds nothing missing
    w.crm.expireCursors()
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toHaveLength(6)
  })

  test('a 429 ends the cycle early with the wait, and the next cycle finishes the work', async () => {
    const w = await world()
    w.crm.create('contact', sampleFields('contact', 1))
    w.crmAdapter.throttleNext(1)
    const first = await w.pair.runCycle()
    expect(first.throttledMs).toBe(1000)
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toHaveLength(1)
  })

  test('a throttled push stays in the outbox and merging waits until it is sent', async () => {
    const w = await world()
    w.crm.create('contact', sampleFields('contact', 1))
    await w.pair.runCycle() // pulls, merges, pushes
    w.crm.create('contact', sampleFields('contact', 2))
    w.mailboxAdapter.throttleNext(2) // first flush (nothing pending → no call), then the pull
    const report = await w.pair.runCycle()
    expect(report.throttledMs).toBeDefined()
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toHaveLength(2)
    expect(w.mailbox.pushWrites).toBe(2)
  })

  test('a lost push acknowledgement is replayed without a duplicate', async () => {
    const w = await world({ faults: { loseAck: 0.5 }, seed: 3, pageLimit: 3 })
    for (let i = 0; i < 20; i++) w.crm.create('contact', sampleFields('contact', i))
    await syncUntilQuiet(w)
    expect(w.mailboxAdapter.injected.loseAck + w.crmAdapter.injected.loseAck).toBeGreaterThan(0)
    expect(w.mailbox.liveRecords()).toHaveLength(20)
    expect((await checkConvergence(w)).converged).toBe(true)
  })

  test('a moved mailbox item (new id) stays linked and is not deleted in the CRM', async () => {
    const w = await world()
    w.crm.create('contact', sampleFields('contact', 1))
    await syncUntilQuiet(w)
    const before = w.mailbox.liveRecords()[0]!.nativeId
    const after = w.mailbox.move(before)
    await syncUntilQuiet(w)
    expect(w.crm.liveRecords()).toHaveLength(1)
    const link = await w.store.getLink(w.mailbox.live(after).concordId!)
    expect(link?.natives[MAILBOX_REPLICA]).toBe(after)
    expect(link?.natives[asReplicaId('crm')]).toBeDefined()
  })

  test('a 412 on update is re-merged against the newer remote state: neither edit is lost', async () => {
    const w = await world()
    const id = w.crm.create('contact', { givenName: 'Ann', jobTitle: 'Buyer' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.update(id, { jobTitle: 'CEO' })
    // Between our pull and our push, a person edits the mailbox copy: our If-Match goes stale.
    const original = w.mailboxAdapter.push.bind(w.mailboxAdapter)
    let raced = false
    w.mailboxAdapter.push = async (ops) => {
      if (!raced) {
        raced = true
        w.mailbox.update(mailboxId, { givenName: 'Anna' })
      }
      return original(ops)
    }
    const report = await w.pair.runCycle()
    expect(report.rejected.mailbox).toBe(1)
    await syncUntilQuiet(w)
    expect(w.mailbox.live(mailboxId).fields).toEqual({ givenName: 'Anna', jobTitle: 'CEO' })
    expect(w.crm.live(id).fields).toEqual({ givenName: 'Anna', jobTitle: 'CEO' })
  })

  test('a delete refused (412) because the mailbox copy was edited after our pull is re-merged: the edit survives, once', async () => {
    const w = await world()
    const id = w.crm.create('contact', { givenName: 'Ann', jobTitle: 'Buyer' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.remove(id)
    // Between our pull and our push, the mailbox user edits the copy: the delete's If-Match goes stale.
    const raced = beforeFirstDeletePush(w.mailboxAdapter, () => w.mailbox.update(mailboxId, { jobTitle: 'CEO' }))
    const report = await w.pair.runCycle()
    expect(raced()).toBe(true)
    expect(report.rejected.mailbox).toBe(1)
    expect(w.mailbox.live(mailboxId).fields).toEqual({ givenName: 'Ann', jobTitle: 'CEO' })
    await syncUntilQuiet(w)
    // The default strategy lets an edit beat a concurrent delete: the record comes back in the CRM.
    expect(w.mailbox.liveRecords().map((r) => r.fields)).toEqual([{ givenName: 'Ann', jobTitle: 'CEO' }])
    expect(w.crm.liveRecords().map((r) => r.fields)).toEqual([{ givenName: 'Ann', jobTitle: 'CEO' }])
    expect(await w.store.listOutbox(w.pair.pairId, MAILBOX_REPLICA)).toEqual([])
    expect((await checkConvergence(w)).problems).toEqual([])
  })

  test('a create refused with a 412 is retried (it has no remote state to re-merge with), not parked in the outbox', async () => {
    const w = await world()
    w.crm.create('contact', { givenName: 'Ann' })
    const original = w.mailboxAdapter.push.bind(w.mailboxAdapter)
    let refused = 0
    w.mailboxAdapter.push = async (ops) => {
      const create = ops.find((op) => op.type === 'create')
      if (create && refused === 0) {
        refused++
        const rest = await original(ops.filter((op) => op !== create))
        return { applied: rest.applied, rejected: [...rest.rejected, { opId: create.opId, error: new PreconditionFailedError('the remote refused the create') }] }
      }
      return original(ops)
    }
    const first = await w.pair.runCycle()
    expect(refused).toBe(1)
    expect(first.rejected.mailbox).toBe(1)
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords().map((r) => r.fields)).toEqual([{ givenName: 'Ann' }])
    expect(await w.store.listOutbox(w.pair.pairId, MAILBOX_REPLICA)).toEqual([])
    expect((await checkConvergence(w)).problems).toEqual([])
  })

  test('a delete whose If-Match still holds is applied: no re-merge, no write back', async () => {
    const w = await world()
    const id = w.crm.create('contact', { givenName: 'Ann' })
    await syncUntilQuiet(w)
    w.crm.remove(id)
    const report = await w.pair.runCycle()
    expect(report.rejected.mailbox).toBe(0)
    expect(report.pushed.mailbox).toBe(1)
    await syncUntilQuiet(w)
    expect(w.mailbox.liveRecords()).toEqual([])
    expect(w.crm.liveRecords()).toEqual([])
  })
})

describe('SyncPair cycle pulling one side', () => {
  const mailboxOnly = { pull: ['mailbox'] as const }

  test('a mailbox-only cycle carries mailbox changes to the CRM and leaves CRM changes for a later cycle', async () => {
    const w = await world()
    const id = w.crm.create('contact', { givenName: 'Ann', jobTitle: 'Buyer' })
    await syncUntilQuiet(w)
    w.crm.update(id, { jobTitle: 'CEO' })
    w.mailbox.create('task', { subject: 'Call Ann' })
    let crmPulls = 0
    const pull = w.crmAdapter.pull.bind(w.crmAdapter)
    w.crmAdapter.pull = (cursor, options) => (crmPulls++, pull(cursor, options))
    const report = await w.pair.runCycle(undefined, mailboxOnly)
    expect(report.pulledSides).toEqual(['mailbox'])
    expect(crmPulls).toBe(0)
    expect(w.crm.liveRecords().map((r) => r.fields.subject ?? r.fields.givenName).sort()).toEqual(['Ann', 'Call Ann'])
    expect(w.mailbox.liveRecords().find((r) => r.fields.givenName === 'Ann')!.fields.jobTitle).toBe('Buyer')
    const full = await w.pair.runCycle()
    expect(full.pulledSides).toEqual(['crm', 'mailbox'])
    expect(w.mailbox.liveRecords().find((r) => r.fields.givenName === 'Ann')!.fields.jobTitle).toBe('CEO')
    expect((await checkConvergence(w)).converged).toBe(true)
  })

  test('an edit not yet pulled from the CRM is not overwritten: the update is refused (412) and re-merged once the CRM side is pulled', async () => {
    const w = await world()
    const id = w.crm.create('contact', { givenName: 'Ann', jobTitle: 'Buyer' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.update(id, { jobTitle: 'CEO' })
    w.mailbox.update(mailboxId, { givenName: 'Anna' })
    const first = await w.pair.runCycle(undefined, mailboxOnly)
    expect(first.pulledSides).toEqual(['mailbox'])
    expect(first.rejected.crm).toBe(1)
    expect(w.crm.live(id).fields.jobTitle).toBe('CEO')
    // the refused push waits for a re-merge with the CRM's newer state: the next cycle pulls the CRM although not asked to
    const second = await w.pair.runCycle(undefined, mailboxOnly)
    expect(second.pulledSides).toEqual(['mailbox', 'crm'])
    await syncUntilQuiet(w)
    expect(w.crm.live(id).fields).toEqual({ givenName: 'Anna', jobTitle: 'CEO' })
    expect(w.mailbox.live(mailboxId).fields).toEqual({ givenName: 'Anna', jobTitle: 'CEO' })
  })

  test('a deletion from the mailbox does not overwrite an unseen CRM edit: the delete is refused (412) and re-merged, and the edit beats it', async () => {
    const w = await world()
    const id = w.crm.create('task', { subject: 'b' })
    await syncUntilQuiet(w)
    const mailboxId = w.mailbox.liveRecords()[0]!.nativeId
    w.crm.update(id, { subject: 'b2' })
    w.mailbox.remove(mailboxId)
    const first = await w.pair.runCycle(undefined, mailboxOnly)
    expect(first.pulledSides).toEqual(['mailbox'])
    expect(first.rejected.crm).toBe(1)
    expect(w.crm.live(id).fields.subject).toBe('b2')
    const second = await w.pair.runCycle(undefined, mailboxOnly)
    expect(second.pulledSides).toEqual(['mailbox', 'crm'])
    await syncUntilQuiet(w)
    expect(w.crm.liveRecords().map((r) => r.fields.subject)).toEqual(['b2'])
    expect(w.mailbox.liveRecords().map((r) => r.fields.subject)).toEqual(['b2'])
  })
})

describe('SyncPair cycles of one pair started at once', () => {
  test.each([
    ['two calls on one SyncPair', false],
    ['two SyncPair objects of the pair on one store', true],
  ])('%s run one after the other: every item is created once on the other side', async (_name, twoObjects) => {
    const { store } = await openMemoryStore({ groupCommit: true })
    const world = createTwoReplicaWorld({ store })
    const other = twoObjects ? createTwoReplicaWorld({ store, remotes: { crm: world.crm, mailbox: world.mailbox } }) : world
    for (let i = 0; i < 30; i++) world.mailbox.create('contact', sampleFields('contact', i))
    for (let i = 0; i < 30; i++) world.crm.create('contact', sampleFields('contact', 100 + i))
    const [first, second] = await Promise.all([world.pair.runCycle(), other.pair.runCycle()])
    expect(first.pushed.crm + first.pushed.mailbox).toBe(60) // the first cycle did the work,
    expect(second.pushed.crm + second.pushed.mailbox).toBe(0) // the second found nothing left to push
    await syncUntilQuiet(world)
    expect((await checkConvergence(world)).problems).toEqual([])
    expect(world.crm.pushWrites + world.mailbox.pushWrites).toBe(60)
    expect(world.crm.liveRecords()).toHaveLength(60)
    expect(world.mailbox.liveRecords()).toHaveLength(60)
  })
})

describe('SyncPair pushes and the write of their outbox entries', () => {
  test('by default a push waits until its outbox entry is in the database', async () => {
    const { db, openGates, closeGates } = await gatedDatabase()
    openGates()
    const w = createTwoReplicaWorld({ store: await ReplicaStore.open(db, { groupCommit: true }) })
    await w.pair.runCycle() // (reads the pair's state once: cursors, heads, watermarks)
    closeGates()
    w.crm.create('contact', sampleFields('contact', 1))
    const cycle = w.pair.runCycle()
    const done = settled(cycle)
    await ticks()
    expect(w.mailbox.liveRecords()).toHaveLength(0) // held until the batch with the outbox lands
    openGates()
    await cycle
    expect(done()).toBe(true)
    expect(w.mailbox.liveRecords()).toHaveLength(1)
  })

  test('waitForOutboxWrite: false pushes while that batch is on its way, and converges the same', async () => {
    const { db, gates, openGates, closeGates } = await gatedDatabase()
    openGates()
    const w = createTwoReplicaWorld({ store: await ReplicaStore.open(db, { groupCommit: true }), waitForOutboxWrite: false })
    await w.pair.runCycle() // (reads the pair's state once: cursors, heads, watermarks)
    closeGates()
    w.crm.create('contact', sampleFields('contact', 1))
    const cycle = w.pair.runCycle()
    await ticks()
    expect(w.mailbox.liveRecords()).toHaveLength(1) // pushed, though no batch has landed
    expect(gates).toHaveLength(1)
    openGates()
    await cycle
    await syncUntilQuiet(w)
    expect((await checkConvergence(w)).problems).toEqual([])
    expect(w.crm.pushWrites + w.mailbox.pushWrites).toBe(1)
  })
})
