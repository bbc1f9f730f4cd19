/**
 * `@concord/scheduler`: decides when to sync which mailbox — the `fixed`, `sss` and `oracle` baselines
 * and Concord's `adaptive` policy. Pure: virtual time in ms is passed in, no I/O, no timers.
 */
export { createScheduler } from './scheduler.js'
export type { Scheduler, DueSync, MailboxId, MailboxView, SchedulerStats } from './scheduler.js'
export {
  SchedulerConfigSchema,
  PolicyNameSchema,
  BudgetSchema,
  LimitsSchema,
  SssOptionsSchema,
  AdaptiveOptionsSchema,
  OracleOptionsSchema,
  MailboxInfoSchema,
  PollResultSchema,
} from './config.js'
export type {
  SchedulerConfig,
  SchedulerConfigInput,
  PolicyName,
  Budget,
  Limits,
  SssOptions,
  AdaptiveOptions,
  OracleOptions,
  TrueRateFn,
  MailboxInfo,
  MailboxInfoInput,
  PollResult,
} from './config.js'
export { SchedulerError, SchedulerConfigError, SchedulerErrorCodes } from './errors.js'
export type { SchedulerErrorCode } from './errors.js'
export { SyncReasons, ExplainEvents } from './explain-log.js'
export type { SyncReason, ExplainEvent, ExplainEntry } from './explain-log.js'
export { mulberry32 } from './rng.js'
export { solveSqrtAllocation } from './estimator.js'
export { evaluatePolicies, evaluatePolicy, createWorkload, weekdayProfile, formatEvaluation } from './evaluate.js'
export type { EvaluationOptions, EvaluationReport, PolicyEvaluation, Workload } from './evaluate.js'
