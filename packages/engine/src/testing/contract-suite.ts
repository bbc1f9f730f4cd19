/** The adapter contract suite (vitest). Imported by adapters' tests only. */
export { runReplicaAdapterContract, type ContractHarness } from './contract.js'
