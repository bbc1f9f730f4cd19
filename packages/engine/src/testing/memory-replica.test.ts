import { describe, expect, test } from 'vitest'
import { asReplicaId } from '../ids.js'
import { ItemKinds } from '../model/item.js'
import { runReplicaAdapterContract } from './contract.js'
import { MemoryRemote, MemoryReplicaAdapter } from './memory-replica.js'
import { sampleFields } from './sample-fields.js'
import { deepFreeze } from '../util/deep-freeze.js'
import { seededRandom } from '../util/random.js'

runReplicaAdapterContract('MemoryReplicaAdapter', async () => {
  const remote = new MemoryRemote('mem')
  return {
    adapter: new MemoryReplicaAdapter(asReplicaId('mem'), remote),
    kinds: ItemKinds,
    sampleFields,
    remote: {
      create: async (kind, fields) => remote.create(kind, fields),
      update: async (nativeId, _kind, patch) => void remote.update(nativeId, patch),
      remove: async (nativeId) => remote.remove(nativeId),
      expireCursors: async () => remote.expireCursors(),
    },
  }
})

describe('clone', () => {
  test('a cloned remote and adapter continue exactly where the originals are, independently', async () => {
    const remote = new MemoryRemote('mem')
    const faults = { replayPage: 0.5, reorderAndDuplicate: 0.5 }
    const adapter = new MemoryReplicaAdapter(asReplicaId('mem'), remote, { faults, seed: 7 })
    for (let i = 0; i < 6; i++) remote.create('contact', { surname: `S${i}` })
    const first = await adapter.pull(null, { limit: 3 })
    let t = 1000
    const copyRemote = remote.clone(() => t)
    const copy = adapter.clone(copyRemote)
    // the same next pages, fault draws included
    expect(await copy.pull(first.nextCursor, { limit: 3 })).toEqual(await adapter.pull(first.nextCursor, { limit: 3 }))
    expect(copy.injected).toEqual(adapter.injected)
    // writes to one do not reach the other; the copy's timestamps come from its clock
    const id = [...copyRemote.records.keys()][0]!
    copyRemote.update(id, { surname: 'Changed' })
    t = 2000
    copyRemote.create('contact', { surname: 'Only in the copy' })
    expect(remote.get(id)!.fields.surname).toBe('S0')
    expect(copyRemote.get(id)!.modifiedAt).toBe(1000)
    expect(remote.liveRecords()).toHaveLength(6)
    expect(copyRemote.liveRecords()).toHaveLength(7)
    expect(copyRemote.headSeq).toBe(remote.headSeq + 2)
  })

  test('a remote and an adapter rebuilt from their exported state (structured-cloned) continue exactly where the originals are', async () => {
    const remote = new MemoryRemote('mem')
    const adapter = new MemoryReplicaAdapter(asReplicaId('mem'), remote, { faults: { replayPage: 0.5, reorderAndDuplicate: 0.5 }, seed: 9 })
    for (let i = 0; i < 6; i++) remote.create('contact', { surname: `S${i}` })
    const first = await adapter.pull(null, { limit: 3 })
    const copyRemote = MemoryRemote.fromState(structuredClone(remote.exportState()), () => 5)
    const copy = MemoryReplicaAdapter.fromState(structuredClone(adapter.exportState()), copyRemote)
    expect(await copy.pull(first.nextCursor, { limit: 3 })).toEqual(await adapter.pull(first.nextCursor, { limit: 3 }))
    expect(copy.injected).toEqual(adapter.injected)
    const id = [...copyRemote.records.keys()][0]!
    expect(Object.isFrozen(copyRemote.get(id)!.fields)).toBe(true)
    copyRemote.update(id, { surname: 'Changed' })
    expect(remote.get(id)!.fields.surname).toBe('S0')
    expect(copyRemote.get(id)!.modifiedAt).toBe(5)
    expect(copyRemote.create('contact', {})).toBe(remote.create('contact', {})) // the same next native id
  })

  test('written fields: a frozen object is kept as it is, an unfrozen one copied and frozen all the way down', () => {
    const remote = new MemoryRemote('mem')
    const frozen = deepFreeze({ subject: 'Hello', to: [{ address: 'a@b.test' }] })
    expect(remote.get(remote.create('email', frozen))!.fields).toBe(frozen)
    const mine = { subject: 'Mine', to: [{ address: 'c@d.test' }] }
    const id = remote.create('email', mine)
    const kept = remote.get(id)!.fields as typeof mine
    expect(kept).not.toBe(mine)
    expect(Object.isFrozen(kept.to[0])).toBe(true)
    mine.to[0]!.address = 'changed@d.test' // the writer's object stays its own
    expect(kept.to[0]!.address).toBe('c@d.test')
    const to = deepFreeze([{ address: 'e@f.test' }])
    remote.update(id, deepFreeze({ to }))
    expect(remote.get(id)!.fields.to).toBe(to)
    expect(Object.isFrozen(remote.get(id)!.fields)).toBe(true)
  })

  test('seededRandom(state()) continues the same draws', () => {
    const random = seededRandom(42)
    random()
    const resumed = seededRandom(random.state())
    expect([resumed(), resumed()]).toEqual([random(), random()])
  })

  test('seededRandom.fork continues the same draws independently', () => {
    const random = seededRandom(42)
    random()
    const fork = random.fork()
    const ahead = [random(), random(), random()]
    expect([fork(), fork(), fork()]).toEqual(ahead)
  })
})
