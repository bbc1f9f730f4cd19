/**
 * zod schemas for request bodies of each Outlook resource. Top-level objects are strict: an unknown
 * property is a 400 `RequestBodyRead`, as on the real service. Nested complex types are lenient.
 */
import { z } from 'zod'
import { recurrenceInputSchema } from './recurrence.js'

const str = z.string()
const nstr = z.string().nullable()
const bool = z.boolean()
const emailAddress = z.looseObject({ name: nstr.optional(), address: nstr.optional() })
const recipient = z.looseObject({ emailAddress })
const recipients = z.array(recipient)
const itemBody = z.looseObject({
  contentType: z.enum(['text', 'html', 'Text', 'HTML', 'Html']).optional(),
  content: nstr.optional(),
})
export const dateTimeTimeZone = z.looseObject({ dateTime: str, timeZone: nstr.optional() })
const ext = z.array(z.strictObject({ id: str.min(1), value: nstr }))
const multiExt = z.array(z.looseObject({ id: str, value: z.array(str) }))
const categories = z.array(str)
const importance = z.enum(['low', 'normal', 'high'])
const isoDate = z.iso.datetime({ offset: true, local: true })

/** Read-only properties a client may echo back; they are accepted and ignored. */
export const READ_ONLY = new Set([
  'id',
  'changeKey',
  'createdDateTime',
  'lastModifiedDateTime',
  'parentFolderId',
  'bodyPreview',
  'hasAttachments',
  'webLink',
  'conversationIndex',
  'iCalUId',
  'isOrganizer',
  'responseStatus',
  'seriesMasterId',
  'type',
  'bodyLastModifiedDateTime',
  'occurrenceId',
  'originalStart',
  'childFolderCount',
  'unreadItemCount',
  'totalItemCount',
  'isOwner',
  'isShared',
  'wellknownListName',
])

export const messageSchema = z.strictObject({
  subject: nstr.optional(),
  body: itemBody.optional(),
  uniqueBody: itemBody.optional(),
  from: recipient.nullable().optional(),
  sender: recipient.nullable().optional(),
  toRecipients: recipients.optional(),
  ccRecipients: recipients.optional(),
  bccRecipients: recipients.optional(),
  replyTo: recipients.optional(),
  internetMessageId: nstr.optional(),
  internetMessageHeaders: z.array(z.looseObject({ name: str, value: str })).optional(),
  conversationId: nstr.optional(),
  importance: importance.optional(),
  isRead: bool.optional(),
  isDraft: bool.optional(),
  categories: categories.optional(),
  flag: z.looseObject({ flagStatus: z.enum(['notFlagged', 'complete', 'flagged']).optional() }).optional(),
  inferenceClassification: z.enum(['focused', 'other']).optional(),
  isReadReceiptRequested: bool.optional(),
  isDeliveryReceiptRequested: bool.optional(),
  receivedDateTime: isoDate.optional(),
  sentDateTime: isoDate.optional(),
  singleValueExtendedProperties: ext.optional(),
  multiValueExtendedProperties: multiExt.optional(),
})

export const eventSchema = z.strictObject({
  subject: nstr.optional(),
  body: itemBody.optional(),
  start: dateTimeTimeZone.optional(),
  end: dateTimeTimeZone.optional(),
  isAllDay: bool.optional(),
  location: z.looseObject({ displayName: nstr.optional() }).optional(),
  locations: z.array(z.looseObject({ displayName: nstr.optional() })).optional(),
  attendees: z
    .array(
      z.looseObject({
        type: z.enum(['required', 'optional', 'resource']).optional(),
        emailAddress,
        status: z.looseObject({ response: str.optional(), time: str.optional() }).optional(),
      }),
    )
    .optional(),
  organizer: recipient.optional(),
  showAs: z.enum(['free', 'tentative', 'busy', 'oof', 'workingElsewhere', 'unknown']).optional(),
  importance: importance.optional(),
  sensitivity: z.enum(['normal', 'personal', 'private', 'confidential']).optional(),
  isCancelled: bool.optional(),
  isReminderOn: bool.optional(),
  reminderMinutesBeforeStart: z.number().int().optional(),
  responseRequested: bool.optional(),
  allowNewTimeProposals: bool.optional(),
  hideAttendees: bool.optional(),
  recurrence: recurrenceInputSchema.nullable().optional(),
  categories: categories.optional(),
  isOnlineMeeting: bool.optional(),
  onlineMeetingProvider: str.optional(),
  onlineMeeting: z.looseObject({}).nullable().optional(),
  transactionId: nstr.optional(),
  originalStartTimeZone: str.optional(),
  originalEndTimeZone: str.optional(),
  isDraft: bool.optional(),
  singleValueExtendedProperties: ext.optional(),
  multiValueExtendedProperties: multiExt.optional(),
})

const physicalAddress = z.looseObject({
  street: nstr.optional(),
  city: nstr.optional(),
  state: nstr.optional(),
  postalCode: nstr.optional(),
  countryOrRegion: nstr.optional(),
})

export const contactSchema = z.strictObject({
  displayName: nstr.optional(),
  givenName: nstr.optional(),
  surname: nstr.optional(),
  middleName: nstr.optional(),
  nickName: nstr.optional(),
  initials: nstr.optional(),
  title: nstr.optional(),
  generation: nstr.optional(),
  fileAs: nstr.optional(),
  emailAddresses: z.array(emailAddress).optional(),
  imAddresses: z.array(str).optional(),
  businessPhones: z.array(str).optional(),
  homePhones: z.array(str).optional(),
  mobilePhone: nstr.optional(),
  businessAddress: physicalAddress.optional(),
  homeAddress: physicalAddress.optional(),
  otherAddress: physicalAddress.optional(),
  companyName: nstr.optional(),
  department: nstr.optional(),
  jobTitle: nstr.optional(),
  officeLocation: nstr.optional(),
  profession: nstr.optional(),
  manager: nstr.optional(),
  assistantName: nstr.optional(),
  businessHomePage: nstr.optional(),
  birthday: isoDate.nullable().optional(),
  spouseName: nstr.optional(),
  children: z.array(str).optional(),
  personalNotes: nstr.optional(),
  yomiGivenName: nstr.optional(),
  yomiSurname: nstr.optional(),
  yomiCompanyName: nstr.optional(),
  categories: categories.optional(),
  singleValueExtendedProperties: ext.optional(),
  multiValueExtendedProperties: multiExt.optional(),
})

export const linkedResourceSchema = z.strictObject({
  applicationName: nstr.optional(),
  displayName: nstr.optional(),
  externalId: nstr.optional(),
  webUrl: nstr.optional(),
})

export const taskSchema = z.strictObject({
  title: nstr.optional(),
  body: itemBody.optional(),
  status: z.enum(['notStarted', 'inProgress', 'completed', 'waitingOnOthers', 'deferred']).optional(),
  importance: importance.optional(),
  isReminderOn: bool.optional(),
  reminderDateTime: dateTimeTimeZone.nullable().optional(),
  dueDateTime: dateTimeTimeZone.nullable().optional(),
  startDateTime: dateTimeTimeZone.nullable().optional(),
  completedDateTime: dateTimeTimeZone.nullable().optional(),
  recurrence: z.looseObject({}).nullable().optional(),
  categories: categories.optional(),
  linkedResources: z.array(linkedResourceSchema).optional(),
})

export const mailFolderSchema = z.strictObject({ displayName: str.min(1), isHidden: bool.optional() })
export const mailFolderPatchSchema = z.strictObject({ displayName: str.min(1).optional() })
export const contactFolderSchema = z.strictObject({ displayName: str.min(1) })
export const calendarSchema = z.strictObject({ name: str.min(1), color: str.optional() })
export const todoListSchema = z.strictObject({ displayName: str.min(1) })
export const categorySchema = z.strictObject({
  displayName: str.min(1),
  color: z
    .string()
    .regex(/^(none|preset([0-9]|1[0-9]|2[0-4]))$/, 'expected none or preset0..preset24')
    .optional(),
})
export const categoryPatchSchema = z.strictObject({ color: categorySchema.shape.color })
export const moveSchema = z.strictObject({ destinationId: str.min(1) })
export const translateSchema = z.strictObject({
  inputIds: z.array(str).min(1).max(1000),
  sourceIdType: z.enum(['entryId', 'ewsId', 'immutableEntryId', 'restId', 'restImmutableEntryId']),
  targetIdType: z.enum(['entryId', 'ewsId', 'immutableEntryId', 'restId', 'restImmutableEntryId']),
})

export type ItemKind = 'message' | 'event' | 'contact' | 'task'
export const itemSchemas = {
  message: messageSchema,
  event: eventSchema,
  contact: contactSchema,
  task: taskSchema,
} as const
