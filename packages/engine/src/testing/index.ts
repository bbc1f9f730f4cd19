/**
 * Test doubles and harnesses for replicas: fakes with fault injection, the crash harness, the
 * convergence checker. Free of any test runner, so simulators and demos can use the fakes at run
 * time. The vitest contract suite is `@concord/engine/contract-suite`.
 */
export { pullAll, latestByNativeId } from './pull-helpers.js'
export { MemoryRemote, MemoryReplicaAdapter, type MemoryFaults, type MemoryRemoteState, type MemoryAdapterState, type RemoteRecord } from './memory-replica.js'
export { seededRandom } from '../util/random.js'
export { sampleFields } from './sample-fields.js'
export { createTwoReplicaWorld, checkConvergence, syncUntilQuiet, beforeFirstDeletePush, CRM_REPLICA, MAILBOX_REPLICA, type TwoReplicaWorld, type WorldOptions, type ConvergenceReport } from './world.js'
export { runWithCrash, SimulatedCrash, type CrashScenario, type CrashRunResult } from './crash-harness.js'
export { propConfig } from './prop-config.js'
