export { ServiceError, ServiceErrorCodes } from './errors.js'
export type { ServiceErrorCode } from './errors.js'
export {
  DEFAULT_DOVECOT_USERS,
  DOVECOT_INSTALL_COMMAND,
  REDIS_INSTALL_COMMAND,
  SERVICES_DIR,
  containerRuntimeAvailable,
  freePort,
  freePorts,
  startLocalDovecot,
  startLocalRedis,
  useDovecot,
  useRedis,
  waitForPort,
} from './services.js'
export type {
  DovecotOptions,
  DovecotService,
  DovecotUser,
  RedisOptions,
  RedisService,
  ServiceOptions,
  ServiceVia,
  WaitForPortOptions,
} from './services.js'
export { startSmtpSink, type SmtpSink, type SinkMessage } from './smtp-sink.js'
