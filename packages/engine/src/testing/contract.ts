import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import type { PushOp, RemoteChange, RemoteUpsert, ReplicaAdapter } from '../contract/replica-adapter.js'
import { latestByNativeId, pullAll } from './pull-helpers.js'
import { CursorExpiredError, PreconditionFailedError } from '../errors.js'
import { type ConcordId, type NativeId, type Version, asConcordId, asOpId } from '../ids.js'
import { type Fields, type ItemKind, parseFields } from '../model/item.js'

/** What an adapter's test file provides to the contract suite. */
export interface ContractHarness {
  adapter: ReplicaAdapter
  /** Kinds this replica syncs (an IMAP replica: only `email`). */
  kinds: readonly ItemKind[]
  /** Canonical fields the replica round-trips losslessly, per kind; used for creates. */
  sampleFields(kind: ItemKind, n: number): Fields
  /** A change a person makes on the remote side, outside Concord. */
  remote: {
    create(kind: ItemKind, fields: Fields): Promise<NativeId>
    update(nativeId: NativeId, kind: ItemKind, patch: Fields): Promise<void>
    remove(nativeId: NativeId, kind: ItemKind): Promise<void>
    /** Invalidate every cursor, if the remote supports it (Graph token eviction, Dataverse expiry). */
    expireCursors?: (() => Promise<void>) | undefined
  }
  teardown?: (() => Promise<void>) | undefined
}

let opCounter = 0
const nextOpId = () => asOpId(`contract-op-${Date.now().toString(36)}-${++opCounter}`)
const newConcordId = () => asConcordId(`contract-${Date.now().toString(36)}-${++opCounter}`)

/**
 * The behaviour every `ReplicaAdapter` promises, as a vitest suite. Each adapter's tests call it
 * with a factory that builds a fresh, isolated replica (an emulator mailbox, a Dovecot account…).
 */
export function runReplicaAdapterContract(name: string, setup: () => Promise<ContractHarness>): void {
  describe(`ReplicaAdapter contract: ${name}`, () => {
    let h: ContractHarness
    beforeEach(async () => {
      h = await setup()
    })
    afterEach(async () => {
      await h.teardown?.()
    })

    const upserts = (changes: readonly RemoteChange[]) => [...latestByNativeId(changes).values()].filter((c): c is RemoteUpsert => c.type === 'upsert')

    test('a null cursor lists every existing record with a version and valid canonical fields', async () => {
      const created: NativeId[] = []
      for (const kind of h.kinds) for (let i = 0; i < 3; i++) created.push(await h.remote.create(kind, h.sampleFields(kind, i)))
      const { changes } = await pullAll(h.adapter, null, 2)
      const seen = upserts(changes)
      for (const nativeId of created) {
        const record = seen.find((c) => c.nativeId === nativeId)
        expect(record, `record ${nativeId} listed`).toBeDefined()
        expect(record!.version).toBeTruthy()
        expect(() => parseFields(record!.kind, record!.fields)).not.toThrow()
      }
    })

    test('an incremental pull returns creates, updates and deletes made after the cursor, and nothing else', async () => {
      const kind = h.kinds[0]!
      const keep = await h.remote.create(kind, h.sampleFields(kind, 1))
      const change = await h.remote.create(kind, h.sampleFields(kind, 2))
      const gone = await h.remote.create(kind, h.sampleFields(kind, 3))
      const first = await pullAll(h.adapter, null)
      const added = await h.remote.create(kind, h.sampleFields(kind, 4))
      const patch = h.sampleFields(kind, 5)
      await h.remote.update(change, kind, patch)
      await h.remote.remove(gone, kind)
      const second = await pullAll(h.adapter, first.cursor)
      const latest = latestByNativeId(second.changes)
      expect(latest.get(added)?.type).toBe('upsert')
      expect(latest.get(change)?.type).toBe('upsert')
      expect(latest.get(gone)?.type).toBe('delete')
      const keepChange = latest.get(keep)
      if (keepChange) {
        // Replays are allowed, but only of the unchanged state.
        const before = upserts(first.changes).find((c) => c.nativeId === keep)
        expect(keepChange.type === 'upsert' && keepChange.version).toBe(before?.version)
      }
      const removed = latest.get(gone)
      expect(removed?.type === 'delete' && removed.provenance).toBeTruthy()
    })

    test('paging: small pages cover the whole round and the last page has hasMore=false', async () => {
      const kind = h.kinds[0]!
      const created = new Set<NativeId>()
      for (let i = 0; i < 7; i++) created.add(await h.remote.create(kind, h.sampleFields(kind, i)))
      const { pages, changes } = await pullAll(h.adapter, null, 2)
      expect(pages.at(-1)!.hasMore).toBe(false)
      const seen = new Set(changes.map((c) => c.nativeId))
      for (const id of created) expect(seen.has(id)).toBe(true)
    })

    test('replaying a cursor is harmless: the same or newer state comes back', async () => {
      const kind = h.kinds[0]!
      const first = await pullAll(h.adapter, null)
      const nativeId = await h.remote.create(kind, h.sampleFields(kind, 1))
      const a = await pullAll(h.adapter, first.cursor)
      const b = await pullAll(h.adapter, first.cursor)
      const va = latestByNativeId(a.changes).get(nativeId)
      const vb = latestByNativeId(b.changes).get(nativeId)
      expect(va?.type).toBe('upsert')
      expect(vb?.type).toBe('upsert')
    })

    test('push create is idempotent: a replayed create (same op, or same Concord id) makes no duplicate', async () => {
      for (const kind of h.kinds) {
        const concordId: ConcordId = newConcordId()
        const fields = h.sampleFields(kind, 7)
        const op: PushOp = { opId: nextOpId(), type: 'create', concordId, kind, fields }
        const first = await h.adapter.push([op])
        expect(first.rejected).toEqual([])
        expect(first.applied[0]?.nativeId).toBeTruthy()
        const replay = await h.adapter.push([op])
        expect(replay.applied[0]?.nativeId).toBe(first.applied[0]?.nativeId)
        const again = await h.adapter.push([{ ...op, opId: nextOpId() }])
        expect(again.applied[0]?.nativeId).toBe(first.applied[0]?.nativeId)
        const { changes } = await pullAll(h.adapter, null)
        const stamped = upserts(changes).filter((c) => c.concordId === concordId)
        expect(stamped).toHaveLength(1)
        expect(stamped[0]!.nativeId).toBe(first.applied[0]!.nativeId)
        for (const [key, value] of Object.entries(fields)) expect(stamped[0]!.fields[key], `${kind}.${key} round-trips`).toEqual(value)
      }
    })

    test('push update honours If-Match: a stale version is rejected with PreconditionFailedError', async () => {
      const kind = h.kinds[0]!
      const nativeId = await h.remote.create(kind, h.sampleFields(kind, 1))
      const listed = upserts((await pullAll(h.adapter, null)).changes).find((c) => c.nativeId === nativeId)!
      const concordId = listed.concordId ?? newConcordId()
      const ok = await h.adapter.push([{ opId: nextOpId(), type: 'update', concordId, kind, nativeId, fields: h.sampleFields(kind, 2), ifMatch: listed.version }])
      expect(ok.rejected).toEqual([])
      const newVersion = ok.applied[0]?.version as Version | undefined
      if (newVersion !== undefined) expect(newVersion).not.toBe(listed.version)
      const stale = await h.adapter.push([{ opId: nextOpId(), type: 'update', concordId, kind, nativeId, fields: h.sampleFields(kind, 3), ifMatch: listed.version }])
      expect(stale.applied).toEqual([])
      expect(stale.rejected[0]?.error).toBeInstanceOf(PreconditionFailedError)
    })

    test('push delete is idempotent: deleting a record that is already gone counts as applied', async () => {
      const kind = h.kinds[0]!
      const nativeId = await h.remote.create(kind, h.sampleFields(kind, 1))
      const concordId = newConcordId()
      const op: PushOp = { opId: nextOpId(), type: 'delete', concordId, kind, nativeId, provenance: 'user-deleted' }
      expect((await h.adapter.push([op])).rejected).toEqual([])
      expect((await h.adapter.push([{ ...op, opId: nextOpId() }])).rejected).toEqual([])
      const { changes } = await pullAll(h.adapter, null)
      expect(upserts(changes).some((c) => c.nativeId === nativeId)).toBe(false)
    })

    test('push delete honours If-Match: stale is rejected with PreconditionFailedError, current deletes, already gone counts as applied', async () => {
      const kind = h.kinds[0]!
      const nativeId = await h.remote.create(kind, h.sampleFields(kind, 1))
      const seen = upserts((await pullAll(h.adapter, null)).changes).find((c) => c.nativeId === nativeId)!
      await h.remote.update(nativeId, kind, h.sampleFields(kind, 2)) // a person edits it after our pull
      const concordId = seen.concordId ?? newConcordId()
      const deleteOp = (ifMatch: Version): PushOp => ({ opId: nextOpId(), type: 'delete', concordId, kind, nativeId, provenance: 'user-deleted', ifMatch })
      const stale = await h.adapter.push([deleteOp(seen.version)])
      expect(stale.applied).toEqual([])
      expect(stale.rejected[0]?.error).toBeInstanceOf(PreconditionFailedError)
      const current = upserts((await pullAll(h.adapter, null)).changes).find((c) => c.nativeId === nativeId)
      expect(current, 'the refused delete left the record').toBeDefined()
      expect(current!.version).not.toBe(seen.version)
      const ok = await h.adapter.push([deleteOp(current!.version)])
      expect(ok.rejected).toEqual([])
      expect(ok.applied).toHaveLength(1)
      const gone = await h.adapter.push([deleteOp(current!.version)])
      expect(gone.rejected).toEqual([])
      expect(gone.applied).toHaveLength(1)
      expect(upserts((await pullAll(h.adapter, null)).changes).some((c) => c.nativeId === nativeId)).toBe(false)
    })

    test('an expired cursor raises CursorExpiredError, and a null cursor then lists everything again', async (ctx) => {
      if (!h.remote.expireCursors) return ctx.skip()
      const kind = h.kinds[0]!
      const nativeId = await h.remote.create(kind, h.sampleFields(kind, 1))
      const first = await pullAll(h.adapter, null)
      await h.remote.expireCursors()
      await expect(pullAll(h.adapter, first.cursor)).rejects.toBeInstanceOf(CursorExpiredError)
      const again = await pullAll(h.adapter, null)
      expect(upserts(again.changes).some((c) => c.nativeId === nativeId)).toBe(true)
    })
  })
}
