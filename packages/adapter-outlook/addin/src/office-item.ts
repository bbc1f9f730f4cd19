/**
 * Reads the open Outlook item through Office.js (`Office.context.mailbox.item`) into a validated
 * `OpenEmail`, and keeps the user's client token in `roamingSettings` only when the user opts in.
 * Office.js is typed here by the few members the pane uses, so tests can pass `office-addin-mock`.
 */
import { z } from 'zod'

export interface OfficeEmailAddress {
  emailAddress?: string | undefined
  displayName?: string | undefined
}
export interface OfficeItemLike {
  itemType?: unknown
  itemId?: unknown
  internetMessageId?: unknown
  subject?: unknown
  from?: OfficeEmailAddress | null | undefined
  to?: unknown
  cc?: unknown
  dateTimeCreated?: unknown
}
export interface RoamingSettingsLike {
  get(name: string): unknown
  set(name: string, value: unknown): void
  remove(name: string): void
  saveAsync(callback?: (result: { status: unknown; error?: { message?: string } | null }) => void): void
}
export interface OfficeLike {
  context: {
    mailbox: { item?: OfficeItemLike | null | undefined; userProfile?: { emailAddress?: string | undefined } | undefined }
    roamingSettings: RoamingSettingsLike
  }
}

const Address = z.object({ emailAddress: z.string().min(1).max(320), displayName: z.string().max(512).optional().nullable() }).transform((a) => ({
  address: a.emailAddress,
  ...(a.displayName ? { name: a.displayName } : {}),
}))
const OpenEmailSchema = z.object({
  itemType: z.literal('message', { message: 'the open item is not an e-mail message' }),
  itemId: z.string().min(1).max(1024),
  internetMessageId: z.string().min(1).max(998).optional(),
  subject: z.string().max(2000).default(''),
  from: Address,
  to: z.array(Address).max(1000).default([]),
  cc: z.array(Address).max(1000).default([]),
  dateTimeCreated: z.date().optional(),
})

export interface EmailAddress {
  address: string
  name?: string
}
export interface OpenEmail {
  itemId: string
  internetMessageId?: string
  subject: string
  from: EmailAddress
  to: EmailAddress[]
  cc: EmailAddress[]
  createdAt?: string
}

/** Thrown when Office.js has no readable e-mail open; the message names the offending field. */
export class OfficeItemError extends Error {
  override name = 'OfficeItemError'
}

/** The open message in read mode, validated. Throws `OfficeItemError` naming the field otherwise. */
export function readOpenEmail(office: OfficeLike): OpenEmail {
  const item = office.context.mailbox.item
  if (!item) throw new OfficeItemError('no item is open')
  const raw = {
    itemType: item.itemType,
    itemId: item.itemId,
    internetMessageId: item.internetMessageId === '' || item.internetMessageId == null ? undefined : item.internetMessageId,
    subject: item.subject ?? undefined,
    from: item.from ?? undefined,
    to: item.to ?? undefined,
    cc: item.cc ?? undefined,
    dateTimeCreated: item.dateTimeCreated ?? undefined,
  }
  const parsed = OpenEmailSchema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new OfficeItemError(`item.${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`)
  }
  const e = parsed.data
  return {
    itemId: e.itemId,
    ...(e.internetMessageId !== undefined ? { internetMessageId: e.internetMessageId } : {}),
    subject: e.subject,
    from: e.from,
    to: e.to,
    cc: e.cc,
    ...(e.dateTimeCreated ? { createdAt: e.dateTimeCreated.toISOString() } : {}),
  }
}

/** Every distinct address of the e-mail (sender first), lower-cased. */
export function addressesOf(email: OpenEmail): string[] {
  return [...new Set([email.from, ...email.to, ...email.cc].map((a) => a.address.toLowerCase()))]
}

/** The canonical e-mail fields the pane sends with `track` (only what the reading pane shows). */
export function trackFieldsOf(email: OpenEmail, userEmail: string | undefined): Record<string, unknown> {
  const outgoing = userEmail !== undefined && email.from.address.toLowerCase() === userEmail.toLowerCase()
  return {
    subject: email.subject,
    from: email.from,
    to: email.to,
    cc: email.cc,
    ...(email.internetMessageId !== undefined ? { internetMessageId: email.internetMessageId } : {}),
    direction: outgoing ? 'outgoing' : 'incoming',
  }
}

/** The roaming-settings key of the remembered client token. */
export const TOKEN_SETTING = 'concordClientToken'

/** The remembered token, if the user chose to keep one on this mailbox. */
export function rememberedToken(office: OfficeLike): string | undefined {
  const value = office.context.roamingSettings.get(TOKEN_SETTING)
  return typeof value === 'string' && value.length > 0 ? value : undefined
}

/** Keeps the token in roaming settings when `remember` is true; forgets any kept token otherwise. */
export function storeToken(office: OfficeLike, token: string, remember: boolean): Promise<void> {
  const settings = office.context.roamingSettings
  if (remember) settings.set(TOKEN_SETTING, token)
  else settings.remove(TOKEN_SETTING)
  return new Promise((resolve, reject) => {
    settings.saveAsync((result) => {
      if (result.status === 'failed') reject(new Error(`saving the roaming settings failed: ${result.error?.message ?? 'unknown error'}`))
      else resolve()
    })
  })
}
