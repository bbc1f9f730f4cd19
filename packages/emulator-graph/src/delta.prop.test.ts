/**
 * Property: whatever happens to a folder between rounds (creates, updates, deletes, moves in and out)
 * and whatever page sizes and duplicate/shuffle faults are used, a client that upserts items by id and
 * drops ids reported as @removed ends each completed round with exactly the folder's contents.
 * Replay a failure with PROP_SEED=<seed>.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, expect, test } from 'vitest'
import type { GraphEmulator } from './index.js'
import { A, type Client, setup } from './test/helpers.js'

let em: GraphEmulator
let c: Client

beforeAll(async () => {
  ;({ em, c } = await setup({ throttle: { requestsPerWindow: 1_000_000, concurrentRequests: 100 } }))
})
afterAll(async () => {
  await em.close()
})

type Op =
  | { t: 'create'; folder: 'inbox' | 'archive' }
  | { t: 'update'; pick: number }
  | { t: 'delete'; pick: number }
  | { t: 'move'; pick: number; to: 'inbox' | 'archive' }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('create' as const), folder: fc.constantFrom('inbox' as const, 'archive' as const) }),
  fc.record({ t: fc.constant('update' as const), pick: fc.nat() }),
  fc.record({ t: fc.constant('delete' as const), pick: fc.nat() }),
  fc.record({ t: fc.constant('move' as const), pick: fc.nat(), to: fc.constantFrom('inbox' as const, 'archive' as const) }),
)

const scenarioArb = fc.record({
  rounds: fc.array(fc.record({ ops: fc.array(opArb, { maxLength: 12 }), pageSize: fc.integer({ min: 1, max: 12 }) }), { minLength: 1, maxLength: 5 }),
  duplicates: fc.boolean(),
  shuffle: fc.boolean(),
  immutable: fc.boolean(),
})

test('delta rounds converge to the folder contents', async () => {
  // CI runs a fixed seed (a submission must not pass or fail by luck); local runs explore new cases.
  const seed = process.env['PROP_SEED'] !== undefined ? Number(process.env['PROP_SEED']) : process.env['CI'] ? 20261126 : Date.now() % 2 ** 31
  console.log(`delta.prop seed=${seed} (replay with PROP_SEED=${seed})`)
  await fc.assert(
    fc.asyncProperty(scenarioArb, async (sc) => {
      em.control.reset()
      em.control.setDuplicates(sc.duplicates)
      em.control.setShuffle(sc.shuffle)
      const prefer = sc.immutable ? 'IdType="ImmutableId"' : undefined
      const replica = new Map<string, string>()
      let link = `${em.url}/v1.0/users/${A}/mailFolders/inbox/messages/delta`
      let counter = 0
      for (const round of sc.rounds) {
        for (const op of round.ops) {
          const all = em.control.count(A, 'message') === 0 ? [] : [...(await listIds())]
          const target = all.length === 0 ? undefined : all[('pick' in op ? op.pick : 0) % all.length]
          if (op.t === 'create') em.control.seed(A, 'message', [{ subject: `s${counter++}` }], op.folder)
          else if (target === undefined) continue
          else if (op.t === 'update') em.control.updateItem(A, target, { subject: `s${counter++}` })
          else if (op.t === 'delete') em.control.deleteItem(A, target)
          else em.control.moveItem(A, target, op.to)
        }
        for (let page = 0; page < 10_000; page++) {
          const headers: Record<string, string> = { prefer: [`odata.maxpagesize=${round.pageSize}`, ...(prefer ? [prefer] : [])].join(', ') }
          const r = await c.get(link, headers)
          expect(r.status).toBe(200)
          for (const it of r.body.value as Array<{ id: string; subject?: string; '@removed'?: unknown }>) {
            if (it['@removed']) replica.delete(it.id)
            else replica.set(it.id, it.subject ?? '')
          }
          if (r.body['@odata.deltaLink']) {
            link = r.body['@odata.deltaLink']
            break
          }
          link = r.body['@odata.nextLink']
        }
        const truth = await c.get(`users/${A}/mailFolders/inbox/messages?$top=1000&$select=subject`, prefer ? { prefer } : {})
        const expected = new Map((truth.body.value as Array<{ id: string; subject: string }>).map((m) => [m.id, m.subject]))
        expect(new Map([...replica].sort())).toEqual(new Map([...expected].sort()))
      }
    }),
    { seed, numRuns: 25 },
  )
})

async function listIds(): Promise<string[]> {
  const ids: string[] = []
  for (const f of ['inbox', 'archive']) {
    const r = await c.get(`users/${A}/mailFolders/${f}/messages?$top=1000&$select=id`)
    ids.push(...(r.body.value as Array<{ id: string }>).map((m) => m.id))
  }
  return ids
}
