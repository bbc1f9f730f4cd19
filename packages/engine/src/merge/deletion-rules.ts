import { z } from 'zod'
import type { DeleteProvenance } from '../contract/replica-adapter.js'
import type { Fields, ItemKind } from '../model/item.js'
import type { Side } from '../sync/merge-strategy.js'
import type { CrmRecordMeta, MergeUser } from './context.js'

/**
 * How a CRM contact delete reaches the mailbox (protocols.md §5.6, UNCONFIRMED intent):
 * - `non-owner-only` (default, the documented wording taken literally): the mailbox copy is deleted
 *   only when the syncing user is **not** the contact's owner; the owner's own address-book entry
 *   stays, unlinked. Nobody loses a contact they own in Outlook to a CRM delete.
 * - `owner-only`: the inverted reading — only the owner's mailbox copy is deleted.
 * - `always` / `never`: every mailbox copy is deleted / kept (unlinked).
 */
export const ContactCrmDeleteRules = ['non-owner-only', 'owner-only', 'always', 'never'] as const
export type ContactCrmDeleteRule = (typeof ContactCrmDeleteRules)[number]

export const DeletionRulesConfigSchema = z.strictObject({
  /** Apply the Dynamics per-item-type deletion rules (appointments, tasks, contacts). Off = every physical delete propagates. */
  itemTypeRules: z.boolean().default(true),
  /** See `ContactCrmDeleteRules`. */
  contactCrmDelete: z.enum(ContactCrmDeleteRules).default('non-owner-only'),
})
export type DeletionRulesConfig = z.infer<typeof DeletionRulesConfigSchema>
export const DEFAULT_DELETION_RULES: DeletionRulesConfig = { itemTypeRules: true, contactCrmDelete: 'non-owner-only' }

/** What a per-item-type deletion rule looks at. */
export interface DeletionRuleInput {
  kind: ItemKind
  /** The side whose copy was deleted. */
  deleted: Side
  provenance: DeleteProvenance
  /** The item's last known fields: the base, with the surviving side's newer values over it. */
  fields: Fields
  crmMeta?: CrmRecordMeta | undefined
  user?: MergeUser | undefined
  /** The pair's injected clock (ms since epoch). Absent = start-time conditions are not evaluated. */
  now?: number | undefined
  rules?: DeletionRulesConfig | undefined
}

/** `propagate: false` = the surviving copy stays and the item is unlinked; `rule` says why (explain). */
export interface DeletionRuleResult {
  propagate: boolean
  rule: string
}

/** Physical deletes; the logical ones (left a filter, lost access, stopped tracking) keep their own handling. */
const PHYSICAL: ReadonlySet<DeleteProvenance> = new Set(['user-deleted', 'resync'])

const formatters = new Map<string, Intl.DateTimeFormat | null>()
function formatter(timeZone: string): Intl.DateTimeFormat | null {
  let f = formatters.get(timeZone)
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })
    } catch {
      f = null // not an IANA zone Intl knows (e.g. a Windows zone name)
    }
    formatters.set(timeZone, f)
  }
  return f
}

/**
 * The instant (ms since epoch) of a wall-clock time in an IANA time zone, or undefined when the
 * value or zone cannot be read. Pure and deterministic (no clock).
 */
export function instantOf(value: unknown): number | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const { dateTime, timeZone } = value as { dateTime?: unknown; timeZone?: unknown }
  if (typeof dateTime !== 'string' || typeof timeZone !== 'string') return undefined
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?$/.exec(dateTime)
  if (!m) return undefined
  const ms = m[7] === undefined ? 0 : Math.floor(Number(`0.${m[7]}`) * 1000)
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0), ms)
  if (Number.isNaN(wall)) return undefined
  if (timeZone === 'UTC' || timeZone === 'Etc/UTC') return wall
  const f = formatter(timeZone)
  if (!f) return undefined
  const offsetAt = (t: number): number => {
    const parts: Record<string, number> = {}
    for (const p of f.formatToParts(new Date(t))) if (p.type !== 'literal') parts[p.type] = Number(p.value)
    const local = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!)
    return local - (t - (((t % 1000) + 1000) % 1000))
  }
  const first = wall - offsetAt(wall)
  return wall - offsetAt(first)
}

const lower = (s: string) => s.toLowerCase()

/** Whether the syncing user organizes the appointment: the `organizer` address, else the CRM owner. Unknown = no. */
function organizerCheck(fields: Fields, meta: CrmRecordMeta | undefined, user: MergeUser): { organizer: boolean; how: string } {
  const organizer = fields.organizer as { address?: unknown } | null | undefined
  if (organizer && typeof organizer.address === 'string') {
    const address = lower(organizer.address)
    return { organizer: (user.addresses ?? []).some((a) => lower(a) === address), how: `organizer ${organizer.address}` }
  }
  if (meta?.ownerId !== undefined) return { organizer: meta.ownerId === user.id, how: `no organizer field; crm owner ${meta.ownerId}` }
  return { organizer: false, how: 'organizer unknown' }
}

const CLOSED_STATES = new Set(['completed', 'canceled', 'cancelled'])

/**
 * The Dynamics per-item-type deletion rules (protocols.md §5.6), pure. Returns undefined when no
 * item-type rule applies (a logical delete, e-mail, or rules switched off): the caller's generic
 * delete handling decides. A condition whose input is absent from the context (no `user`, no `now`)
 * is not evaluated ("absent = no restriction"); a fact that is needed but unknown (no organizer, no
 * readable start) counts against propagating, so a copy is never deleted on a guess.
 */
export function evaluateDeletionRule(input: DeletionRuleInput): DeletionRuleResult | undefined {
  const rules = input.rules ?? DEFAULT_DELETION_RULES
  if (!rules.itemTypeRules || !PHYSICAL.has(input.provenance)) return undefined
  const { kind, deleted, fields, crmMeta, user, now } = input
  const start = now === undefined ? undefined : instantOf(fields.start)
  switch (kind) {
    case 'appointment': {
      if (deleted === 'crm') {
        if (user) {
          const { organizer, how } = organizerCheck(fields, crmMeta, user)
          if (!organizer) return { propagate: false, rule: `appointment crm delete: the syncing user is not the organizer (${how}); the mailbox item stays, unlinked` }
        }
        if (now !== undefined) {
          if (start === undefined) return { propagate: false, rule: 'appointment crm delete: the start is unknown, so not known to be in the future; the mailbox item stays, unlinked' }
          if (start <= now) return { propagate: false, rule: `appointment crm delete: the start (${new Date(start).toISOString()}) is not in the future; the mailbox item stays, unlinked` }
        }
        return { propagate: true, rule: 'appointment crm delete: linked, organizer, future start, physical delete: deleted in the mailbox' }
      }
      const state = crmMeta?.state
      if (state !== undefined && CLOSED_STATES.has(lower(state))) return { propagate: false, rule: `appointment mailbox delete: the crm row is ${state}; the crm row stays, unlinked` }
      if (now !== undefined) {
        if (start === undefined) return { propagate: false, rule: 'appointment mailbox delete: the start is unknown, so not known to be in the future; the crm row stays, unlinked' }
        if (start <= now) return { propagate: false, rule: `appointment mailbox delete: the start (${new Date(start).toISOString()}) is in the past; the crm row stays, unlinked` }
      }
      if (user) {
        const { organizer, how } = organizerCheck(fields, crmMeta, user)
        if (!organizer) return { propagate: false, rule: `appointment mailbox delete: the syncing user is not the organizer (${how}); the crm row stays, unlinked` }
      }
      return { propagate: true, rule: 'appointment mailbox delete: open row, future start, organizer: deleted in the crm' }
    }
    case 'task': {
      if (deleted === 'crm') {
        if (fields.status === 'completed') return { propagate: false, rule: 'task crm delete: the mailbox task is completed; it stays, unlinked' }
        return { propagate: true, rule: 'task crm delete: the mailbox task is not completed: deleted in the mailbox' }
      }
      return { propagate: true, rule: 'task mailbox delete: deletes the crm task' }
    }
    case 'contact': {
      if (deleted === 'mailbox') return undefined
      const owner = user !== undefined && crmMeta?.ownerId !== undefined && crmMeta.ownerId === user.id
      const who = user === undefined ? 'syncing user unknown' : owner ? 'the syncing user owns the contact' : 'the syncing user does not own the contact'
      let propagate: boolean
      switch (rules.contactCrmDelete) {
        case 'always':
          propagate = true
          break
        case 'never':
          propagate = false
          break
        case 'owner-only':
          propagate = user === undefined || owner
          break
        case 'non-owner-only':
          propagate = !owner
          break
      }
      return propagate
        ? { propagate, rule: `contact crm delete (deletionRules.contactCrmDelete=${rules.contactCrmDelete}; ${who}): deleted in the mailbox` }
        : { propagate, rule: `contact crm delete (deletionRules.contactCrmDelete=${rules.contactCrmDelete}; ${who}): the mailbox contact stays, unlinked` }
    }
    default:
      return undefined
  }
}
