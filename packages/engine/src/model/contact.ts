import { z } from 'zod'
import { CategoriesSchema, DateOnlySchema, PostalAddressSchema, field } from './common.js'

const Email = z.string().min(1).max(320)
const Phone = z.string().min(1).max(64)

export const ContactFieldsSchema = z.strictObject({
  givenName: field(z.string().max(256)),
  middleName: field(z.string().max(256)),
  surname: field(z.string().max(256)),
  displayName: field(z.string().max(512)),
  email1: field(Email),
  email2: field(Email),
  email3: field(Email),
  businessPhone: field(Phone),
  homePhone: field(Phone),
  mobilePhone: field(Phone),
  companyName: field(z.string().max(512)),
  jobTitle: field(z.string().max(256)),
  department: field(z.string().max(256)),
  businessAddress: field(PostalAddressSchema),
  homeAddress: field(PostalAddressSchema),
  otherAddress: field(PostalAddressSchema),
  birthday: field(DateOnlySchema),
  notes: field(z.string().max(1024 * 1024)),
  categories: field(CategoriesSchema),
})
export type ContactFields = z.infer<typeof ContactFieldsSchema>
