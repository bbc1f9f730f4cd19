import type { z } from 'zod'

/**
 * The closed set of scheduler error codes. Stable: the simulator and metrics key on them.
 *
 * - `Config`: the scheduler configuration (or a mailbox's info) failed validation.
 * - `InvalidInput`: a call argument is malformed (negative count, NaN time, …); the message names the field.
 * - `UnknownMailbox`: the mailbox id was never added, or was removed.
 * - `DuplicateMailbox`: `addMailbox` was called twice for one id.
 * - `TimeWentBackwards`: a call carried a virtual time earlier than one already seen.
 */
export const SchedulerErrorCodes = ['Config', 'InvalidInput', 'UnknownMailbox', 'DuplicateMailbox', 'TimeWentBackwards'] as const
/** One of {@link SchedulerErrorCodes}. */
export type SchedulerErrorCode = (typeof SchedulerErrorCodes)[number]

/** The one error type of `@concord/scheduler`. The original failure, if any, is kept in `cause`. */
export class SchedulerError extends Error {
  override name = 'SchedulerError'
  constructor(
    readonly code: SchedulerErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

/** Configuration failed zod validation; `issues` holds the zod issues, the message names fields and values. */
export class SchedulerConfigError extends SchedulerError {
  override name = 'SchedulerConfigError'
  constructor(
    message: string,
    readonly issues: readonly z.core.$ZodIssue[],
    options?: ErrorOptions,
  ) {
    super('Config', message, options)
  }
}
