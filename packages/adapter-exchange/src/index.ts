export { ExchangeAdapter } from './adapter.js'
export {
  ExchangeAdapterOptionsSchema,
  parseExchangeOptions,
  CONCORD_PROPERTY_ID,
  IN_REPLY_TO_PROPERTY_ID,
  CONCORD_APPLICATION,
  REGARDING_APPLICATION,
  TRANSACTION_PREFIX,
  type ExchangeAdapterOptions,
  type ExchangeAdapterDeps,
  type ResolvedExchangeOptions,
} from './options.js'
export { ClientCredentialsAuthProvider, type ClientCredentialsOptions } from './auth.js'
export { classifyGraphFailure, parseRetryAfter, DEFAULT_RETRY_AFTER_MS, type GraphFailure } from './errors.js'
export { fromGraph, toGraph, normaliseLocalDateTime, utcToZone, type MappedRecord } from './mapping.js'
export { encodeNativeId, decodeNativeId, type DecodedNativeId } from './native-id.js'
export {
  SubscriptionManager,
  validationTokenOf,
  NotificationBodySchema,
  type NotificationResult,
  type NotificationListener,
  type SubscriptionOptions,
  type ActiveSubscription,
  type LifecycleEventName,
  SubscriptionStateSchema,
  type SubscriptionState,
  type RestoreOptions,
  type RestoreReport,
} from './subscriptions.js'
export { createTrustedFetch, type TrustedFetch } from './trusted-fetch.js'
export { MailSender, OutgoingMailSchema, CRM_ID_PROPERTY_ID, MAX_RECIPIENTS_PER_MESSAGE, type OutgoingMail, type SendResult, type MailSenderOptions } from './mail-sender.js'
export { SendBudget, SendLimitsSchema, type SendLimits, type SendLimitsInput, type Reservation } from './send-budget.js'
export { testMailboxAccess, type MailboxAccessReport, type WorkloadResult, type WorkloadTestStatus, type AccessCheck } from './mailbox-test.js'
