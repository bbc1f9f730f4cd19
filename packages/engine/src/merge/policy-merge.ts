import type { DeleteProvenance } from '../contract/replica-adapter.js'
import type { ItemKind, Fields } from '../model/item.js'
import { canonicalJson, jsonEqual } from '../util/canonical-json.js'
import type { ConflictRecord, FieldDecision, MergeDecision, MergeInput, MergeStrategy, Side, SideChange } from '../sync/merge-strategy.js'
import { Sides, otherSide } from '../sync/merge-strategy.js'
import { type ConflictPolicy, type MergePolicyConfig, parseMergePolicyConfig } from './config.js'
import type { FieldAccess, SecurityMask } from './context.js'
import { type Direction, flowsToCrm, flowsToMailbox, resolveDirections } from './directions.js'
import { isTracked, matchesSyncFilters } from './filters.js'
import { type Hlc, compareHlc, decodeHlc, encodeHlc } from './hlc.js'
import { FULL_ACCESS_MASK, fieldAccess } from './masks.js'
import { mergeSets } from './set-merge.js'
import { type TextMergeJob, mergeTexts } from './text-merge.js'

const UNKNOWN = Symbol('unknown')
type Value = unknown | typeof UNKNOWN

/**
 * The direction that really applies once field security is taken into account:
 * an unreadable field is unknown and never written (`none`); a field the user cannot update is
 * never pushed to the CRM (`both` → `toExchange`, `toCrm` → `none`).
 */
export function effectiveDirection(direction: Direction, access: FieldAccess): Direction {
  if (!access.read) return 'none'
  if (access.update) return direction
  if (direction === 'both' || direction === 'toExchange') return 'toExchange'
  return 'none'
}

interface PendingText {
  job: number
  name: string
  fd: FieldDecision
  current: Record<Side, Value>
  nullable: boolean
}

interface Plan {
  input: MergeInput
  decision: MergeDecision
  /** Null once the plan is complete (deletes, gates). */
  pushTo: Record<Side, Fields> | null
  texts: PendingText[]
  crmFields: Fields
  mailboxFields: Fields
  blockMailboxWrites: boolean
  leftFilter: boolean
}

const isUpsert = (change: SideChange | undefined): change is Extract<SideChange, { type: 'upsert' }> => change?.type === 'upsert'
const shown = (value: Value): unknown => (value === UNKNOWN ? undefined : value)

/**
 * The full per-field merge (issue "Engine merge"): per-field directions with the Dynamics defaults,
 * security masks, sync filters and tracking, pluggable conflict policies (`crm-wins`, `exchange-wins`,
 * `lww`, `text-merge`, `set-merge`, `keep-both`), delete provenance, and an explain record for every
 * field. Pure: no I/O, no clock; everything beyond the changes comes from `MergeInput.context`.
 */
export class PolicyMerge implements MergeStrategy {
  readonly config: MergePolicyConfig
  private readonly directions: Record<ItemKind, Record<string, Direction>>

  /** `config` is validated with zod (`MergePolicyConfigSchema`); a bad key throws a `ValidationError` naming it. */
  constructor(config: unknown = {}) {
    this.config = parseMergePolicyConfig(config)
    this.directions = resolveDirections(this.config.directions)
  }

  direction(kind: ItemKind, field: string): Direction {
    return this.directions[kind][field] ?? 'both'
  }

  policy(kind: ItemKind, field: string): ConflictPolicy {
    return this.config.policies[kind]?.[field] ?? this.config.policies.default
  }

  merge(input: MergeInput): MergeDecision {
    return this.mergeBatch([input])[0]!
  }

  /**
   * Merges many items at once. Text merges of the whole batch share one pair of Yjs documents
   * (materialised for the call, then dropped), which is how the text path reaches its throughput.
   */
  mergeBatch(inputs: readonly MergeInput[]): MergeDecision[] {
    const jobs: TextMergeJob[] = []
    const plans = inputs.map((input) => this.plan(input, jobs))
    const merged = jobs.length > 0 ? mergeTexts(jobs) : []
    return plans.map((plan) => this.finish(plan, merged))
  }

  private plan(input: MergeInput, jobs: TextMergeJob[]): Plan {
    const decision: MergeDecision = { writes: {}, agreedNow: {}, forget: false, fields: [], conflicts: [], notes: [] }
    const plan: Plan = { input, decision, pushTo: null, texts: [], crmFields: {}, mailboxFields: {}, blockMailboxWrites: false, leftFilter: false }
    const { changes, exists, kind } = input
    const context = input.context ?? {}
    const mask: SecurityMask = context.mask ?? FULL_ACCESS_MASK
    const notes = decision.notes!

    if (!mask.canSync) {
      notes.push('the mailbox owner has no sync privilege: nothing syncs')
      return plan
    }
    if (!mask.canReadRecord) {
      if (exists.mailbox && changes.mailbox?.type !== 'delete') decision.writes.mailbox = { type: 'delete', provenance: 'lost-access' }
      else decision.forget = !exists.crm || changes.crm?.type === 'delete'
      notes.push('the mailbox owner lost access to the record: removed from this mailbox only, never deleted in the crm')
      return plan
    }
    if (changes.crm?.type === 'delete' || changes.mailbox?.type === 'delete') {
      this.planDelete(plan, mask)
      return plan
    }

    const baseFields = input.base?.fields ?? {}
    // An unreadable field is unknown: whatever the CRM reported for it (Dataverse returns null) is dropped.
    const crmFields: Fields = {}
    if (isUpsert(changes.crm)) for (const [name, value] of Object.entries(changes.crm.fields)) if (fieldAccess(mask, name).read && value !== undefined) crmFields[name] = value
    const mailboxFields: Fields = {}
    if (isUpsert(changes.mailbox)) for (const [name, value] of Object.entries(changes.mailbox.fields)) if (value !== undefined) mailboxFields[name] = value
    plan.crmFields = crmFields
    plan.mailboxFields = mailboxFields
    const pushTo: Record<Side, Fields> = { crm: {}, mailbox: {} }
    plan.pushTo = pushTo

    // Sync filters decide which CRM records belong in this mailbox (evaluated only with CRM metadata).
    const crmLive = exists.crm || isUpsert(changes.crm)
    if (crmLive && kind !== 'email' && context.crmMeta && context.user) {
      const filters = context.filters ?? this.config.filters
      const view = { ...baseFields, ...crmFields }
      if (!matchesSyncFilters(filters, { kind, fields: view, meta: context.crmMeta, user: context.user })) {
        plan.leftFilter = true
        notes.push(exists.mailbox ? 'the record left the sync filter: removed from this mailbox only (the crm record stays)' : 'the record is outside the sync filter: not created in this mailbox')
      }
    }

    const names = new Set<string>([...Object.keys(baseFields), ...Object.keys(crmFields), ...Object.keys(mailboxFields)])
    const versions = { crm: isUpsert(changes.crm) ? changes.crm.version : undefined, mailbox: isUpsert(changes.mailbox) ? changes.mailbox.version : undefined }
    for (const name of names) {
      const access = fieldAccess(mask, name)
      const configured = this.direction(kind, name)
      const direction = effectiveDirection(configured, access)
      const inBase = name in baseFields && baseFields[name] !== undefined
      const baseValue: Value = inBase ? baseFields[name] : UNKNOWN
      const crmKnown = name in crmFields
      const mailboxKnown = name in mailboxFields
      const crmValue: Value = !access.read ? UNKNOWN : crmKnown ? crmFields[name] : baseValue
      const mailboxValue: Value = mailboxKnown ? mailboxFields[name] : baseValue
      const crmChanged = crmKnown && (!inBase || !jsonEqual(crmFields[name], baseValue))
      const mailboxChanged = mailboxKnown && (!inBase || !jsonEqual(mailboxFields[name], baseValue))
      if (!crmChanged && !mailboxChanged) continue
      const policy = this.policy(kind, name)
      const fd: FieldDecision = {
        field: name,
        base: shown(baseValue),
        crm: shown(crmValue),
        mailbox: shown(mailboxValue),
        outcome: 'blocked',
        rule: '',
        value: undefined,
        direction,
        access,
        policy,
        winner: 'none',
        versions: { crm: versions.crm, mailbox: versions.mailbox, base: input.base?.fieldVersions[name] },
      }
      decision.fields.push(fd)
      const toMailbox = flowsToMailbox(direction)
      const toCrm = flowsToCrm(direction)
      const why = direction === configured ? `direction ${configured}` : !access.read ? 'field not readable by the mailbox owner (unknown, never written)' : `no update privilege on the field (direction ${configured} acts as ${direction})`
      const take = (from: Side, rule: string, outcome: FieldDecision['outcome']) => {
        const value = from === 'crm' ? crmValue : mailboxValue
        const target = otherSide(from)
        const there = target === 'crm' ? crmValue : mailboxValue
        if (there !== UNKNOWN && jsonEqual(there, value)) decision.agreedNow[name] = value
        else pushTo[target][name] = value
        Object.assign(fd, { outcome, rule, value, winner: from })
      }
      const set = (value: unknown, rule: string) => {
        for (const side of Sides) {
          const there = side === 'crm' ? crmValue : mailboxValue
          if (there === UNKNOWN || !jsonEqual(there, value)) pushTo[side][name] = value
        }
        Object.assign(fd, { outcome: 'merged', rule, value, winner: 'merged' })
      }

      if (crmChanged && !mailboxChanged) {
        if (toMailbox) take('crm', 'only the crm changed', 'take-crm')
        else Object.assign(fd, { rule: `${why}: the crm edit is not sent to the mailbox`, value: shown(crmValue) })
        continue
      }
      if (mailboxChanged && !crmChanged) {
        if (toCrm) take('mailbox', 'only the mailbox changed', 'take-mailbox')
        else if (access.read && !access.update && configured !== 'none' && configured !== 'toCrm' && crmValue !== UNKNOWN) {
          pushTo.mailbox[name] = crmValue
          Object.assign(fd, { rule: `${why}: not sent to the crm; the mailbox copy is brought back to the crm value`, value: crmValue, winner: 'crm' })
        } else Object.assign(fd, { rule: `${why}: the mailbox edit stays local and is overwritten when the crm value changes`, value: shown(crmValue) })
        continue
      }
      // Both changed.
      if (jsonEqual(crmValue, mailboxValue)) {
        decision.agreedNow[name] = crmValue
        Object.assign(fd, { outcome: 'agreed', rule: 'both sides made the same change', value: crmValue, winner: 'both' })
        continue
      }
      if (!toCrm && !toMailbox) {
        Object.assign(fd, { rule: `${why}: neither edit is propagated`, value: undefined })
        continue
      }
      if (!toCrm) {
        take('crm', `${why}: the crm is the source`, 'conflict-crm-wins')
        continue
      }
      if (!toMailbox) {
        take('mailbox', `${why}: the mailbox is the source`, 'conflict-mailbox-wins')
        continue
      }
      switch (policy) {
        case 'crm-wins':
          take('crm', 'both changed: crm-wins', 'conflict-crm-wins')
          break
        case 'exchange-wins':
          take('mailbox', 'both changed: exchange-wins', 'conflict-mailbox-wins')
          break
        case 'lww': {
          const clocks = { crm: this.clockOf(input, 'crm', name), mailbox: this.clockOf(input, 'mailbox', name) }
          let order = compareHlc(clocks.crm, clocks.mailbox)
          if (order === 0) order = canonicalJson(crmValue) >= canonicalJson(mailboxValue) ? 1 : -1
          const winner: Side = order > 0 ? 'crm' : 'mailbox'
          fd.clocks = { crm: encodeHlc(clocks.crm), mailbox: encodeHlc(clocks.mailbox) }
          ;(decision.fieldClocks ??= {})[name] = encodeHlc(clocks[winner])
          take(winner, `both changed: lww, the later hybrid logical clock wins (${winner})`, winner === 'crm' ? 'conflict-crm-wins' : 'conflict-mailbox-wins')
          break
        }
        case 'text-merge': {
          const textual = (v: Value) => typeof v === 'string' || v === null
          if (!textual(crmValue) || !textual(mailboxValue) || !(baseValue === UNKNOWN || textual(baseValue))) {
            take('crm', 'both changed: text-merge needs text on both sides; crm-wins', 'conflict-crm-wins')
            break
          }
          plan.texts.push({ job: jobs.length, name, fd, current: { crm: crmValue, mailbox: mailboxValue }, nullable: crmValue === null || mailboxValue === null })
          jobs.push({ base: baseValue === UNKNOWN ? '' : ((baseValue as string | null) ?? ''), crm: (crmValue as string | null) ?? '', mailbox: (mailboxValue as string | null) ?? '' })
          Object.assign(fd, { outcome: 'merged', rule: 'both changed: text-merge (Yjs 3-way)', winner: 'merged' })
          break
        }
        case 'set-merge': {
          const setLike = (v: Value) => Array.isArray(v) || v === null
          if (!setLike(crmValue) || !setLike(mailboxValue) || !(baseValue === UNKNOWN || setLike(baseValue))) {
            take('crm', 'both changed: set-merge needs lists on both sides; crm-wins', 'conflict-crm-wins')
            break
          }
          const merged = mergeSets(this.config.setMergeEngine, baseValue === UNKNOWN ? null : (baseValue as unknown[] | null), crmValue as unknown[] | null, mailboxValue as unknown[] | null)
          set(merged, `both changed: set-merge (${this.config.setMergeEngine} 3-way)`)
          break
        }
        case 'keep-both': {
          const conflict: ConflictRecord = { field: name, base: shown(baseValue), crm: crmValue, mailbox: mailboxValue }
          decision.conflicts!.push(conflict)
          Object.assign(fd, { outcome: 'conflict-kept', rule: 'both changed: keep-both, kept for the user to resolve (no write, no duplicate item)', value: undefined })
          break
        }
      }
    }
    return plan
  }

  private clockOf(input: MergeInput, side: Side, name: string): Hlc {
    const encoded = input.context?.fieldClocks?.[side]?.[name]
    if (encoded !== undefined) return decodeHlc(encoded)
    const change = input.changes[side]
    // Derived clocks carry no node: a tie is broken by value, so swapping the sides changes nothing.
    return { wall: isUpsert(change) ? (change.modifiedAt ?? 0) : 0, logical: 0, node: '' }
  }

  private planDelete(plan: Plan, _mask: SecurityMask): void {
    const { input, decision } = plan
    const { changes, exists } = input
    const notes = decision.notes!
    if (changes.crm?.type === 'delete' && changes.mailbox?.type === 'delete') {
      decision.forget = true
      return
    }
    const deleted: Side = changes.crm?.type === 'delete' ? 'crm' : 'mailbox'
    const survivor = otherSide(deleted)
    const provenance = (changes[deleted] as { provenance: DeleteProvenance }).provenance
    if (!exists[survivor]) {
      decision.forget = true
      return
    }
    const survivorChange = changes[survivor]
    const context = input.context ?? {}
    if (deleted === 'crm') {
      if (provenance === 'left-filter' || provenance === 'lost-access') {
        decision.writes.mailbox = { type: 'delete', provenance }
        notes.push(`${provenance}: removed from this mailbox only`)
        return
      }
      if (isUpsert(survivorChange)) {
        this.recreate(plan, 'crm', survivorChange.fields)
        notes.push(`an edit in the mailbox beats the crm delete (${provenance}): the record is re-created in the crm`)
        return
      }
      decision.writes.mailbox = { type: 'delete', provenance }
      return
    }
    // The mailbox copy is gone.
    if (provenance === 'left-filter' || provenance === 'lost-access') {
      decision.forget = true
      notes.push(`${provenance} in the mailbox never deletes in the crm: unlinked`)
      return
    }
    if (provenance === 'stopped-tracking') {
      const owner = context.user !== undefined && context.crmMeta?.ownerId !== undefined && context.crmMeta.ownerId === context.user.id
      if (owner && !isUpsert(survivorChange)) {
        decision.writes.crm = { type: 'delete', provenance }
        notes.push('stopped tracking: the mailbox owner owns the crm record, so it is deleted')
      } else {
        decision.forget = true
        notes.push(owner ? 'stopped tracking, but the crm record changed meanwhile: kept and unlinked' : 'stopped tracking: the crm record is kept (owned by someone else) and unlinked')
      }
      return
    }
    if (isUpsert(survivorChange)) {
      this.recreate(plan, 'mailbox', survivorChange.fields)
      notes.push(`an edit in the crm beats the mailbox delete (${provenance}): the record is re-created in the mailbox`)
      return
    }
    decision.writes.crm = { type: 'delete', provenance }
  }

  /** Re-creates a deleted copy on `target` from the base plus the surviving side's fields, as far as directions and masks allow. */
  private recreate(plan: Plan, target: Side, survivorFields: Fields): void {
    const fields = this.creatable(plan.input, target, { ...(plan.input.base?.fields ?? {}), ...survivorFields })
    if (Object.keys(fields).length > 0) plan.decision.writes[target] = { type: 'create', fields }
  }

  /** The fields that may be written into a new record on `target`. */
  private creatable(input: MergeInput, target: Side, source: Fields): Fields {
    const mask = input.context?.mask ?? FULL_ACCESS_MASK
    const out: Fields = {}
    for (const [name, value] of Object.entries(source)) {
      if (value === undefined) continue
      const access = fieldAccess(mask, name)
      if (!access.read) continue
      const direction = effectiveDirection(this.direction(input.kind, name), access)
      // An e-mail created from the CRM is being sent from the CRM: it carries all of its content.
      const allowed = target === 'mailbox' ? flowsToMailbox(direction) || (input.kind === 'email' && direction !== 'none') : flowsToCrm(direction)
      if (allowed) out[name] = value
    }
    return out
  }

  private finish(plan: Plan, merged: readonly string[]): MergeDecision {
    const { decision, input, pushTo } = plan
    if (pushTo === null) return tidy(decision)
    for (const text of plan.texts) {
      let value: unknown = merged[text.job]!
      if (value === '' && text.nullable) value = null
      text.fd.value = value
      for (const side of Sides) {
        const there = text.current[side]
        if (there === UNKNOWN || !jsonEqual(there, value)) pushTo[side][text.name] = value
      }
    }
    const { exists, changes, kind } = input
    const context = input.context ?? {}
    const mask = context.mask ?? FULL_ACCESS_MASK
    const notes = decision.notes!
    for (const side of Sides) {
      const fields = pushTo[side]
      if (!exists[side]) {
        const source = otherSide(side)
        if (!exists[source]) continue
        if (side === 'mailbox') {
          if (plan.leftFilter) continue
          if (kind === 'email' && !mask.canSendFromCrm) {
            notes.push('the mailbox owner may not send e-mail from the crm: not created in the mailbox')
            continue
          }
          if (kind === 'appointment' && !mask.canSendFromCrm) {
            const view = { ...(input.base?.fields ?? {}), ...plan.crmFields }
            const attendees = [view.requiredAttendees, view.optionalAttendees].flatMap((v) => (Array.isArray(v) ? v : []))
            if (attendees.length > 0) {
              notes.push('the mailbox owner may not send invitations from the crm: the meeting is not created in the mailbox')
              continue
            }
          }
        } else if (input.base === undefined) {
          const view = { ...plan.mailboxFields }
          if (!isTracked(kind, view, context.tracked, this.config.trackedCategory)) {
            notes.push('the mailbox item is not tracked: not created in the crm')
            continue
          }
        }
        const sourceFields = source === 'crm' ? plan.crmFields : plan.mailboxFields
        const full = this.creatable(input, side, { ...(input.base?.fields ?? {}), ...sourceFields, ...fields })
        if (Object.keys(full).length > 0) decision.writes[side] = { type: 'create', fields: full }
      } else if (side === 'mailbox' && plan.leftFilter) {
        if (changes.mailbox?.type !== 'delete') decision.writes.mailbox = { type: 'delete', provenance: 'left-filter' }
      } else if (Object.keys(fields).length > 0) {
        decision.writes[side] = { type: 'update', fields }
      }
    }
    return tidy(decision)
  }
}

function tidy(decision: MergeDecision): MergeDecision {
  if (decision.conflicts?.length === 0) delete decision.conflicts
  if (decision.notes?.length === 0) delete decision.notes
  return decision
}
