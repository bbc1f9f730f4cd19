import { asCursor, CursorExpiredError, type Cursor } from '@concord/engine'
import { z } from 'zod'
import { CrmKinds, type CrmKind } from './options.js'

/**
 * The adapter's cursor: per table, the change-tracking delta link to continue from, or the
 * `@odata.nextLink` of a round in progress. `pos` is the table being pulled in the current round;
 * `full` marks a round that started without tokens (a full listing). Serialized as opaque JSON.
 */
const LinkSchema = z.strictObject({ delta: z.string().min(1).optional(), next: z.string().min(1).optional() })
export const CursorStateSchema = z.strictObject({
  v: z.literal(1),
  full: z.boolean(),
  pos: z.number().int().min(0),
  kinds: z.array(z.enum(CrmKinds)).min(1),
  links: z.partialRecord(z.enum(CrmKinds), LinkSchema),
})
export type CursorState = z.infer<typeof CursorStateSchema>

export function freshCursor(kinds: readonly CrmKind[]): CursorState {
  return { v: 1, full: true, pos: 0, kinds: [...kinds], links: {} }
}

export function encodeCursor(state: CursorState): Cursor {
  return asCursor(`crm1:${Buffer.from(JSON.stringify(state)).toString('base64url')}`)
}

/** An unreadable cursor (other version, other tables) cannot be continued: the engine resyncs. */
export function decodeCursor(cursor: Cursor, kinds: readonly CrmKind[]): CursorState {
  const raw = String(cursor)
  if (!raw.startsWith('crm1:')) throw new CursorExpiredError('CRM cursor has an unknown format; a full resync is required')
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(raw.slice(5), 'base64url').toString('utf8'))
  } catch (error) {
    throw new CursorExpiredError('CRM cursor is not readable; a full resync is required', {}, { cause: error })
  }
  const parsed = CursorStateSchema.safeParse(json)
  if (!parsed.success) throw new CursorExpiredError(`CRM cursor is invalid (${parsed.error.issues[0]?.path.join('.') ?? ''}); a full resync is required`, {}, { cause: parsed.error })
  if (parsed.data.kinds.join(',') !== kinds.join(',')) throw new CursorExpiredError('CRM cursor was made for other tables; a full resync is required')
  return parsed.data
}
