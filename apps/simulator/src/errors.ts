/** Closed set of simulator error codes. `Usage` and `Trace` map to exit code 2. */
export const SimulatorErrorCodes = ['Usage', 'Trace', 'Import', 'Unsupported', 'Internal'] as const
export type SimulatorErrorCode = (typeof SimulatorErrorCodes)[number]

/** The one error type of the simulator. */
export class SimulatorError extends Error {
  override name = 'SimulatorError'
  constructor(
    readonly code: SimulatorErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }

  /** Process exit code for the CLI: 2 for bad input (options, trace, unsupported mode), 1 otherwise. */
  get exitCode(): number {
    return this.code === 'Internal' ? 1 : 2
  }
}

/** A malformed trace line; `line` is 1-based. */
export class TraceError extends SimulatorError {
  override name = 'TraceError'
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super('Trace', `${file}:${line}: ${detail}`)
  }
}
