import { z } from 'zod'
import { ValidationError } from '../errors.js'
import { type Fields, type ItemKind, fieldNames } from '../model/item.js'
import { jsonEqual } from '../util/canonical-json.js'
import type { CrmRecordMeta, MergeUser } from './context.js'

/**
 * A declarative sync-filter condition (Dynamics "User Filters": rows of field / operator / value with
 * AND / OR groups, protocols.md §5.4). Evaluated over the record's canonical fields plus CRM
 * metadata (owner, attendees, state). The same filter serves server-side and client sync.
 */
export type FilterCondition =
  | { all: FilterCondition[] }
  | { any: FilterCondition[] }
  | { not: FilterCondition }
  | { owner: 'me' }
  | { attendee: 'me' }
  | { state: { in: string[] } }
  | { field: string; op: 'eq' | 'ne'; value: unknown }
  | { field: string; op: 'in'; value: unknown[] }
  | { field: string; op: 'contains'; value: string }
  | { field: string; op: 'exists' | 'empty' }

export const FilterConditionSchema: z.ZodType<FilterCondition> = z.lazy(() =>
  z.union([
    z.strictObject({ all: z.array(FilterConditionSchema).min(1) }),
    z.strictObject({ any: z.array(FilterConditionSchema).min(1) }),
    z.strictObject({ not: FilterConditionSchema }),
    z.strictObject({ owner: z.literal('me') }),
    z.strictObject({ attendee: z.literal('me') }),
    z.strictObject({ state: z.strictObject({ in: z.array(z.string().min(1)).min(1) }) }),
    z.strictObject({ field: z.string().min(1), op: z.enum(['eq', 'ne']), value: z.unknown() }),
    z.strictObject({ field: z.string().min(1), op: z.literal('in'), value: z.array(z.unknown()) }),
    z.strictObject({ field: z.string().min(1), op: z.literal('contains'), value: z.string() }),
    z.strictObject({ field: z.string().min(1), op: z.enum(['exists', 'empty']) }),
  ]),
) as z.ZodType<FilterCondition>

/** Filters per kind. E-mail is never filtered (§5.4): which e-mails sync follows from tracking. */
export interface SyncFilterSet {
  appointment?: FilterCondition | undefined
  contact?: FilterCondition | undefined
  task?: FilterCondition | undefined
}

function checkFieldNames(kind: ItemKind, condition: FilterCondition, path: (string | number)[], ctx: z.RefinementCtx): void {
  if ('all' in condition) condition.all.forEach((c, i) => checkFieldNames(kind, c, [...path, 'all', i], ctx))
  else if ('any' in condition) condition.any.forEach((c, i) => checkFieldNames(kind, c, [...path, 'any', i], ctx))
  else if ('not' in condition) checkFieldNames(kind, condition.not, [...path, 'not'], ctx)
  else if ('field' in condition && !fieldNames(kind).includes(condition.field)) {
    ctx.addIssue({ code: 'custom', path: [...path, 'field'], message: `unknown ${kind} field "${condition.field}"` })
  }
}

export const SyncFilterSetSchema: z.ZodType<SyncFilterSet> = z
  .strictObject({ appointment: FilterConditionSchema.optional(), contact: FilterConditionSchema.optional(), task: FilterConditionSchema.optional() })
  .superRefine((set, ctx) => {
    for (const kind of ['appointment', 'contact', 'task'] as const) {
      const condition = set[kind]
      if (condition) checkFieldNames(kind, condition, [kind], ctx)
    }
  })

/** "My contacts / my appointments / my tasks": owned by the user, plus appointments they attend. */
export const DEFAULT_SYNC_FILTERS: SyncFilterSet = {
  appointment: { any: [{ owner: 'me' }, { attendee: 'me' }] },
  contact: { owner: 'me' },
  task: { owner: 'me' },
}

/** Parses a user's or an organization's filters; errors name the offending path. */
export function parseSyncFilters(input: unknown): SyncFilterSet {
  const parsed = SyncFilterSetSchema.safeParse(input)
  if (!parsed.success) throw ValidationError.fromZod('sync filters', parsed.error)
  return parsed.data
}

export interface FilterSubject {
  kind: ItemKind
  fields: Fields
  meta: CrmRecordMeta
  user: MergeUser
}

const ATTENDEE_FIELDS = ['requiredAttendees', 'optionalAttendees', 'organizer'] as const

function attends(subject: FilterSubject): boolean {
  if (subject.meta.attendeeIds?.includes(subject.user.id)) return true
  const mine = new Set((subject.user.addresses ?? []).map((a) => a.toLowerCase()))
  if (mine.size === 0) return false
  for (const name of ATTENDEE_FIELDS) {
    const value = subject.fields[name]
    const list = Array.isArray(value) ? value : value ? [value] : []
    for (const entry of list) {
      const address = (entry as { address?: unknown }).address
      if (typeof address === 'string' && mine.has(address.toLowerCase())) return true
    }
  }
  return false
}

function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0)
}

/** Evaluates one condition. Pure and total: a missing field is empty, never an error. */
export function evaluateFilter(condition: FilterCondition, subject: FilterSubject): boolean {
  if ('all' in condition) return condition.all.every((c) => evaluateFilter(c, subject))
  if ('any' in condition) return condition.any.some((c) => evaluateFilter(c, subject))
  if ('not' in condition) return !evaluateFilter(condition.not, subject)
  if ('owner' in condition) return subject.meta.ownerId !== undefined && subject.meta.ownerId === subject.user.id
  if ('attendee' in condition) return attends(subject)
  if ('state' in condition) return subject.meta.state !== undefined && condition.state.in.includes(subject.meta.state)
  const value = subject.fields[condition.field]
  switch (condition.op) {
    case 'eq':
      return jsonEqual(value ?? null, condition.value ?? null)
    case 'ne':
      return !jsonEqual(value ?? null, condition.value ?? null)
    case 'in':
      return condition.value.some((v) => jsonEqual(value ?? null, v ?? null))
    case 'contains':
      if (typeof value === 'string') return value.toLowerCase().includes(condition.value.toLowerCase())
      if (Array.isArray(value)) return value.some((v) => (typeof v === 'string' ? v === condition.value : (v as { address?: string })?.address?.toLowerCase() === condition.value.toLowerCase()))
      return false
    case 'exists':
      return !isEmpty(value)
    case 'empty':
      return isEmpty(value)
  }
}

/** Whether a CRM record of `kind` belongs in the user's mailbox. E-mail is never filtered. */
export function matchesSyncFilters(filters: SyncFilterSet, subject: FilterSubject): boolean {
  if (subject.kind === 'email') return true
  const condition = filters[subject.kind]
  return condition === undefined ? true : evaluateFilter(condition, subject)
}

/** The Outlook category that tracks an item to the CRM (§5.8). */
export const TRACKED_CATEGORY = 'Tracked to Dynamics 365'

/**
 * Whether a mailbox item may be brought to the CRM: explicitly tracked (App for Outlook Track / Set
 * Regarding, reported by the mailbox adapter as `tracked`), a Regarding set, or the tracking category
 * (category tracking does not work for contacts, §5.6). Untracked items are never created in the CRM.
 */
export function isTracked(kind: ItemKind, fields: Fields, explicit: boolean | undefined, trackedCategory = TRACKED_CATEGORY): boolean {
  if (explicit === true) return true
  if (kind === 'contact') return false
  if (fields.regarding !== undefined && fields.regarding !== null) return true
  const categories = fields.categories
  return Array.isArray(categories) && categories.includes(trackedCategory)
}
