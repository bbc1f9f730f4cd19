import { z } from 'zod'
import { ValidationError } from '../errors.js'
import { type ItemKind, ItemKinds, fieldNames } from '../model/item.js'
import { type Direction, DirectionSchema, FIXED_DIRECTIONS } from './directions.js'
import { DEFAULT_SYNC_FILTERS, type SyncFilterSet, SyncFilterSetSchema, TRACKED_CATEGORY } from './filters.js'
import { SetMergeEngines, type SetMergeEngine } from './set-merge.js'
import { DEFAULT_DELETION_RULES, type DeletionRulesConfig, DeletionRulesConfigSchema } from './deletion-rules.js'

/** Conflict policies, chosen per field: what happens when both sides changed a two-way field differently. */
export const ConflictPolicies = ['crm-wins', 'exchange-wins', 'lww', 'text-merge', 'set-merge', 'keep-both'] as const
export const ConflictPolicySchema = z.enum(ConflictPolicies)
export type ConflictPolicy = (typeof ConflictPolicies)[number]

/** Fields whose values are free text (`text-merge` is allowed on them). */
export const TEXT_FIELDS: Readonly<Record<ItemKind, readonly string[]>> = {
  email: ['subject', 'body'],
  appointment: ['subject', 'body', 'location'],
  contact: ['notes', 'displayName', 'jobTitle', 'department', 'companyName'],
  task: ['subject', 'description'],
}

/** Fields whose values are sets (`set-merge` is allowed on them). */
export const SET_FIELDS: Readonly<Record<ItemKind, readonly string[]>> = {
  email: ['to', 'cc', 'bcc', 'categories'],
  appointment: ['requiredAttendees', 'optionalAttendees', 'resourceAttendees', 'categories'],
  contact: ['categories'],
  task: ['categories'],
}

/** A suggested per-field policy set: merge bodies/notes as text and attendees/categories as sets. */
export const RECOMMENDED_POLICIES: Readonly<Record<ItemKind, Readonly<Record<string, ConflictPolicy>>>> = {
  email: { categories: 'set-merge' },
  appointment: { body: 'text-merge', requiredAttendees: 'set-merge', optionalAttendees: 'set-merge', resourceAttendees: 'set-merge', categories: 'set-merge' },
  contact: { notes: 'text-merge', categories: 'set-merge' },
  task: { description: 'text-merge', categories: 'set-merge' },
}

const perField = <T extends z.ZodType>(kind: ItemKind, value: T) => z.strictObject(Object.fromEntries(fieldNames(kind).map((name) => [name, value.optional()])) as Record<string, z.ZodOptional<T>>)

const directionsFor = (kind: ItemKind) =>
  perField(kind, DirectionSchema).superRefine((table, ctx) => {
    for (const name of FIXED_DIRECTIONS[kind]) {
      const direction = (table as Record<string, Direction | undefined>)[name]
      if (direction !== undefined && direction !== 'both') ctx.addIssue({ code: 'custom', path: [name], message: `"${kind}.${name}" is fixed two-way (Appointment Time) and cannot be set to "${direction}"` })
    }
  })

const policiesFor = (kind: ItemKind) =>
  perField(kind, ConflictPolicySchema).superRefine((table, ctx) => {
    for (const [name, policy] of Object.entries(table as Record<string, ConflictPolicy | undefined>)) {
      if (policy === 'text-merge' && !TEXT_FIELDS[kind].includes(name)) ctx.addIssue({ code: 'custom', path: [name], message: `text-merge needs a text field; "${kind}.${name}" is not one (${TEXT_FIELDS[kind].join(', ')})` })
      if (policy === 'set-merge' && !SET_FIELDS[kind].includes(name)) ctx.addIssue({ code: 'custom', path: [name], message: `set-merge needs a set field; "${kind}.${name}" is not one (${SET_FIELDS[kind].join(', ')})` })
    }
  })

const byKind = <T extends z.ZodType>(make: (kind: ItemKind) => T) => z.strictObject(Object.fromEntries(ItemKinds.map((kind) => [kind, make(kind).optional()])) as Record<ItemKind, z.ZodOptional<T>>)

/**
 * The organization's merge policy (admin config). Every part is optional; the defaults are the
 * Dynamics field directions, `crm-wins` for every conflict, the plain set merge and the
 * "my records" sync filters.
 */
export const MergePolicyConfigSchema = z.strictObject({
  /** Per kind and field: overrides of the Dynamics default directions. */
  directions: byKind(directionsFor).default({}),
  /** `default` applies to every field without its own entry. */
  policies: z.strictObject({ default: ConflictPolicySchema.default('crm-wins') }).extend(byKind(policiesFor).shape).default({ default: 'crm-wins' }),
  /** Which set-merge implementation `set-merge` uses; `plain` is faster by orders of magnitude (see bench). */
  setMergeEngine: z.enum(SetMergeEngines).default('plain'),
  /** The organization's default sync filters; a user's own filters (`MergeContext.filters`) replace them. */
  filters: SyncFilterSetSchema.default(DEFAULT_SYNC_FILTERS),
  /** The category that tracks a mailbox item to the CRM. */
  trackedCategory: z.string().min(1).max(255).default(TRACKED_CATEGORY),
  /**
   * Per-item-type deletion rules (protocols.md §5.6): `itemTypeRules` switches the appointment/task/
   * contact rules on (default) or off; `contactCrmDelete` picks the reading of the UNCONFIRMED contact rule.
   */
  deletionRules: DeletionRulesConfigSchema.default(DEFAULT_DELETION_RULES),
})

export type MergePolicyConfigInput = z.input<typeof MergePolicyConfigSchema>

export interface MergePolicyConfig {
  directions: Partial<Record<ItemKind, Partial<Record<string, Direction>>>>
  policies: { default: ConflictPolicy } & Partial<Record<ItemKind, Partial<Record<string, ConflictPolicy>>>>
  setMergeEngine: SetMergeEngine
  filters: SyncFilterSet
  trackedCategory: string
  /** Always set by `parseMergePolicyConfig`; absent (a hand-built config) = `DEFAULT_DELETION_RULES`. */
  deletionRules?: DeletionRulesConfig | undefined
}

/** Validates an admin merge config. Bad input → `ValidationError` whose message names each key path. */
export function parseMergePolicyConfig(input: unknown): MergePolicyConfig {
  const parsed = MergePolicyConfigSchema.safeParse(input ?? {})
  if (!parsed.success) throw ValidationError.fromZod('merge policy config', parsed.error)
  return parsed.data as MergePolicyConfig
}
