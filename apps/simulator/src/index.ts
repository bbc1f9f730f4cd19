/**
 * `@concord/simulator`: discrete-event simulation of Concord (real engine + real scheduler, or the
 * scheduler kernel alone) in virtual time, with a synthetic or replayed workload.
 */
export { POLICY_PROCESS_FLAGS, simulatorHeapLimitMb, relaunchWithFlags } from './process-flags.js'
export { planRealEngineRun, needsLargerHeap, storeCacheEntriesPerMailbox, REAL_ENGINE_BYTES_PER_MAILBOX_DAY, type MemoryDemand, type RunPlan } from './memory-budget.js'
export { simulate, type SimulationConfig, type SimulationReport, type PolicyReport, type SimulationHooks } from './simulate.js'
export { runPolicy, percentile, type RunOptions, type PolicyRun, type ConflictRule } from './run.js'
export { RunPrefixes, type BlockPlan, type ExportedBlock } from './sim-world.js'
export { generateWorkload, generateColumns, mergeColumns, columnsWorkload, trueRateFunction, TRUE_RATE_STEP_MS, activityProfile, sortEvents, eventColumns, eventCount, SIM_EPOCH, DAY, HOUR, MIN, type Workload, type WorkloadEvent, type WorkloadOp, type WorkloadSide, type GeneratorOptions, type EventColumns } from './workload.js'
export { parseTrace, readTrace, formatTrace, TraceLineSchema } from './trace.js'
export { importMailbox, splitMbox, parseHeaders, decodeEncodedWords, type MailImport } from './mail-import.js'
export { loadWorkload } from './load-workload.js'
export { SimulatorOptionsSchema, parseSimulatorOptions, toSimulationConfig, type SimulatorOptions } from './options.js'
export { resolveConflictPolicy, ConflictPolicyNames, type ConflictPolicyName, type ConflictPolicy } from './conflict-policies.js'
export { renderReportHtml } from './report-html.js'
export { formatSummary } from './format.js'
export { SimRemote, SimAdapter, GRAPH_LIMIT, DATAVERSE_LIMIT, type ServiceLimit } from './sim-remote.js'
export { SimulatorError, TraceError, SimulatorErrorCodes, type SimulatorErrorCode } from './errors.js'
export { main, type CliIo } from './cli.js'
export { runWirePolicy, wireWorkload, canonicalRecords, WIRE_MAX_MAILBOXES, WIRE_KINDS, WIRE_FIELDS, type FinalState } from './wire.js'
