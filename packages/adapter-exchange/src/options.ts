/** Options of the Exchange adapter, validated with zod at the edge. */
import { ItemKinds, ValidationError } from '@concord/engine'
import type { Logger } from '@concord/engine'
import { z } from 'zod'
import { ianaZoneOf } from './time-zones.js'

/** The fixed MAPI named property Concord stamps on every item it creates or links. */
export const CONCORD_PROPERTY_ID = 'String {66f5a359-4659-4830-9070-00047ec6ac6e} Name concordId'
/** MAPI `PidTagInReplyToId` (0x1042): the Message-ID a message answers — Graph has no first-class property for it. */
export const IN_REPLY_TO_PROPERTY_ID = 'String 0x1042'
/** `applicationName` of the To Do linkedResource that carries the Concord link (todoTask has no extended properties). */
export const CONCORD_APPLICATION = 'Concord'
/** `applicationName` of the To Do linkedResource that carries the CRM regarding record. */
export const REGARDING_APPLICATION = 'Concord Regarding'
/** Prefix of the event `transactionId`s Concord sets (idempotent event creation). */
export const TRANSACTION_PREFIX = 'concord:'

export const ExchangeAdapterOptionsSchema = z.strictObject({
  /** The engine's id of this replica (one mailbox). */
  replicaId: z.string().min(1),
  /** User principal name (or user id) of the mailbox; requests go to `/users/{mailbox}`. */
  mailbox: z.string().regex(/^[^\s/?#]+$/, 'expected a user principal name or user id without spaces or slashes'),
  tenantId: z.string().min(1),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  /** OAuth2 token endpoint; default `https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token`. */
  tokenUrl: z.url({ protocol: /^https?$/ }).optional(),
  scope: z.string().min(1).default('https://graph.microsoft.com/.default'),
  /** Origin of Graph (no version); `/v1.0` is appended. Use the emulator's `https` url in tests. */
  graphBaseUrl: z.url({ protocol: /^https$/, error: 'expected an https URL (the Graph SDK only attaches tokens to https hosts)' }).default('https://graph.microsoft.com'),
  /** Kinds this replica syncs. */
  kinds: z.array(z.enum(ItemKinds)).min(1).default([...ItemKinds]),
  /** Mail folders tracked for messages (well-known names or ids). */
  mailFolders: z.array(z.string().min(1)).min(1).default(['inbox', 'sentitems']),
  /** calendarView delta window relative to the start of a full round. */
  calendarWindow: z
    .strictObject({ pastDays: z.number().int().min(0).max(3650).default(30), futureDays: z.number().int().min(1).max(3650).default(365) })
    .prefault({}),
  /**
   * Zone To Do task dates (due, start, reminder, completed) are read in (`Prefer: outlook.timezone`): an
   * IANA or Windows name. To Do keeps the instant only; set the mailbox user's zone so that a due date
   * written as midnight local time reads back as that same date (not 23:00 the day before in UTC).
   */
  taskTimeZone: z
    .string()
    .min(1)
    .max(64)
    .refine((v) => ianaZoneOf(v) !== undefined, { message: 'expected an IANA or Windows time zone name' })
    .default('UTC'),
  /** To Do list of tasks; default: the list whose `wellknownListName` is `defaultList`. */
  todoListId: z.string().min(1).optional(),
  /**
   * How pulls read the Concord stamp: `expand` asks delta for it (`$expand`, as Graph documents for
   * messages, contacts and To Do tasks); `get` reads it with batched GETs after each page.
   * Events always use their `transactionId` and fall back to GETs (calendarView delta cannot expand).
   */
  stampLookup: z.enum(['expand', 'get']).default('expand'),
  /** At most this many sub-requests per `$batch` (Graph's limit is 20). */
  batchSize: z.number().int().min(1).max(20).default(20),
})

export type ExchangeAdapterOptions = z.input<typeof ExchangeAdapterOptionsSchema>
export type ResolvedExchangeOptions = z.output<typeof ExchangeAdapterOptionsSchema>

/** Things that are not configuration: the transport, the clock, the logger. */
export interface ExchangeAdapterDeps {
  /** A fetch implementation, e.g. `createTrustedFetch({ ca })` trusting the emulator's self-signed certificate. Default: global fetch. */
  fetch?: typeof fetch | undefined
  /** Clock in ms since epoch (calendar window, token expiry, subscription renewals). */
  now?: (() => number) | undefined
  logger?: Logger | undefined
}

export function parseExchangeOptions(input: unknown): ResolvedExchangeOptions {
  const r = ExchangeAdapterOptionsSchema.safeParse(input)
  if (!r.success) throw ValidationError.fromZod('Exchange adapter options', r.error)
  return r.data
}
