import { AddressSchema, DeleteProvenances, ItemKindSchema, RegardingSchema, SyncErrorCodes } from '@concord/engine'
import { z } from 'zod'
import { OutlookProtocolError, ProtocolErrorCodes } from './errors.js'

/**
 * The client-sync protocol, version 2: JSON text frames over one WebSocket per Outlook client.
 * Every frame is one object with a `type`. Requests carry an `id` (chosen by the sender, at most
 * 64 characters) and are answered by a `result` or an `error` with the same `id`. See README.md.
 *
 * Version 2 adds the sync scope: the item kinds the user's sync client syncs (the server syncs the
 * others server-side, e.g. e-mail when incoming e-mail is delivered by server-side sync). It is in
 * `welcome.syncKinds`, in every `pull` (`kinds`), and in a `syncScope` notification when it changes.
 * A server still accepts version 1 clients (no scope on the wire; the server refuses what is out of
 * scope, `out_of_scope`).
 */
export const PROTOCOL_VERSION = 2
/** The versions a server accepts in `hello`; it answers `welcome` in the client's version. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1, 2]
/** Default maximum size of one frame, in bytes (UTF-8). Larger frames close the connection with 1009. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024
/** WebSocket close codes this protocol uses. */
export const CloseCodes = {
  normal: 1000,
  /** Handshake refused: bad token, unsupported version, no `hello` in time. */
  policy: 1008,
  /** A frame exceeded the maximum frame size. */
  tooLarge: 1009,
  internal: 1011,
} as const

const RequestId = z.string().min(1).max(64)
/** A client id: stable per Outlook installation, safe in store keys. */
export const ClientIdSchema = z.string().regex(/^[A-Za-z0-9._:-]{1,64}$/, 'expected 1–64 characters of A–Z a–z 0–9 . _ : -')
const FencingToken = z.number().int().nonnegative()
const Minutes = z.number().positive().max(7 * 24 * 60)
const WireFields = z.record(z.string().max(128), z.unknown())
const CrmId = z.string().min(1).max(128)
const UserId = z.string().min(1).max(256)

// ---------------------------------------------------------------------------------------------
// Client → server
// ---------------------------------------------------------------------------------------------

export const HelloSchema = z.strictObject({
  type: z.literal('hello'),
  protocol: z.number().int().positive(),
  token: z.string().min(1).max(8192),
  clientId: ClientIdSchema,
  clientName: z.string().max(256).optional(),
  /**
   * False for a client that never syncs items (the App for Outlook task pane): it is never designated
   * automatically and may not `designate`. Default true.
   */
  syncItems: z.boolean().optional(),
})

/** Only these four fields leave the client for the should-track check (privacy, §5.8). */
export const ShouldTrackInputSchema = z.strictObject({
  from: AddressSchema,
  to: z.array(AddressSchema).max(1000),
  cc: z.array(AddressSchema).max(1000),
  subject: z.string().max(2000),
})
export type ShouldTrackInput = z.infer<typeof ShouldTrackInputSchema>

export const TrackInputSchema = z.strictObject({
  kind: ItemKindSchema,
  fields: WireFields,
  /** Links the new CRM activity to a record at once (Set Regarding while tracking). */
  regarding: RegardingSchema.optional(),
  /** The Concord id to stamp on the CRM record, so a later sync links instead of duplicating. */
  concordId: z.string().min(1).max(128).optional(),
})
export type TrackInput = z.infer<typeof TrackInputSchema>

export const SetRegardingInputSchema = z.strictObject({ crmId: CrmId, regarding: RegardingSchema })
export type SetRegardingInput = z.infer<typeof SetRegardingInputSchema>
export const StopTrackingInputSchema = z.strictObject({ crmId: CrmId })
export type StopTrackingInput = z.infer<typeof StopTrackingInputSchema>
export const AddContactInputSchema = z.strictObject({ sender: AddressSchema })
export type AddContactInput = z.infer<typeof AddContactInputSchema>

export const LookupInputSchema = z.discriminatedUnion('mode', [
  /** Lightweight mode: only the CRM ids of the user's records of a kind. */
  z.strictObject({ mode: z.literal('ids'), kind: ItemKindSchema, userId: UserId.optional() }),
  /** Details on demand, for ids the user chose. */
  z.strictObject({ mode: z.literal('details'), crmIds: z.array(CrmId).min(1).max(100), userId: UserId.optional() }),
])
export type LookupInput = z.infer<typeof LookupInputSchema>

/** App for Outlook: the CRM view of one open e-mail (its parties, and the CRM e-mail tracked for it). */
export const ItemInfoInputSchema = z.strictObject({
  /** The e-mail's Internet message id (finds the tracked CRM e-mail); absent for an unsent draft. */
  internetMessageId: z.string().min(1).max(998).optional(),
  /** Sender and recipient addresses to resolve to CRM records. */
  addresses: z.array(z.string().min(1).max(320)).max(200),
})
export type ItemInfoInput = z.infer<typeof ItemInfoInputSchema>
/** App for Outlook's Set Regarding: CRM records (contacts, accounts) whose name contains `text`. */
export const SearchInputSchema = z.strictObject({ text: z.string().trim().min(1).max(200), top: z.number().int().min(1).max(50).optional() })
export type SearchInput = z.infer<typeof SearchInputSchema>

const req = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) => z.strictObject({ type: z.literal(type), id: RequestId, ...shape })

export const ClientRequestSchema = z.discriminatedUnion('type', [
  req('syncNow', { fencingToken: FencingToken }),
  req('designate', {}),
  req('setInterval', { minutes: Minutes }),
  req('shouldTrack', { email: ShouldTrackInputSchema }),
  req('track', { input: TrackInputSchema }),
  req('setRegarding', { input: SetRegardingInputSchema }),
  req('stopTracking', { input: StopTrackingInputSchema }),
  req('addContact', { input: AddContactInputSchema }),
  req('lookup', { input: LookupInputSchema }),
  req('mailboxStatus', {}),
  req('itemInfo', { input: ItemInfoInputSchema }),
  req('search', { input: SearchInputSchema }),
])
export type ClientRequest = z.infer<typeof ClientRequestSchema>
export type ClientRequestType = ClientRequest['type']

// ---------------------------------------------------------------------------------------------
// Either direction
// ---------------------------------------------------------------------------------------------

export const ResultSchema = z.strictObject({ type: z.literal('result'), id: RequestId, result: z.unknown() })
export const ErrorMessageSchema = z.strictObject({
  type: z.literal('error'),
  /** Absent when the error is about the connection, or the offending frame had no readable id. */
  id: RequestId.optional(),
  code: z.enum(ProtocolErrorCodes),
  message: z.string().max(2000),
})
export type ResultMessage = z.infer<typeof ResultSchema>
export type ErrorMessage = z.infer<typeof ErrorMessageSchema>

/** Everything a client may send after `hello`. */
export const ClientMessageSchema = z.discriminatedUnion('type', [...ClientRequestSchema.options, ResultSchema, ErrorMessageSchema])
export type ClientMessage = z.infer<typeof ClientMessageSchema>

// ---------------------------------------------------------------------------------------------
// Server → client
// ---------------------------------------------------------------------------------------------

export const WelcomeSchema = z.strictObject({
  type: z.literal('welcome'),
  protocol: z.number().int().positive(),
  userId: UserId,
  clientId: ClientIdSchema,
  designated: z.boolean(),
  /** The fencing token of this client's designation; null when it is not the sync client. */
  fencingToken: FencingToken.nullable(),
  /** The user's personal sync interval (minutes), never below `minIntervalMinutes`. */
  intervalMinutes: Minutes,
  /** The admin-set minimum. */
  minIntervalMinutes: Minutes,
  maxFrameBytes: z.number().int().positive(),
  /**
   * Protocol 2: the item kinds this user's sync client syncs, decided by the server (the others are
   * synced server-side, or not at all). Absent in protocol 1 (all kinds).
   */
  syncKinds: z.array(ItemKindSchema).max(ItemKindSchema.options.length).optional(),
})
export type WelcomeMessage = z.infer<typeof WelcomeSchema>

const WireCursor = z.string().min(1).max(4096)

/** Item kinds of a sync scope (no repeats). */
export const SyncKindsSchema = z
  .array(ItemKindSchema)
  .max(ItemKindSchema.options.length)
  .refine((kinds) => new Set(kinds).size === kinds.length, 'kinds must not repeat')
export const PullRequestSchema = req('pull', {
  fencingToken: FencingToken,
  cursor: WireCursor.nullable(),
  limit: z.number().int().positive().max(10_000),
  /** Protocol 2: list only changes of these kinds (absent: every kind). Other kinds are not deletions. */
  kinds: SyncKindsSchema.optional(),
})
export const PushOpSchema = z.discriminatedUnion('type', [
  z.strictObject({ opId: z.string().min(1).max(256), type: z.literal('create'), concordId: z.string().min(1).max(128), kind: ItemKindSchema, fields: WireFields }),
  z.strictObject({ opId: z.string().min(1).max(256), type: z.literal('update'), concordId: z.string().min(1).max(128), kind: ItemKindSchema, nativeId: z.string().min(1).max(256), fields: WireFields, ifMatch: z.string().max(256).optional() }),
  z.strictObject({ opId: z.string().min(1).max(256), type: z.literal('delete'), concordId: z.string().min(1).max(128), kind: ItemKindSchema, nativeId: z.string().min(1).max(256).optional(), provenance: z.enum(DeleteProvenances), ifMatch: z.string().max(256).optional() }),
])
export const PushRequestSchema = req('push', { fencingToken: FencingToken, ops: z.array(PushOpSchema).max(10_000) })
export const ConfirmMissingRequestSchema = req('confirmMissing', { fencingToken: FencingToken, nativeIds: z.array(z.string().min(1).max(256)).max(10_000) })
export const DesignationSchema = z.strictObject({ type: z.literal('designation'), designated: z.boolean(), fencingToken: FencingToken.nullable() })
export type DesignationMessage = z.infer<typeof DesignationSchema>
/** Protocol 2 notification: the user's sync scope changed (the next `pull` asks for these kinds). */
export const SyncScopeSchema = z.strictObject({ type: z.literal('syncScope'), kinds: SyncKindsSchema })
export type SyncScopeMessage = z.infer<typeof SyncScopeSchema>

export const ServerRequestSchema = z.discriminatedUnion('type', [PullRequestSchema, PushRequestSchema, ConfirmMissingRequestSchema])
export type ServerRequest = z.infer<typeof ServerRequestSchema>

/** Everything a server may send after `welcome`. */
export const ServerMessageSchema = z.discriminatedUnion('type', [PullRequestSchema, PushRequestSchema, ConfirmMissingRequestSchema, DesignationSchema, SyncScopeSchema, ResultSchema, ErrorMessageSchema])
export type ServerMessage = z.infer<typeof ServerMessageSchema>
/** The first server frame: `welcome`, or an `error` before a clean close. */
export const HandshakeReplySchema = z.discriminatedUnion('type', [WelcomeSchema, ErrorMessageSchema])

// ---------------------------------------------------------------------------------------------
// Result payloads
// ---------------------------------------------------------------------------------------------

const SideCounts = z.strictObject({ crm: z.number().int().nonnegative(), mailbox: z.number().int().nonnegative() })
export const SyncSummarySchema = z.strictObject({ cycles: z.number().int().nonnegative(), pulled: SideCounts, pushed: SideCounts, rejected: SideCounts, merged: z.number().int().nonnegative() })
export type SyncSummary = z.infer<typeof SyncSummarySchema>

const RecordMetaWire = z.strictObject({
  ownerId: z.string().max(256).optional(),
  attendeeIds: z.array(z.string().max(256)).max(1000).optional(),
  state: z.string().max(128).optional(),
  tracked: z.boolean().optional(),
})
export const WireChangeSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('upsert'), nativeId: z.string().min(1).max(256), kind: ItemKindSchema, version: z.string().min(1).max(256), fields: WireFields, concordId: z.string().min(1).max(128).optional(), modifiedAt: z.number().optional(), meta: RecordMetaWire.optional() }),
  z.strictObject({ type: z.literal('delete'), nativeId: z.string().min(1).max(256), provenance: z.enum(DeleteProvenances) }),
])
export const PullResultSchema = z.strictObject({ changes: z.array(WireChangeSchema), nextCursor: WireCursor, hasMore: z.boolean(), fullListing: z.boolean().optional() })
export const PushResultSchema = z.strictObject({
  applied: z.array(z.strictObject({ opId: z.string().min(1).max(256), nativeId: z.string().min(1).max(256).optional(), version: z.string().min(1).max(256).optional(), fields: WireFields.optional() })),
  rejected: z.array(z.strictObject({ opId: z.string().min(1).max(256), code: z.enum(SyncErrorCodes), message: z.string().max(2000) })),
})
export const ConfirmMissingResultSchema = z.strictObject({ missing: z.array(z.string().min(1).max(256)) })
export type WirePullResult = z.infer<typeof PullResultSchema>
export type WirePushResult = z.infer<typeof PushResultSchema>

export const ShouldTrackResultSchema = z.strictObject({ track: z.boolean(), regarding: RegardingSchema.optional() })
export type ShouldTrackResult = z.infer<typeof ShouldTrackResultSchema>
export const TrackResultSchema = z.strictObject({ crmId: CrmId })
export type TrackResult = z.infer<typeof TrackResultSchema>
export const SetRegardingResultSchema = z.strictObject({ crmId: CrmId })
export const StopTrackingResultSchema = z.strictObject({ deleted: z.boolean() })
export type StopTrackingResult = z.infer<typeof StopTrackingResultSchema>
export const AddContactResultSchema = z.strictObject({ crmId: CrmId, created: z.boolean() })
export type AddContactResult = z.infer<typeof AddContactResultSchema>
export const CrmRecordSchema = z.strictObject({ crmId: CrmId, kind: ItemKindSchema, fields: WireFields })
export type CrmRecord = z.infer<typeof CrmRecordSchema>
export const LookupResultSchema = z.union([z.strictObject({ ids: z.array(CrmId) }), z.strictObject({ records: z.array(CrmRecordSchema) })])
export type LookupResult = z.infer<typeof LookupResultSchema>
/** Whether the user's mailbox is enabled for server-side synchronization (the App for Outlook requires it). */
export const MailboxStatusResultSchema = z.strictObject({
  serverSideSync: z.boolean(),
  /** Why server-side sync is off, or why manual tracking is refused. */
  reason: z.string().max(2000).optional(),
  /** The mailbox's email server profile type, when the server knows the mailbox. */
  profile: z.enum(['exchange', 'imap', 'pop3']).optional(),
  /** False when Track / Set Regarding / Stop tracking are refused for this mailbox (POP3/SMTP profile). Absent: allowed when `serverSideSync`. */
  manualTracking: z.boolean().optional(),
})
export type MailboxStatusResult = z.infer<typeof MailboxStatusResultSchema>
/** A CRM record reference: the shape of `regarding`, so a search result can be set as regarding as is. */
export const CrmRefSchema = RegardingSchema
export type CrmRef = z.infer<typeof CrmRefSchema>
export const ItemInfoResultSchema = z.strictObject({
  /** The CRM e-mail tracked for this message, or null when it is not tracked. */
  tracked: z.strictObject({ crmId: CrmId, regarding: CrmRefSchema.nullable() }).nullable(),
  /** Each requested address with the CRM records (system users, contacts, accounts) that have it. */
  parties: z.array(z.strictObject({ address: z.string().min(1).max(320), records: z.array(CrmRefSchema).max(50) })),
})
export type ItemInfoResult = z.infer<typeof ItemInfoResultSchema>
export const SearchResultSchema = z.strictObject({ records: z.array(CrmRefSchema).max(50) })
export type SearchResult = z.infer<typeof SearchResultSchema>
export const DesignateResultSchema = z.strictObject({ fencingToken: FencingToken })
export const SetIntervalResultSchema = z.strictObject({ intervalMinutes: Minutes })

/** The result schema of each client request type. */
export const ClientResultSchemas = {
  syncNow: SyncSummarySchema,
  designate: DesignateResultSchema,
  setInterval: SetIntervalResultSchema,
  shouldTrack: ShouldTrackResultSchema,
  track: TrackResultSchema,
  setRegarding: SetRegardingResultSchema,
  stopTracking: StopTrackingResultSchema,
  addContact: AddContactResultSchema,
  lookup: LookupResultSchema,
  mailboxStatus: MailboxStatusResultSchema,
  itemInfo: ItemInfoResultSchema,
  search: SearchResultSchema,
} as const satisfies Record<ClientRequestType, z.ZodType>

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

/** UTF-8 byte length of a text frame. */
const encoder = new TextEncoder()
export function frameBytes(text: string): number {
  return encoder.encode(text).byteLength
}

/** Serialises a message; throws `too_large` when it would exceed `maxFrameBytes`. */
export function encodeFrame(message: object, maxFrameBytes: number): string {
  const text = JSON.stringify(message)
  const size = frameBytes(text)
  if (size > maxFrameBytes) throw new OutlookProtocolError('too_large', `frame of ${size} bytes exceeds the maximum of ${maxFrameBytes} bytes`)
  return text
}

export type DecodeResult<T> = { ok: true; message: T } | { ok: false; id?: string | undefined; error: OutlookProtocolError }

/**
 * Parses one text frame against a schema. Never throws: a bad frame gives a `bad_request` error
 * naming the offending field, plus the frame's `id` when one could be read (so it can be answered).
 */
export function decodeFrame<T>(text: string, schema: z.ZodType<T>): DecodeResult<T> {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return { ok: false, error: new OutlookProtocolError('bad_request', 'frame is not valid JSON') }
  }
  const parsed = schema.safeParse(raw)
  if (parsed.success) return { ok: true, message: parsed.data }
  const id = typeof raw === 'object' && raw !== null && typeof (raw as { id?: unknown }).id === 'string' && (raw as { id: string }).id.length <= 64 ? (raw as { id: string }).id : undefined
  return { ok: false, id, error: new OutlookProtocolError('bad_request', describeIssues(parsed.error)) }
}

/** A zod error as one line naming each offending path, e.g. `invalid message: email.subject: expected string`. */
export function describeIssues(error: z.ZodError, what = 'invalid message'): string {
  const text = `${what}: ${error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`)
    .join('; ')}`
  return text.length > 1900 ? `${text.slice(0, 1900)}…` : text
}

/** Parses a result payload against its schema, throwing `bad_request` naming the field. */
export function parseResult<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new OutlookProtocolError('bad_request', describeIssues(parsed.error, `invalid ${what} result`))
  return parsed.data
}
