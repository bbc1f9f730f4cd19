/** Console-shaped logger; pino and console both fit. Libraries log only through this. */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  child?(bindings: object): Logger
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }
