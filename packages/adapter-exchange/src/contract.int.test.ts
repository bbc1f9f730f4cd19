import { ItemKinds } from '@concord/engine'
import { runReplicaAdapterContract } from '@concord/engine/contract-suite'
import { afterAll, beforeAll } from 'vitest'
import { exchangeSampleFields, startEmulatorEnv, type EmulatorEnv } from './test/emulator-env.js'

let env: EmulatorEnv
beforeAll(async () => {
  env = await startEmulatorEnv()
})
afterAll(async () => {
  await env.close()
})

runReplicaAdapterContract('ExchangeAdapter against the Graph emulator (https)', async () => {
  env.em.control.reset()
  return {
    adapter: env.adapter(),
    kinds: ItemKinds,
    sampleFields: exchangeSampleFields,
    remote: { ...env.remote, expireCursors: async () => env.em.control.expireDeltaTokens() },
  }
})
