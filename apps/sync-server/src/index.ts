/**
 * `@concord/sync-server`: Concord's server-side synchronization runtime — mailbox lifecycle from the
 * CRM, the scheduler loop, leases, push, admin API and metrics.
 */
export { SyncServer, type SyncServerOptions, type MailboxSummary, type MailboxTester } from './server.js'
export { ServerConfigSchema, parseServerConfig, loadServerConfig, type ServerConfig, type ServerConfigInput, type SecretInput } from './config.js'
export { ServerError, ConfigError, LeaseLostError, ServerErrorCodes, type ServerErrorCode } from './errors.js'
export { InProcessLeases, Fence, type Lease, type LeaseManager } from './lease.js'
export { ServerMetrics } from './metrics.js'
export { createLogger, engineLogger, REDACTED_PATHS } from './logging.js'
export { AlertCodes, type AlertCode, type MailboxDirectoryPort, type MailboxRow, type Eligibility, type MailboxAlert, type TestStatus } from './mailbox/directory.js'
export { CrmMailboxDirectory, type CrmDirectoryOptions } from './mailbox/crm-directory.js'
export { graphMailboxTester, type GraphTesterOptions } from './mailbox/graph-tester.js'
export { MailboxWorker, isPermanentFailure, type MailboxDescriptor, type CycleOutcome } from './mailbox/mailbox-worker.js'
export { SyncLoop, type SyncLoopOptions, type SyncRunResult } from './sync-loop.js'
export { ServerStateStore, type MailboxState, type HistoryEntry, type SendJournalEntry, type DirectionOverrides } from './state-store.js'
export { startDemo, type Demo, type DemoOptions } from './demo.js'
export { main } from './cli.js'
export { attachClientSync, ClientSync, ClientSyncOptionsSchema, type ClientSyncOptions, type ClientSyncSettings } from './client-sync/client-sync.js'
export { crmRequestHandlers, type UserCrm } from './client-sync/handlers.js'
export { ClientTokenStore, LevelDesignationStore, LevelIntervalStore, KeyedMutex, hashToken, type ClientTokenInfo } from './client-sync/stores.js'
