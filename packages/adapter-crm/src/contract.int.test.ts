import { runReplicaAdapterContract } from '@concord/engine/contract-suite'
import { crmSampleFields, startCrmWorld } from '../test/harness.js'

runReplicaAdapterContract('CrmAdapter over the Dataverse emulator (HTTP)', async () => {
  const world = await startCrmWorld()
  return {
    adapter: world.adapter,
    kinds: ['contact', 'appointment', 'task', 'email'],
    sampleFields: crmSampleFields,
    remote: {
      create: (kind, fields) => world.createRemote(kind as never, fields),
      update: (nativeId, kind, patch) => world.updateRemote(nativeId, kind as never, patch),
      remove: (nativeId) => world.removeRemote(nativeId),
      expireCursors: async () => world.emu.admin.expireChangeTracking(),
    },
    teardown: () => world.close(),
  }
})
