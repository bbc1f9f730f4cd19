import { z } from 'zod'
import { ValidationError } from '../errors.js'
import type { ConcordId, NativeId, ReplicaId } from '../ids.js'
import { canonicalJson } from '../util/canonical-json.js'
import { stableHash } from '../util/hash.js'
import { AppointmentFieldsSchema, type AppointmentFields } from './appointment.js'
import { ContactFieldsSchema, type ContactFields } from './contact.js'
import { EmailFieldsSchema, type EmailFields } from './email.js'
import { TaskFieldsSchema, type TaskFields } from './task.js'

export const ItemKinds = ['email', 'appointment', 'contact', 'task'] as const
export const ItemKindSchema = z.enum(ItemKinds)
export type ItemKind = (typeof ItemKinds)[number]

export interface FieldsByKind {
  email: EmailFields
  appointment: AppointmentFields
  contact: ContactFields
  task: TaskFields
}

export const FieldSchemas = {
  email: EmailFieldsSchema,
  appointment: AppointmentFieldsSchema,
  contact: ContactFieldsSchema,
  task: TaskFieldsSchema,
} as const

/** Canonical fields of any kind, as stored and merged. Absent = unknown, null = empty. */
export type Fields = Partial<Record<string, unknown>>

/** The field names of a kind, in schema order. */
export function fieldNames(kind: ItemKind): readonly string[] {
  return Object.keys(FieldSchemas[kind].shape)
}

/**
 * Parses canonical fields of `kind`. Unknown fields and invalid values are rejected with a
 * `ValidationError` whose message names each field path.
 */
export function parseFields<K extends ItemKind>(kind: K, input: unknown): FieldsByKind[K] {
  const schema = FieldSchemas[kind] as unknown as z.ZodType<FieldsByKind[K]>
  const result = schema.safeParse(input)
  if (!result.success) throw ValidationError.fromZod(`${kind} fields`, result.error)
  return result.data
}

/** Content hash of the known fields: equal content → equal hash, whatever the key order. */
export function hashFields(fields: Fields): string {
  return stableHash(canonicalJson(fields))
}

/** Where an item lives on each replica. */
export type Links = Partial<Record<ReplicaId, NativeId>>

export interface Item<K extends ItemKind = ItemKind> {
  id: ConcordId
  kind: K
  fields: Partial<FieldsByKind[K]>
  links: Links
}
