import { describe, expect, test } from 'vitest'
import type { PullPage, RemoteChange } from '../contract/replica-adapter.js'
import { type ConcordId, asConcordId, asCursor, asNativeId, asOpId, asPairId, asReplicaId, asVersion, concordIdFor } from '../ids.js'
import { openMemoryStore, openMemoryStoreCopy } from './open-memory.js'
import { ReplicaStore, storeCachesFromData, storeCachesToData } from './replica-store.js'
import type { OutboxEntry } from './records.js'
import { gatedDatabase, settled, ticks } from '../testing/gated-database.js'

const crm = asReplicaId('crm')
const pair = asPairId('p1')
const n = asNativeId
const v = asVersion

function page(changes: RemoteChange[], cursor = 'c1', hasMore = false): PullPage {
  return { changes, nextCursor: asCursor(cursor), hasMore }
}
const upsert = (id: string, version: string, fields: Record<string, unknown>, concordId?: string): RemoteChange => ({
  type: 'upsert',
  nativeId: n(id),
  kind: 'contact',
  version: v(version),
  fields,
  concordId: concordId === undefined ? undefined : asConcordId(concordId),
})

describe('ReplicaStore', () => {
  test('a pulled page writes log, snapshots and cursor together', async () => {
    const { store } = await openMemoryStore()
    const result = await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' }), upsert('b', '1', { givenName: 'Bo' })], 'cur-1'))
    expect(result).toMatchObject({ logged: 2, headSeq: 2 })
    expect(await store.getCursor(crm)).toBe('cur-1')
    const log = await store.readLog(crm, 0)
    expect(log.map((e) => [e.seq, e.nativeId, e.type])).toEqual([
      [1, 'a', 'upsert'],
      [2, 'b', 'upsert'],
    ])
    expect((await store.getSnapshot(crm, n('a')))?.concordId).toBe(concordIdFor(crm, n('a')))
  })

  test('replaying a page, or a page with duplicates, logs nothing twice', async () => {
    const { store } = await openMemoryStore()
    const p = page([upsert('a', '1', { givenName: 'Ann' }), upsert('a', '1', { givenName: 'Ann' })])
    expect((await store.applyPulledPage(crm, p)).logged).toBe(1)
    expect((await store.applyPulledPage(crm, p)).logged).toBe(0)
    expect(await store.readLog(crm, 0)).toHaveLength(1)
  })

  test('changed means version changed and content changed', async () => {
    const { store } = await openMemoryStore()
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })]))
    expect((await store.applyPulledPage(crm, page([upsert('a', '2', { givenName: 'Ann' })]))).logged).toBe(0) // touched, equal
    expect((await store.getSnapshot(crm, n('a')))?.version).toBe('2')
    expect((await store.applyPulledPage(crm, page([upsert('a', '3', { givenName: 'Anne' })]))).logged).toBe(1)
  })

  test('a delete is logged once with its provenance; unknown deletes are ignored', async () => {
    const { store } = await openMemoryStore()
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })]))
    const del: RemoteChange = { type: 'delete', nativeId: n('a'), provenance: 'user-deleted' }
    expect((await store.applyPulledPage(crm, page([del, { type: 'delete', nativeId: n('zzz'), provenance: 'user-deleted' }]))).logged).toBe(1)
    expect((await store.applyPulledPage(crm, page([del]))).logged).toBe(0)
    const log = await store.readLog(crm, 1)
    expect(log[0]).toMatchObject({ type: 'delete', provenance: 'user-deleted' })
    // a stale replay of the last version seen before the delete does not resurrect it
    expect((await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })]))).logged).toBe(0)
  })

  test('a moved record keeps its Concord id and the removal at the old location is not a delete', async () => {
    const { store } = await openMemoryStore()
    await store.applyPulledPage(crm, page([upsert('old', '1', { givenName: 'Ann' }, 'c-ann')]))
    await store.applyPulledPage(crm, page([upsert('new', '2', { givenName: 'Ann' }, 'c-ann'), { type: 'delete', nativeId: n('old'), provenance: 'user-deleted' }]))
    const log = await store.readLog(crm, 0)
    expect(log.map((e) => e.type)).toEqual(['upsert', 'upsert'])
    expect((await store.getLink(asConcordId('c-ann')))?.natives[crm]).toBe('new')
  })

  test('resetCursor forgets the cursor so the next pull lists everything', async () => {
    const { store } = await openMemoryStore()
    await store.applyPulledPage(crm, page([], 'cur-9'))
    await store.resetCursor(crm)
    expect(await store.getCursor(crm)).toBeNull()
  })

  test('outbox: planned pushes survive until acknowledged; the ack updates base, link and snapshot at once', async () => {
    const { store } = await openMemoryStore()
    const mailbox = asReplicaId('mbx')
    const concordId: ConcordId = asConcordId('c1')
    const entry: OutboxEntry = {
      pairId: pair,
      target: mailbox,
      op: { opId: asOpId('op1'), type: 'create', concordId, kind: 'contact', fields: { givenName: 'Ann' } },
      agreed: { givenName: 'Ann' },
      sourceReplica: crm,
      sourceVersion: v('7'),
      attempts: 0,
      plannedAt: 0,
    }
    await store.commitPlan(pair, { outbox: [entry], bases: [], watermarks: { [crm]: 5 } })
    expect(await store.listOutbox(pair, mailbox)).toHaveLength(1)
    expect(await store.getWatermark(pair, crm)).toBe(5)
    await store.ackPush(entry, { opId: entry.op.opId, nativeId: n('m1'), version: v('m-1'), fields: { givenName: 'Ann' } })
    expect(await store.listOutbox(pair, mailbox)).toHaveLength(0)
    expect(await store.getBase(pair, concordId)).toEqual({ kind: 'contact', fields: { givenName: 'Ann' }, fieldVersions: { givenName: 1 }, versions: { mbx: 'm-1', crm: '7' } })
    expect((await store.getLink(concordId))?.natives[mailbox]).toBe('m1')
    expect((await store.getSnapshot(mailbox, n('m1')))?.version).toBe('m-1')
    // the echo of our own write is not a change
    expect((await store.applyPulledPage(mailbox, page([upsert('m1', 'm-1', { givenName: 'Ann' }, 'c1')]))).logged).toBe(0)
  })

  test('a failed push is kept with its attempt count, or marked for re-merge and later retired', async () => {
    const { store } = await openMemoryStore()
    const mailbox = asReplicaId('mbx')
    const entry: OutboxEntry = { pairId: pair, target: mailbox, op: { opId: asOpId('op1'), type: 'delete', concordId: asConcordId('c1'), kind: 'task', nativeId: n('x'), provenance: 'user-deleted' }, agreed: {}, attempts: 0, plannedAt: 0 }
    await store.commitPlan(pair, { outbox: [entry], bases: [], watermarks: {} })
    const { SyncError } = await import('../errors.js')
    await store.settlePushFailure(entry, new SyncError('Transient', 'boom'), 'retry')
    expect((await store.listOutbox(pair, mailbox))[0]).toMatchObject({ attempts: 1, lastError: { code: 'Transient' } })
    await store.settlePushFailure(entry, new SyncError('PreconditionFailed', '412'), 'remerge')
    expect((await store.listOutbox(pair, mailbox))[0]).toMatchObject({ attempts: 0, remerge: true })
    await store.commitPlan(pair, { outbox: [], bases: [], watermarks: {}, retire: [{ target: mailbox, concordId: entry.op.concordId }] })
    expect(await store.listOutbox(pair, mailbox)).toHaveLength(0)
  })

  test('ids containing the key separator are refused', async () => {
    const { store } = await openMemoryStore()
    await expect(store.applyPulledPage(asReplicaId('a!b'), page([]))).rejects.toThrow(/must not contain/)
  })

  test('a store of an unknown format is refused', async () => {
    const { db } = await openMemoryStore()
    await db.put('v1!meta', JSON.stringify({ format: 99 }))
    const { ReplicaStore } = await import('./replica-store.js')
    await expect(ReplicaStore.open(db)).rejects.toThrow(/Unsupported store format 99/)
  })

  describe('full listings', () => {
    const listingPage = (changes: RemoteChange[], cursor: string, hasMore: boolean): PullPage => ({ ...page(changes, cursor, hasMore), fullListing: true })
    const listedKeys = async (db: Awaited<ReturnType<typeof openMemoryStore>>['db']) => {
      const out: string[] = []
      for await (const key of db.keys({ gte: 'v1!r!crm!listed!', lt: 'v1!r!crm!listed!\uffff' })) out.push(key)
      return out
    }

    test('records a listing did not contain are found once it ends, across pages and a restart, and only then', async () => {
      const { db } = await openMemoryStore()
      let store = await ReplicaStore.open(db)
      await store.applyPulledPage(crm, page(['a', 'b', 'c', 'd'].map((id) => upsert(id, '1', { givenName: id }))))
      // the cursor expired: a full listing in two pages, without `b` and `d`
      await store.applyPulledPage(crm, listingPage([upsert('a', '1', { givenName: 'a' })], 'l1', true))
      expect(await store.unlistedAfterFullListing(crm)).toBeUndefined() // still open
      await store.close()
      store = await ReplicaStore.open(db) // a restart between two pages
      await store.applyPulledPage(crm, listingPage([upsert('c', '2', { givenName: 'c' }), upsert('e', '1', { givenName: 'e' })], 'l2', false))
      expect((await store.unlistedAfterFullListing(crm))?.sort()).toEqual(['b', 'd'])
      expect(await listedKeys(db)).toHaveLength(2) // a record per page
      await store.recordConfirmedMissing(crm, [n('d')]) // the remote confirms `d` is gone; `b` is still there
      expect(await store.unlistedAfterFullListing(crm)).toBeUndefined()
      expect(await listedKeys(db)).toEqual([]) // the listing's page records go once it is checked
      expect((await store.readLog(crm, 0)).filter((e) => e.type === 'delete').map((e) => [e.nativeId, e.provenance])).toEqual([['d', 'resync']])
      // the next listing is checked on its own: `b` missing again
      await store.applyPulledPage(crm, listingPage([upsert('a', '1', { givenName: 'a' }), upsert('c', '2', { givenName: 'c' }), upsert('e', '1', { givenName: 'e' })], 'l3', false))
      expect(await store.unlistedAfterFullListing(crm)).toEqual(['b'])
    })

    test('a record listed unchanged costs no snapshot write: a page of them writes one record', async () => {
      const batches: number[] = []
      const { db } = await openMemoryStore()
      const store = await ReplicaStore.open(db, { beforeWrite: (ops) => void batches.push(ops) })
      const records = Array.from({ length: 20 }, (_, i) => upsert(`r${i}`, '1', { givenName: `R${i}` }))
      await store.applyPulledPage(crm, page(records, 'c1'))
      batches.length = 0
      await store.applyPulledPage(crm, listingPage(records, 'l1', false))
      expect(batches).toEqual([3]) // the listing's state, its page record and the cursor
      expect(await store.unlistedAfterFullListing(crm)).toEqual([])
    })

    test('a listing begun by an older store, which marked snapshots instead, still counts what those marked', async () => {
      const { db } = await openMemoryStore()
      let store = await ReplicaStore.open(db)
      await store.applyPulledPage(crm, page(['a', 'b'].map((id) => upsert(id, '1', { givenName: id }))))
      await store.close()
      await db.open()
      // as an older store left it: listing 1 open, `a` marked as listed in its snapshot
      const snapshot = JSON.parse((await db.get('v1!r!crm!snap!a'))!)
      await db.put('v1!r!crm!snap!a', JSON.stringify({ ...snapshot, listing: 1 }))
      await db.put('v1!r!crm!listing', JSON.stringify({ no: 1, open: true, confirmed: false }))
      store = await ReplicaStore.open(db)
      await store.applyPulledPage(crm, listingPage([], 'l2', false))
      expect(await store.unlistedAfterFullListing(crm)).toEqual(['b'])
    })
  })

  test('log compaction removes merged entries but sequence numbers continue', async () => {
    const { store } = await openMemoryStore()
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'A' }), upsert('b', '1', { givenName: 'B' })]))
    await store.compactLog(crm, 1)
    expect((await store.readLog(crm, 0)).map((e) => e.seq)).toEqual([2])
    await store.applyPulledPage(crm, page([upsert('c', '1', { givenName: 'C' })]))
    expect((await store.readLog(crm, 0)).map((e) => e.seq)).toEqual([2, 3])
  })
})

describe('ReplicaStore caches', () => {
  const mailbox = asReplicaId('mbx')
  const outboxEntry = (id: string, target = mailbox): OutboxEntry => ({
    pairId: pair,
    target,
    op: { opId: asOpId(`op-${id}`), type: 'create', concordId: asConcordId(id), kind: 'contact', fields: { givenName: id } },
    agreed: { givenName: id },
    attempts: 0,
    plannedAt: 0,
  })

  test('a page that changes nothing but the cursor writes nothing; its cursor goes out with the next write', async () => {
    let writes = 0
    const { db } = await openMemoryStore()
    const store = await ReplicaStore.open(db, { beforeWrite: () => void writes++ })
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })], 'c1'))
    const before = writes
    // the echo: same version, nothing new
    expect((await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })], 'c2'))).logged).toBe(0)
    expect(writes).toBe(before)
    expect(await store.getCursor(crm)).toBe('c2')
    expect(await db.get('v1!r!crm!cursor')).toBe('c1') // not yet durable: replaying from c1 is a no-op
    await store.commitPlan(pair, { outbox: [], bases: [], watermarks: { [crm]: 1 } })
    expect(await db.get('v1!r!crm!cursor')).toBe('c2')
    // and close() writes one still pending
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })], 'c3'))
    await store.close()
    await db.open()
    expect(await db.get('v1!r!crm!cursor')).toBe('c3')
  })

  test('with a tiny cache (constant eviction) every read still equals the database', async () => {
    const { db } = await openMemoryStore()
    const store = await ReplicaStore.open(db, { cacheEntries: 3 })
    for (let round = 1; round <= 3; round++) {
      const changes = Array.from({ length: 12 }, (_, i) => upsert(`r${i}`, String(round), { givenName: `G${i}-${round % 2}` }))
      await store.applyPulledPage(crm, page(changes, `c${round}`))
      await store.commitPlan(pair, { outbox: [outboxEntry(`x${round}`), outboxEntry(`y${round}`, crm)], bases: [], watermarks: { [crm]: round } })
      if (round > 1) await store.ackPush(outboxEntry(`x${round - 1}`), { opId: asOpId(`op-x${round - 1}`), nativeId: n(`m${round}`), version: v('1') })
    }
    const fresh = await ReplicaStore.open(db, { cacheEntries: 0 })
    const ids = Array.from({ length: 12 }, (_, i) => n(`r${i}`))
    expect(await store.getSnapshots(crm, ids)).toEqual(await fresh.getSnapshots(crm, ids))
    expect(await store.readLog(crm, 0)).toEqual(await fresh.readLog(crm, 0))
    expect(await store.readLog(crm, 20, 5)).toEqual(await fresh.readLog(crm, 20, 5))
    expect(await store.listOutbox(pair, mailbox)).toEqual(await fresh.listOutbox(pair, mailbox))
    expect((await store.listOutbox(pair, mailbox)).map((e) => e.op.concordId)).toEqual(['x3'])
    expect((await store.listOutbox(pair, crm)).map((e) => e.op.concordId)).toEqual(['y1', 'y2', 'y3'])
    const concordIds = ids.map((id) => concordIdFor(crm, id))
    expect(await store.getLinks(concordIds)).toEqual(await fresh.getLinks(concordIds))
  })

  test('the outbox listing stays current through plans, acks, failures and retirements', async () => {
    const { store, db } = await openMemoryStore()
    expect(await store.listOutbox(pair, mailbox)).toEqual([]) // listed (and cached) while empty
    await store.commitPlan(pair, { outbox: [outboxEntry('b'), outboxEntry('a')], bases: [], watermarks: {} })
    expect((await store.listOutbox(pair, mailbox)).map((e) => e.op.concordId)).toEqual(['a', 'b']) // key order
    const [a] = await store.listOutbox(pair, mailbox)
    await store.settlePushFailure(a!, new (await import('../errors.js')).SyncError('Transient', 'boom'), 'retry')
    expect((await store.listOutbox(pair, mailbox))[0]!.attempts).toBe(1)
    await store.commitPlan(pair, { outbox: [], bases: [], watermarks: {}, retire: [{ target: mailbox, concordId: asConcordId('b') }] })
    const fresh = await ReplicaStore.open(db, { cacheEntries: 0 })
    expect(await store.listOutbox(pair, mailbox)).toEqual(await fresh.listOutbox(pair, mailbox))
    expect((await store.listOutbox(pair, mailbox)).map((e) => e.op.concordId)).toEqual(['a'])
  })

  test('records kept as the written objects read back as the database holds them, shared and frozen', async () => {
    const { store, db } = await openMemoryStore()
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann', emails: ['ann@contoso.test'] }), upsert('b', '1', { givenName: 'Bo' })]))
    const a = concordIdFor(crm, n('a'))
    const explain = { at: 5, fields: { givenName: { field: 'givenName', value: 'Ann', crm: 'Ann', base: undefined, outcome: 'take-crm', rule: 'only crm changed' } } }
    const base = { kind: 'contact' as const, fields: { givenName: 'Ann' }, fieldVersions: { givenName: 1 }, versions: { [crm]: v('1') } }
    await store.commitPlan(pair, { outbox: [outboxEntry(a)], bases: [{ concordId: a, base }], watermarks: { [crm]: 2 }, explain: [{ concordId: a, record: explain }] })
    await store.ackPush(outboxEntry(a), { opId: asOpId(`op-${a}`), nativeId: n('m-a'), version: v('7'), fields: { givenName: 'Ann' } })
    await store.commitPlan(pair, { outbox: [outboxEntry('c')], bases: [], watermarks: {} })

    const fresh = await ReplicaStore.open(db, { cacheEntries: 0 })
    const reads = async (s: ReplicaStore) => ({
      snapshots: await s.getSnapshots(crm, [n('a'), n('b')]),
      echo: await s.getSnapshot(mailbox, n('m-a')),
      log: await s.readLog(crm, 0),
      links: await s.getLinks([a, concordIdFor(crm, n('b'))]),
      base: await s.getBase(pair, a),
      explain: await s.getExplain(pair, a),
      outbox: await s.listOutbox(pair, mailbox),
    })
    const cached = await reads(store)
    expect(cached).toEqual(await reads(fresh))
    expect(cached.base?.fieldVersions).toEqual({ givenName: 2 }) // the ack's base, not the plan's
    // every reader gets the same frozen record: changing one cannot change what the store holds
    for (const record of [cached.snapshots[0], cached.log[0], cached.links[0], cached.base, cached.explain, cached.outbox[0]]) expect(Object.isFrozen(record)).toBe(true)
    expect(() => ((cached.links[0]!.natives as Record<string, string>)[mailbox] = 'other')).toThrow(TypeError)
    expect(() => (cached.log[0]!.fields as Record<string, unknown[]>).emails!.push('x')).toThrow(TypeError)
    expect((await store.getLink(a))?.natives[mailbox]).toBe('m-a')
    expect(await store.getBase(pair, a)).toBe(cached.base)
  })

  test('ids that look like key words ("log", "out") are cached correctly', async () => {
    const { store, db } = await openMemoryStore()
    const logPair = asPairId('log')
    const outReplica = asReplicaId('out')
    await store.applyPulledPage(outReplica, page([upsert('log', '1', { givenName: 'L' })]))
    await store.commitPlan(logPair, { outbox: [], bases: [{ concordId: asConcordId('log'), base: { kind: 'contact', fields: { givenName: 'L' }, fieldVersions: {}, versions: {} } }], watermarks: { [outReplica]: 1 } })
    const fresh = await ReplicaStore.open(db, { cacheEntries: 0 })
    expect(await store.getBase(logPair, asConcordId('log'))).toEqual(await fresh.getBase(logPair, asConcordId('log')))
    expect(await store.getBase(logPair, asConcordId('log'))).toBeDefined()
    expect(await store.getSnapshot(outReplica, n('log'))).toEqual(await fresh.getSnapshot(outReplica, n('log')))
    expect(await store.readLog(outReplica, 0)).toEqual(await fresh.readLog(outReplica, 0))
  })
})

describe('ReplicaStore with pairs sharing a replica or an item', () => {
  test.each([false, true])('pages of one replica applied at the same time take distinct sequence numbers (group commit %s)', async (groupCommit) => {
    const { store } = await openMemoryStore({ groupCommit })
    // two pairs pull the same CRM replica at once, each a page the other has not seen yet
    const [first, second] = await Promise.all([
      store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })], 'cur-1')),
      store.applyPulledPage(crm, page([upsert('b', '1', { givenName: 'Bo' }), upsert('a', '1', { givenName: 'Ann' })], 'cur-2')),
    ])
    expect([first.logged, second.logged]).toEqual([1, 1])
    expect((await store.readLog(crm, 0)).map((e) => [e.seq, e.nativeId])).toEqual([
      [1, 'a'],
      [2, 'b'],
    ])
    expect(await store.headSeq(crm)).toBe(2)
    expect(await store.getCursor(crm)).toBe('cur-2')
  })

  test('two pairs acknowledging their copies of one item at the same time both keep their native id in its link', async () => {
    const { store } = await openMemoryStore()
    const concordId = asConcordId('c1')
    const create = (pairId: string, target: string): OutboxEntry => ({
      pairId: asPairId(pairId),
      target: asReplicaId(target),
      op: { opId: asOpId(`op-${pairId}`), type: 'create', concordId, kind: 'contact', fields: { givenName: 'Ann' } },
      agreed: { givenName: 'Ann' },
      sourceReplica: crm,
      sourceVersion: v('7'),
      attempts: 0,
      plannedAt: 0,
    })
    const a = create('pa', 'mbx-a')
    const b = create('pb', 'mbx-b')
    await store.commitPlan(a.pairId, { outbox: [a], bases: [], watermarks: {} })
    await store.commitPlan(b.pairId, { outbox: [b], bases: [], watermarks: {} })
    await Promise.all([store.ackPush(a, { opId: a.op.opId, nativeId: n('A1'), version: v('1') }), store.ackPush(b, { opId: b.op.opId, nativeId: n('B1'), version: v('1') })])
    expect((await store.getLink(concordId))?.natives).toEqual({ 'mbx-a': 'A1', 'mbx-b': 'B1' })
  })
})

describe('ReplicaStore under group commit', () => {
  test('writes are visible through the store at once and reach the database on flush, in one batch', async () => {
    let batches = 0
    const { store, db } = await openMemoryStore({ groupCommit: true, beforeWrite: () => void batches++ })
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })], 'cur-1'))
    await store.applyPulledPage(crm, page([upsert('b', '1', { givenName: 'Bo' })], 'cur-2'))
    expect((await store.getSnapshot(crm, n('b')))?.version).toBe('1')
    expect(await store.getCursor(crm)).toBe('cur-2')
    expect(await db.get(`v1!r!crm!cursor`)).toBeUndefined()
    const before = batches
    await store.flush()
    expect(batches).toBe(before + 1)
    expect(await db.get(`v1!r!crm!cursor`)).toBe('cur-2')
    await store.flush() // nothing pending: no batch
    expect(batches).toBe(before + 1)
  })

  test('a read that needs the database lands the pending writes first', async () => {
    const { store } = await openMemoryStore({ groupCommit: true })
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' }), upsert('b', '1', { givenName: 'Bo' })], 'cur-1'))
    expect((await store.listSnapshots(crm)).map((s) => s.nativeId)).toEqual(['a', 'b'])
    const fresh = await ReplicaStore.open((await openMemoryStore()).db)
    expect(await fresh.headSeq(crm)).toBe(0) // another database: nothing leaked
  })

  /** A group-commit store whose batches fail ('disk full') once `failFromNow()` was called. */
  async function storeWithFailingDisk() {
    let fail = false
    const { store } = await openMemoryStore({
      groupCommit: true,
      beforeWrite: () => {
        if (fail) throw new Error('disk full')
      },
    })
    return { store, failFromNow: () => void (fail = true) }
  }

  test('a failed flush refuses further use instead of serving what may not be stored', async () => {
    const { store, failFromNow } = await storeWithFailingDisk()
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })], 'cur-1'))
    failFromNow()
    await expect(store.flush()).rejects.toThrow('disk full')
    await expect(store.getSnapshot(crm, n('a'))).rejects.toThrow('disk full')
    await expect(store.getCursor(crm)).rejects.toThrow('disk full')
    await expect(store.applyPulledPage(crm, page([upsert('b', '1', { givenName: 'Bo' })], 'cur-2'))).rejects.toThrow('disk full')
  })

  test('with pairs sharing the store, a flush waits for the batch another flush is writing with its operations in it', async () => {
    const { db, raw, gates, release } = await gatedDatabase()
    const store = await ReplicaStore.open(db, { groupCommit: true }) // its format marker waits with the rest
    await store.commitPlan(asPairId('p1'), { outbox: [], bases: [], watermarks: { [crm]: 1 } })
    await store.commitPlan(asPairId('p2'), { outbox: [], bases: [], watermarks: { [crm]: 1 } })
    const first = store.flush() // takes both pairs' operations
    await ticks()
    const second = settled(store.flush()) // p2's own flush before its push: its operation is in the first batch
    await ticks()
    expect(gates).toHaveLength(1)
    expect(second()).toBe(false) // not durable yet: it must not return
    await release(0)
    await first
    await ticks()
    expect(second()).toBe(true)
    expect(await raw.get('v1!p!p2!mark!crm')).toBe('1')
  })

  test('with pairs sharing the store, batches land in the order they were written (a later value is never overwritten by an earlier one)', async () => {
    const { db, raw, gates, release } = await gatedDatabase()
    const store = await ReplicaStore.open(db, { groupCommit: true })
    await store.commitPlan(pair, { outbox: [], bases: [], watermarks: { [crm]: 1 } })
    const first = store.flush()
    await ticks()
    await store.commitPlan(pair, { outbox: [], bases: [], watermarks: { [crm]: 2 } })
    const second = store.flush()
    await ticks()
    // only one batch may be on its way at a time: the second starts once the first landed
    expect(gates).toHaveLength(1)
    await release(0)
    await first
    await ticks()
    expect(gates).toHaveLength(2)
    await release(1)
    await second
    expect(await raw.get('v1!p!p1!mark!crm')).toBe('2')
    expect(await store.getWatermark(pair, crm)).toBe(2)
  })

  test('closing the store while a batch of another pair is on its way lets that batch land first', async () => {
    const { db, raw, release } = await gatedDatabase()
    const store = await ReplicaStore.open(db, { groupCommit: true })
    await store.commitPlan(pair, { outbox: [], bases: [], watermarks: { [crm]: 7 } })
    const flushing = store.flush()
    await ticks()
    const closed = settled(store.close())
    await ticks()
    expect(closed()).toBe(false)
    await release(0)
    await flushing
    await ticks()
    expect(closed()).toBe(true)
    await raw.open()
    expect(await raw.get('v1!p!p1!mark!crm')).toBe('7')
  })

  test('with pairs sharing the store, a flush that waited for a failed batch reports its failure', async () => {
    const { store, failFromNow } = await storeWithFailingDisk()
    await store.commitPlan(pair, { outbox: [], bases: [], watermarks: { [crm]: 1 } })
    failFromNow()
    const [a, b] = await Promise.allSettled([store.flush(), store.flush()])
    expect(a.status).toBe('rejected')
    expect(b).toMatchObject({ status: 'rejected', reason: { message: 'disk full' } })
  })

  /** Pulls one record per page, `count` of them (each page writes its snapshot, link, head and cursor): enough to evict older keys from a small cache. */
  async function pullMany(store: ReplicaStore, count: number) {
    for (let i = 0; i < count; i++) await store.applyPulledPage(crm, page([upsert(`x${i}`, '1', { givenName: `X${i}` })], `cur-x${i}`))
  }

  test('a point read of a key the cache dropped does not wait for a batch of other keys on its way', async () => {
    const { db, gates, openGates, closeGates } = await gatedDatabase()
    openGates()
    const store = await ReplicaStore.open(db, { groupCommit: true, cacheEntries: 16 })
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })], 'cur-1'))
    await pullMany(store, 20) // the cache drops a's snapshot
    await store.flush() // everything written so far is in the database
    closeGates()
    await store.commitPlan(pair, { outbox: [], bases: [], watermarks: { [crm]: 1 } })
    store.flushInBackground()
    await ticks()
    expect(gates).toHaveLength(1) // that batch is on its way, held
    const read = store.getSnapshot(crm, n('a'))
    const done = settled(read)
    await ticks()
    expect(done()).toBe(true)
    expect((await read)?.version).toBe('1')
    openGates()
    expect(await store.getWatermark(pair, crm)).toBe(1)
  })

  test('a key the cache dropped while its write was pending is read after that write landed, never stale', async () => {
    const { store } = await openMemoryStore({ groupCommit: true, cacheEntries: 16 })
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })], 'cur-1'))
    await store.flush()
    await store.applyPulledPage(crm, page([upsert('a', '2', { givenName: 'Anna' })], 'cur-2'))
    await pullMany(store, 20) // the cache drops a's new snapshot before it was flushed
    expect((await store.getSnapshot(crm, n('a')))?.version).toBe('2')
  })

  test('flushInBackground writes without being waited for; a failure refuses the next write', async () => {
    const { store, failFromNow } = await storeWithFailingDisk()
    await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' })], 'cur-1'))
    failFromNow()
    store.flushInBackground()
    await ticks()
    await expect(store.applyPulledPage(crm, page([upsert('b', '1', { givenName: 'Bo' })], 'cur-2'))).rejects.toThrow('disk full')
    await expect(store.flush()).rejects.toThrow('disk full')
  })

  describe('closeKeepingCaches / resumeCaches', () => {
    /** A store with a log, snapshots, a cursor and a lazy cursor, closed with its caches. */
    async function closedStore() {
      const { store, db } = await openMemoryStore({ groupCommit: true, cacheEntries: 1000 })
      await store.applyPulledPage(crm, page([upsert('a', '1', { givenName: 'Ann' }), upsert('b', '1', { givenName: 'Bo' })], 'cur-1'))
      await store.applyPulledPage(crm, page([], 'cur-2')) // a page that changed nothing: its cursor is written lazily
      const caches = await store.closeKeepingCaches()
      return { db, caches }
    }

    test('stores resumed on copies read what the closed store held, and each goes its own way', async () => {
      const { db, caches } = await closedStore()
      const a = (await openMemoryStoreCopy(db, { groupCommit: true, cacheEntries: 1000, resumeCaches: caches })).store
      const b = (await openMemoryStoreCopy(db, { groupCommit: true, cacheEntries: 1000, resumeCaches: caches })).store
      for (const store of [a, b]) {
        expect(await store.getCursor(crm)).toBe('cur-2')
        expect(await store.headSeq(crm)).toBe(2)
        expect((await store.readLog(crm, 0)).map((e) => e.nativeId)).toEqual(['a', 'b'])
        expect((await store.getSnapshot(crm, n('a')))?.version).toBe('1')
      }
      await a.applyPulledPage(crm, page([upsert('a', '2', { givenName: 'Anna' })], 'cur-3'))
      expect(await a.headSeq(crm)).toBe(3)
      expect((await a.getSnapshot(crm, n('a')))?.version).toBe('2')
      expect(await b.headSeq(crm)).toBe(2)
      expect((await b.getSnapshot(crm, n('a')))?.version).toBe('1')
      expect(await b.getCursor(crm)).toBe('cur-2')
    })

    test('a resumed store serves what the closed one had cached without asking the database', async () => {
      const { db, caches } = await closedStore()
      const copy = await openMemoryStoreCopy(db, { groupCommit: true, cacheEntries: 1000, resumeCaches: caches })
      await copy.db.close() // any database read would now fail
      expect((await copy.store.getSnapshot(crm, n('b')))?.version).toBe('1')
      expect(await copy.store.getSnapshot(crm, n('never-written'))).toBeUndefined() // known absent
      expect(await copy.store.getCursor(crm)).toBe('cur-2')
      expect(await copy.store.headSeq(crm)).toBe(2)
      expect((await copy.store.readLog(crm, 1)).map((e) => e.nativeId)).toEqual(['b'])
    })

    test('caches sent as data (structured-cloned, as to another process) serve the same reads, their log entries frozen', async () => {
      const { db, caches } = await closedStore()
      const data = structuredClone(storeCachesToData(caches))
      const copy = await openMemoryStoreCopy(db, { groupCommit: true, cacheEntries: 1000, resumeCaches: storeCachesFromData(data) })
      await copy.db.close() // any database read would now fail
      expect((await copy.store.getSnapshot(crm, n('b')))?.version).toBe('1')
      expect(await copy.store.getSnapshot(crm, n('never-written'))).toBeUndefined()
      expect(await copy.store.getCursor(crm)).toBe('cur-2')
      const log = await copy.store.readLog(crm, 0)
      expect(log.map((e) => e.nativeId)).toEqual(['a', 'b'])
      expect(Object.isFrozen(log[0])).toBe(true)
    })

    test('with another cache size the caches are left out and reads go to the database', async () => {
      const { db, caches } = await closedStore()
      const store = (await openMemoryStoreCopy(db, { cacheEntries: 10, resumeCaches: caches })).store
      expect((await store.getSnapshot(crm, n('b')))?.version).toBe('1')
      expect(await store.getSnapshot(crm, n('zz'))).toBeUndefined()
      expect(await store.headSeq(crm)).toBe(2)
    })

    test('resuming on an empty database is refused', async () => {
      const { caches } = await closedStore()
      await expect(openMemoryStore({ resumeCaches: caches })).rejects.toThrow(/empty database/)
    })
  })
})
