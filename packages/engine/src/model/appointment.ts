import { z } from 'zod'
import { AddressSchema, BodySchema, CategoriesSchema, DateOnlySchema, DateTimeTzSchema, RegardingSchema, field } from './common.js'

const DayOfWeek = z.enum(['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'])

/** Recurrence pattern and range (the pattern only; occurrences are not synced one by one). */
export const RecurrenceSchema = z.strictObject({
  pattern: z.strictObject({
    type: z.enum(['daily', 'weekly', 'absoluteMonthly', 'relativeMonthly', 'absoluteYearly', 'relativeYearly']),
    interval: z.number().int().min(1).max(999),
    daysOfWeek: z.array(DayOfWeek).max(7).optional(),
    dayOfMonth: z.number().int().min(1).max(31).optional(),
    month: z.number().int().min(1).max(12).optional(),
    index: z.enum(['first', 'second', 'third', 'fourth', 'last']).optional(),
    /** Weekly patterns: the day a week starts on (Graph's default is sunday). */
    firstDayOfWeek: DayOfWeek.optional(),
  }),
  range: z.strictObject({
    type: z.enum(['endDate', 'noEnd', 'numbered']),
    startDate: DateOnlySchema,
    endDate: DateOnlySchema.optional(),
    numberOfOccurrences: z.number().int().min(1).max(999).optional(),
    /** Zone the pattern is evaluated in (IANA or Windows name); absent = the zone of `start`. */
    recurrenceTimeZone: z.string().min(1).max(64).optional(),
  }),
})
export type Recurrence = z.infer<typeof RecurrenceSchema>

export const AppointmentFieldsSchema = z.strictObject({
  subject: field(z.string().max(2000)),
  body: field(BodySchema),
  start: field(DateTimeTzSchema),
  end: field(DateTimeTzSchema),
  location: field(z.string().max(2000)),
  organizer: field(AddressSchema),
  requiredAttendees: field(z.array(AddressSchema).max(1000)),
  optionalAttendees: field(z.array(AddressSchema).max(1000)),
  /** Rooms and equipment (Graph attendee `type: "resource"`, Dataverse activity party mask 10). */
  resourceAttendees: field(z.array(AddressSchema).max(1000)),
  recurrence: field(RecurrenceSchema),
  isAllDay: field(z.boolean()),
  showAs: field(z.enum(['free', 'tentative', 'busy', 'oof', 'workingElsewhere', 'unknown'])),
  importance: field(z.enum(['low', 'normal', 'high'])),
  categories: field(CategoriesSchema),
  regarding: field(RegardingSchema),
})
export type AppointmentFields = z.infer<typeof AppointmentFieldsSchema>
