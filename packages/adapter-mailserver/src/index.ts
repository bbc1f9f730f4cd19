export { MailServerAdapter, type MailServerAdapterDeps, type MessageProblem } from './adapter.js'
export { MailServerError, MailServerErrorReasons, type MailServerErrorReason } from './errors.js'
export { FileSendLedger, MemorySendLedger, SendLedgerEntrySchema, type SendLedger, type SendLedgerEntry } from './ledger.js'
export {
  CONCORD_ID_HEADER,
  categoryToKeyword,
  keywordToCategory,
  nativeIdFor,
  normalizeMessageId,
  parseMessage,
  composeMessage,
  type MessageIssue,
  type ParsedEmail,
} from './mime.js'
export {
  ImapIncomingSchema,
  MailServerOptionsSchema,
  Pop3IncomingSchema,
  SmtpOutgoingSchema,
  parseMailServerOptions,
  type ImapIncoming,
  type MailServerOptions,
  type MailServerOptionsInput,
  type Pop3Incoming,
  type SmtpOutgoing,
} from './options.js'
