import { asReplicaId } from '../ids.js'
import { ItemKinds } from '../model/item.js'
import { runReplicaAdapterContract } from './contract.js'
import { MemoryRemote, MemoryReplicaAdapter } from './memory-replica.js'
import { sampleFields } from './sample-fields.js'

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
