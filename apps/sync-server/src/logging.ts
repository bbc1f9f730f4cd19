/** Structured JSON logs (pino) with secrets redacted, shaped as the engine's `Logger`. */
import type { Logger } from '@concord/engine'
import { pino, type DestinationStream, type Level } from 'pino'

const SECRET_KEYS = ['clientSecret', 'token', 'accessToken', 'access_token', 'authorization', 'clientState', 'password', 'smtpPassword']
/** Secret keys pino censors at the top level and up to three levels deep. */
export const REDACTED_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`])

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
