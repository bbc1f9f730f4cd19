import { z } from 'zod'
import { AddressSchema, BodySchema, CategoriesSchema, InstantSchema, RegardingSchema, field } from './common.js'

export const EmailFieldsSchema = z.strictObject({
  subject: field(z.string().max(2000)),
  body: field(BodySchema),
  from: field(AddressSchema),
  to: field(z.array(AddressSchema).max(1000)),
  cc: field(z.array(AddressSchema).max(1000)),
  bcc: field(z.array(AddressSchema).max(1000)),
  sentAt: field(InstantSchema),
  receivedAt: field(InstantSchema),
  internetMessageId: field(z.string().max(998)),
  inReplyTo: field(z.string().max(998)),
  conversationId: field(z.string().max(1024)),
  direction: field(z.enum(['incoming', 'outgoing'])),
  regarding: field(RegardingSchema),
  categories: field(CategoriesSchema),
})
export type EmailFields = z.infer<typeof EmailFieldsSchema>
