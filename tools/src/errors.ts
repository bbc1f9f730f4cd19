/** Error codes raised by the test-service helpers. */
export const ServiceErrorCodes = [
  /** The server binary is missing; the message says exactly how to install it. */
  'NotInstalled',
  /** The environment names a service (e.g. REDIS_URL) with an invalid value. */
  'InvalidEnv',
  /** The environment names a service but nothing accepts connections there. */
  'EnvUnreachable',
  /** The start script or container failed; the message carries the log tail. */
  'StartFailed',
  /** A port did not accept connections within the allowed number of attempts. */
  'Timeout',
  /** Options passed to a helper are invalid. */
  'InvalidOptions',
  /** The operation is not possible for how the service was obtained (e.g. addUser on a container). */
  'Unsupported',
] as const
export type ServiceErrorCode = (typeof ServiceErrorCodes)[number]

/** The one error type of @concord/tools. */
export class ServiceError extends Error {
  override name = 'ServiceError'
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}
