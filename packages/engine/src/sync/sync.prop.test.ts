import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import type { PullPage, RemoteChange } from '../contract/replica-adapter.js'
import { asCursor, asNativeId, asReplicaId, asVersion } from '../ids.js'
import { openMemoryStore } from '../store/open-memory.js'
import { propConfig } from '../testing/prop-config.js'
import { type TwoReplicaWorld, checkConvergence, createTwoReplicaWorld, syncUntilQuiet } from '../testing/world.js'

const replica = asReplicaId('r')
/** A hang guard only: soaks with PROP_RUNS=20000 legitimately take minutes. */
const SOAK_TIMEOUT = 30 * 60_000

const changeArb: fc.Arbitrary<RemoteChange> = fc.oneof(
  fc.record({
    type: fc.constant('upsert' as const),
    nativeId: fc.integer({ min: 1, max: 6 }).map((i) => asNativeId(`n${i}`)),
    kind: fc.constant('task' as const),
    version: fc.integer({ min: 1, max: 4 }).map((i) => asVersion(`v${i}`)),
    fields: fc.record({ subject: fc.constantFrom('a', 'b', 'c') }, { requiredKeys: [] }),
  }),
  fc.record({ type: fc.constant('delete' as const), nativeId: fc.integer({ min: 1, max: 6 }).map((i) => asNativeId(`n${i}`)), provenance: fc.constant('user-deleted' as const) }),
)

async function applyPages(pages: PullPage[], times: (i: number) => number) {
  const { store } = await openMemoryStore()
  for (const [i, page] of pages.entries()) for (let k = 0; k < times(i); k++) await store.applyPulledPage(replica, page)
  return { log: (await store.readLog(replica, 0)).map(({ at: _at, ...rest }) => rest), snapshots: await store.listSnapshots(replica), cursor: await store.getCursor(replica) }
}

describe('properties', () => {
  test('replaying pulled pages is idempotent: the log, snapshots and cursor equal a single application', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(changeArb, { maxLength: 5 }), { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 6, maxLength: 6 }), async (pageChanges, repeats) => {
        // A page is replayed when its cursor write was lost or the remote resends it.
        const pages = pageChanges.map((changes, i) => ({ changes, nextCursor: asCursor(`c${i}`), hasMore: false }))
        expect(await applyPages(pages, (i) => repeats[i]!)).toEqual(await applyPages(pages, () => 1))
      }),
      propConfig(200),
    )
  }, SOAK_TIMEOUT)

  type Action =
    | { type: 'create'; side: 'crm' | 'mailbox'; kind: 'contact' | 'task'; text: string }
    | { type: 'update'; side: 'crm' | 'mailbox'; pick: number; text: string; field: 'a' | 'b' }
    | { type: 'delete'; side: 'crm' | 'mailbox'; pick: number }
    | { type: 'sync'; only?: 'crm' | 'mailbox' | undefined }

  const side = fc.constantFrom('crm' as const, 'mailbox' as const)
  const text = fc.constantFrom('x', 'y', 'z', 'w')
  const actionArb: fc.Arbitrary<Action> = fc.oneof(
    fc.record({ type: fc.constant('create' as const), side, kind: fc.constantFrom('contact' as const, 'task' as const), text }),
    fc.record({ type: fc.constant('update' as const), side, pick: fc.nat(), text, field: fc.constantFrom('a' as const, 'b' as const) }),
    fc.record({ type: fc.constant('delete' as const), side, pick: fc.nat() }),
    fc.record({ type: fc.constant('sync' as const), only: fc.constantFrom(undefined, 'crm' as const, 'mailbox' as const) }),
  )

  function apply(w: TwoReplicaWorld, action: Action) {
    if (action.type === 'sync') return
    const remote = action.side === 'crm' ? w.crm : w.mailbox
    if (action.type === 'create') {
      remote.create(action.kind, action.kind === 'contact' ? { givenName: action.text } : { subject: action.text })
      return
    }
    const live = remote.liveRecords()
    if (live.length === 0) return
    const record = live[action.pick % live.length]!
    if (action.type === 'delete') remote.remove(record.nativeId)
    else {
      const fieldName = record.kind === 'contact' ? (action.field === 'a' ? 'givenName' : 'jobTitle') : action.field === 'a' ? 'subject' : 'description'
      remote.update(record.nativeId, { [fieldName]: action.text })
    }
  }

  test('two replicas converge under random edits, random delivery and faults, and cycles that pull one side, with no duplicates', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 1_000_000 }), async (actions, seed) => {
        const { store } = await openMemoryStore()
        const w = createTwoReplicaWorld({ store, seed, pageLimit: 3, faults: { replayPage: 0.2, reorderAndDuplicate: 0.3, throttle: 0.1, loseAck: 0.1, expireCursor: 0.05 } })
        for (const action of actions) {
          apply(w, action)
          if (action.type === 'sync') {
            try {
              await w.pair.runCycle(undefined, action.only ? { pull: [action.only] } : {})
            } catch (error) {
              if ((error as { code?: string }).code !== 'Transient') throw error
            }
          }
        }
        await syncUntilQuiet(w, 200)
        const report = await checkConvergence(w)
        expect(report.problems).toEqual([])
        // No duplicates: each Concord id lives at most once per side.
        for (const remote of [w.crm, w.mailbox]) {
          const stamped = remote.liveRecords().flatMap((r) => (r.concordId ? [r.concordId] : []))
          expect(new Set(stamped).size).toBe(stamped.length)
        }
      }),
      propConfig(150),
    )
  }, SOAK_TIMEOUT)
})
