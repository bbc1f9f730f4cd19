export { CrmAdapter, nativeIdOf, parseNativeId, odataString, recordMetaOf, type AddressResolver, type CrmRecordMeta } from './crm-adapter.js'
export { CrmAdapterOptionsSchema, parseCrmAdapterOptions, CrmKinds, type CrmKind, type CrmAdapterOptions, type CrmAdapterOptionsInput, type CrmAdapterDeps } from './options.js'
export { type OwnerMasks, type FieldMask, type RecordAccess, type CrmPrivilegeReport, toCrmPrivilegeReport, SYNC_PRIVILEGE, SEND_AS_PRIVILEGE } from './masks.js'
export { FieldSecurityReader, computeColumnPermissions, SYSADMIN_FIELD_PROFILE_ID, SYSTEM_ADMINISTRATOR_ROLE_TEMPLATE_ID, FIELD_ALLOWED, type ColumnPermission, type FieldPermissionRow } from './field-security.js'
export { classifyFailure, parseErrorBody, retryAfterMs, EXPIRED_VERSION_STAMP_CODE, type DataverseFailure } from './errors.js'
export { TABLES, LINK_COLUMN, PARTY, REGARDING_SETS, rowToFields, fieldsToPayload, selectColumns } from './mapping.js'
export { toUtcInstant, fromUtcInstant } from './time.js'
export { buildBatch, parseBatchResponse, type BatchRequest, type BatchResponse } from './batch.js'
export { correlateEmail, extractTrackingToken, normalizeSubject, addressOverlap, CorrelationMethodCodes, IncomingEmailSchema, type CorrelationMethod, type CorrelationResult, type CorrelationOptions, type IncomingEmail } from './correlation.js'
export {
  shouldTrack,
  getAutoTrackOption,
  trackingLookups,
  trackItem,
  setRegarding,
  stopTracking,
  AutoTrackOptions,
  DEFAULT_AUTO_TRACK,
  FILTERING_METHOD,
  EmailHeaderInfoSchema,
  TrackingLookupsSchema,
  type AutoTrackOption,
  type EmailHeaderInfo,
  type TrackingLookups,
  type TrackDecision,
  type TrackInput,
  type TrackResult,
  type StopTrackingResult,
  type TrackableKind,
} from './tracking.js'
export { CrmServiceOptionsSchema, parseCrmServiceOptions, whoAmI, type WhoAmIResult, type CrmServiceOptions, type CrmServiceOptionsInput, type CrmServiceDeps } from './service.js'
export {
  MailboxDirectory,
  syncEligibility,
  writeAlert,
  MailboxRowSchema,
  MAILBOX_COLUMNS,
  EmailServerProfileRowSchema,
  SERVER_TYPE,
  APPROVAL,
  TEST_STATUS,
  INCOMING_DELIVERY,
  OUTGOING_DELIVERY,
  ACT_DELIVERY,
  ALERT_LEVEL,
  Workloads,
  EligibilityOptionsSchema,
  TestResultSchema,
  SyncOutcomeSchema,
  AlertSchema,
  DisableReasonSchema,
  type MailboxRow,
  type EmailServerProfileRow,
  type SyncEligibility,
  type EligibilityOptions,
  type Workload,
  type TestOutcome,
  type TestResult,
  type SyncOutcome,
  type AlertInput,
  type DisableReason,
  type MailboxAlert,
} from './mailbox-directory.js'
export { OutgoingEmailQueue, EMAIL_STATUS, MarkSentSchema, type PendingEmail, type EmailParty, type ClaimResult, type MarkSent, type MarkFailedOptions } from './outgoing-email.js'
