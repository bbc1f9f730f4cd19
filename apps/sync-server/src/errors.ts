/** The sync server's one error module: a closed set of codes, `cause` kept. */
export const ServerErrorCodes = ['Config', 'Usage', 'Auth', 'NotFound', 'BadRequest', 'LeaseLost', 'Mailbox', 'Internal'] as const
export type ServerErrorCode = (typeof ServerErrorCodes)[number]

export class ServerError extends Error {
  readonly code: ServerErrorCode
  constructor(code: ServerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ServerError'
    this.code = code
  }
}

/** A configuration problem; `key` is the dotted path of the offending setting. */
export class ConfigError extends ServerError {
  readonly key: string
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super('Config', `config ${key}: ${message}`, options)
    this.name = 'ConfigError'
    this.key = key
  }
}

/** A write was attempted by a holder whose lease on the mailbox is gone (fencing). */
export class LeaseLostError extends ServerError {
  constructor(message: string) {
    super('LeaseLost', message)
    this.name = 'LeaseLostError'
  }
}
