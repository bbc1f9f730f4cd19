/** Structured JSON logs (pino) with secrets redacted, shaped as the engine's `Logger`. */
import type { Logger } from '@concord/engine'
import { pino, type DestinationStream, type Level } from 'pino'

/** Paths pino censors wherever they appear (one and two levels deep). */
export const REDACTED_PATHS = [
  'clientSecret', '*.clientSecret', 'token', '*.token', 'accessToken', '*.accessToken', 'access_token', '*.access_token',
  'authorization', '*.authorization', 'headers.authorization', 'clientState', '*.clientState', 'password', '*.password',
]

export function createLogger(level: Level | 'silent', destination?: DestinationStream): pino.Logger {
  return pino({ level, base: { service: 'concord-sync-server' }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, destination)
}

/** The engine's `Logger` view of a pino logger. */
export function engineLogger(log: pino.Logger): Logger {
  return {
    debug: (obj, msg) => log.debug(obj, msg),
    info: (obj, msg) => log.info(obj, msg),
    warn: (obj, msg) => log.warn(obj, msg),
    error: (obj, msg) => log.error(obj, msg),
    child: (bindings) => engineLogger(log.child(bindings)),
  }
}
