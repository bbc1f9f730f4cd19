import { z } from 'zod'

/** An e-mail address with an optional display name (Graph `emailAddress`, Dataverse activity party). */
export const AddressSchema = z.strictObject({
  name: z.string().max(512).optional(),
  address: z.string().min(1).max(320),
})
export type Address = z.infer<typeof AddressSchema>

const LOCAL_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?$/

/** A wall-clock time in a named IANA time zone (or `UTC`), as Graph's `dateTimeTimeZone`. */
export const DateTimeTzSchema = z.strictObject({
  dateTime: z.string().regex(LOCAL_DATE_TIME, 'expected a local date-time like 2026-01-31T09:30:00'),
  timeZone: z.string().min(1).max(64),
})
export type DateTimeTz = z.infer<typeof DateTimeTzSchema>

/** An absolute instant, ISO 8601 with offset. */
export const InstantSchema = z.iso.datetime({ offset: true })

export const DateOnlySchema = z.iso.date()

export const CategoriesSchema = z.array(z.string().min(1).max(255)).max(100)

export const PostalAddressSchema = z.strictObject({
  street: z.string().max(1024).optional(),
  city: z.string().max(256).optional(),
  state: z.string().max(256).optional(),
  postalCode: z.string().max(64).optional(),
  countryOrRegion: z.string().max(256).optional(),
})
export type PostalAddress = z.infer<typeof PostalAddressSchema>

/** A reference to the CRM record an activity is regarding (contact, account, opportunity…). */
export const RegardingSchema = z.strictObject({
  table: z.string().min(1).max(64),
  id: z.string().min(1).max(64),
  name: z.string().max(512).optional(),
})
export type Regarding = z.infer<typeof RegardingSchema>

export const BodySchema = z.string().max(4 * 1024 * 1024)

/**
 * Every canonical field is optional and nullable:
 * - absent  = unknown to this side (not read, or secured): never treated as a change;
 * - null    = known to be empty (cleared).
 */
export function field<T extends z.ZodType>(schema: T) {
  return schema.nullable().optional()
}
