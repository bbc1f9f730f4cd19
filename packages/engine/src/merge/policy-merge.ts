import type { DeleteProvenance } from '../contract/replica-adapter.js'
import type { ItemKind, Fields } from '../model/item.js'
import { canonicalJson, jsonEqual } from '../util/canonical-json.js'
import { sharedIfSame } from '../util/deep-freeze.js'
import type { ConflictRecord, FieldDecision, MergeDecision, MergeInput, MergeStrategy, Side, SideChange } from '../sync/merge-strategy.js'
import { Sides, otherSide } from '../sync/merge-strategy.js'
import { type ConflictPolicy, type MergePolicyConfig, parseMergePolicyConfig } from './config.js'
import type { FieldAccess, SecurityMask } from './context.js'
import { type Direction, flowsToCrm, flowsToMailbox, resolveDirections } from './directions.js'
import { evaluateDeletionRule } from './deletion-rules.js'
import { isTracked, matchesSyncFilters } from './filters.js'
import { type Hlc, compareHlc, decodeHlc, encodeHlc } from './hlc.js'
import { FULL_ACCESS_MASK, fieldAccess } from './masks.js'
import { mergeSets } from './set-merge.js'
import { type TextMergeJob, mergeTexts } from './text-merge.js'

const UNKNOWN = Symbol('unknown')

/** The pseudo-field under which delete decisions are recorded for `explain` (`pair.explain(id, DELETE_EXPLAIN_FIELD)`). */
export const DELETE_EXPLAIN_FIELD = '@delete'
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
  leftFilter: boolean
}


const FULL_FIELD: FieldAccess = { read: true, update: true }
const EMPTY: Fields = Object.freeze({})

function hasKeys(fields: Fields): boolean {
  for (const _ in fields) return true
  return false
}

function note(decision: MergeDecision, text: string): void {
  ;(decision.notes ??= []).push(text)
}

function why(configured: Direction, direction: Direction, access: FieldAccess): string {
  if (direction === configured) return `direction ${configured}`
  return !access.read ? 'field not readable by the mailbox owner (unknown, never written)' : `no update privilege on the field (direction ${configured} acts as ${direction})`
}

function settle(fd: FieldDecision, outcome: FieldDecision['outcome'], rule: string, value: unknown, winner: FieldDecision['winner']): void {
  fd.outcome = outcome
  fd.rule = rule
  fd.value = value
  fd.winner = winner
}

function block(fd: FieldDecision, rule: string, value: unknown): void {
  fd.rule = rule
  fd.value = value
}

/** `from`'s value goes to the other side, unless that side already holds it (then it is agreed now). */
function take(decision: MergeDecision, pushTo: Record<Side, Fields>, fd: FieldDecision, name: string, from: Side, value: Value, there: Value, rule: string, outcome: FieldDecision['outcome']): void {
  if (there !== UNKNOWN && jsonEqual(there, value)) decision.agreedNow[name] = value
  else pushTo[otherSide(from)][name] = value
  settle(fd, outcome, rule, value, from)
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
    const jobs: TextMergeJob[] = []
    const plan = this.plan(input, jobs)
    return this.finish(plan, jobs.length > 0 ? mergeTexts(jobs) : [])
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
    const decision: MergeDecision = { writes: {}, agreedNow: {}, forget: false, fields: [] }
    const plan: Plan = { input, decision, pushTo: null, texts: [], crmFields: {}, mailboxFields: {}, leftFilter: false }
    const { changes, exists, kind } = input
    const context = input.context ?? {}
    const mask: SecurityMask = context.mask ?? FULL_ACCESS_MASK

    if (!mask.canSync) {
      note(decision, 'the mailbox owner has no sync privilege: nothing syncs')
      return plan
    }
    if (input.base?.unlinked) {
      const gone = (side: Side) => changes[side]?.type === 'delete' || !exists[side]
      if (gone('crm') && gone('mailbox')) {
        decision.forget = true
        note(decision, 'the unlinked item is gone on both sides: forgotten')
      } else note(decision, `unlinked (${input.base.unlinked.rule}): changes on either side are not synced`)
      return plan
    }
    if (!mask.canReadRecord) {
      if (exists.mailbox && changes.mailbox?.type !== 'delete') decision.writes.mailbox = { type: 'delete', provenance: 'lost-access' }
      else decision.forget = !exists.crm || changes.crm?.type === 'delete'
      note(decision, 'the mailbox owner lost access to the record: removed from this mailbox only, never deleted in the crm')
      return plan
    }
    if (changes.crm?.type === 'delete' || changes.mailbox?.type === 'delete') {
      this.planDelete(plan)
      return plan
    }

    const baseFields = input.base?.fields ?? {}
    // An unreadable field is unknown: whatever the CRM reported for it (Dataverse returns null) is dropped.
    // (Without field security the change's own fields are used as they are: no copy on the hot path.)
    let crmFields: Fields = EMPTY
    if (isUpsert(changes.crm)) {
      const source = changes.crm.fields
      if (mask.fields === undefined) crmFields = source
      else {
        crmFields = {}
        for (const name in source) if (source[name] !== undefined && fieldAccess(mask, name).read) crmFields[name] = source[name]
      }
    }
    const mailboxFields: Fields = isUpsert(changes.mailbox) ? changes.mailbox.fields : EMPTY
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
        note(decision, exists.mailbox ? 'the record left the sync filter: removed from this mailbox only (the crm record stays)' : 'the record is outside the sync filter: not created in this mailbox')
      }
    }

    const versions = { crm: isUpsert(changes.crm) ? changes.crm.version : undefined, mailbox: isUpsert(changes.mailbox) ? changes.mailbox.version : undefined }
    const field = (name: string) => this.decideField(plan, jobs, mask, name, baseFields, crmFields, mailboxFields, versions, pushTo)
    for (const name in baseFields) field(name)
    for (const name in crmFields) if (!(name in baseFields) && crmFields[name] !== undefined) field(name)
    for (const name in mailboxFields) if (!(name in baseFields) && crmFields[name] === undefined && mailboxFields[name] !== undefined) field(name)
    return plan
  }

  private decideField(plan: Plan, jobs: TextMergeJob[], mask: SecurityMask, name: string, baseFields: Fields, crmFields: Fields, mailboxFields: Fields, versions: { crm: string | undefined; mailbox: string | undefined }, pushTo: Record<Side, Fields>): void {
    const { input, decision } = plan
    const access = mask.fields === undefined ? FULL_FIELD : fieldAccess(mask, name)
    const configured = this.directions[input.kind][name] ?? 'both'
    const direction = effectiveDirection(configured, access)
    const inBase = name in baseFields && baseFields[name] !== undefined
    const baseValue: Value = inBase ? baseFields[name] : UNKNOWN
    // Absent (or an undefined member) = unknown.
    const crmKnown = crmFields[name] !== undefined
    const mailboxKnown = mailboxFields[name] !== undefined
    const crmValue: Value = !access.read ? UNKNOWN : crmKnown ? crmFields[name] : baseValue
    const mailboxValue: Value = mailboxKnown ? mailboxFields[name] : baseValue
    const crmChanged = crmKnown && (!inBase || !jsonEqual(crmValue, baseValue))
    const mailboxChanged = mailboxKnown && (!inBase || !jsonEqual(mailboxValue, baseValue))
    if (!crmChanged && !mailboxChanged) return
    const policy = this.policy(input.kind, name)
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
      versions,
      baseVersion: input.base?.fieldVersions[name],
    }
    decision.fields.push(fd)
    const toMailbox = flowsToMailbox(direction)
    const toCrm = flowsToCrm(direction)

    if (crmChanged && !mailboxChanged) {
      if (toMailbox) take(decision, pushTo, fd, name, 'crm', crmValue, mailboxValue, 'only the crm changed', 'take-crm')
      else block(fd, `${why(configured, direction, access)}: the crm edit is not sent to the mailbox`, shown(crmValue))
      return
    }
    if (mailboxChanged && !crmChanged) {
      if (toCrm) take(decision, pushTo, fd, name, 'mailbox', mailboxValue, crmValue, 'only the mailbox changed', 'take-mailbox')
      else if (access.read && !access.update && configured !== 'none' && configured !== 'toCrm' && crmValue !== UNKNOWN) {
        pushTo.mailbox[name] = crmValue
        block(fd, `${why(configured, direction, access)}: not sent to the crm; the mailbox copy is brought back to the crm value`, crmValue)
        fd.winner = 'crm'
      } else block(fd, `${why(configured, direction, access)}: the mailbox edit stays local and is overwritten when the crm value changes`, shown(crmValue))
      return
    }
    // Both changed.
    if (jsonEqual(crmValue, mailboxValue)) {
      decision.agreedNow[name] = crmValue
      settle(fd, 'agreed', 'both sides made the same change', crmValue, 'both')
      return
    }
    if (!toCrm && !toMailbox) return block(fd, `${why(configured, direction, access)}: neither edit is propagated`, undefined)
    if (!toCrm) return take(decision, pushTo, fd, name, 'crm', crmValue, mailboxValue, `${why(configured, direction, access)}: the crm is the source`, 'conflict-crm-wins')
    if (!toMailbox) return take(decision, pushTo, fd, name, 'mailbox', mailboxValue, crmValue, `${why(configured, direction, access)}: the mailbox is the source`, 'conflict-mailbox-wins')
    switch (policy) {
      case 'crm-wins':
        return take(decision, pushTo, fd, name, 'crm', crmValue, mailboxValue, 'both changed: crm-wins', 'conflict-crm-wins')
      case 'exchange-wins':
        return take(decision, pushTo, fd, name, 'mailbox', mailboxValue, crmValue, 'both changed: exchange-wins', 'conflict-mailbox-wins')
      case 'lww': {
        const clocks = { crm: this.clockOf(input, 'crm', name), mailbox: this.clockOf(input, 'mailbox', name) }
        let order = compareHlc(clocks.crm, clocks.mailbox)
        if (order === 0) order = canonicalJson(crmValue) >= canonicalJson(mailboxValue) ? 1 : -1
        const winner: Side = order > 0 ? 'crm' : 'mailbox'
        fd.clocks = { crm: encodeHlc(clocks.crm), mailbox: encodeHlc(clocks.mailbox) }
        ;(decision.fieldClocks ??= {})[name] = fd.clocks[winner]!
        if (winner === 'crm') return take(decision, pushTo, fd, name, 'crm', crmValue, mailboxValue, 'both changed: lww, the later hybrid logical clock wins (crm)', 'conflict-crm-wins')
        return take(decision, pushTo, fd, name, 'mailbox', mailboxValue, crmValue, 'both changed: lww, the later hybrid logical clock wins (mailbox)', 'conflict-mailbox-wins')
      }
      case 'text-merge': {
        const textual = (v: Value) => typeof v === 'string' || v === null
        if (!textual(crmValue) || !textual(mailboxValue) || !(baseValue === UNKNOWN || textual(baseValue))) {
          return take(decision, pushTo, fd, name, 'crm', crmValue, mailboxValue, 'both changed: text-merge needs text on both sides; crm-wins', 'conflict-crm-wins')
        }
        plan.texts.push({ job: jobs.length, name, fd, current: { crm: crmValue, mailbox: mailboxValue }, nullable: crmValue === null || mailboxValue === null })
        jobs.push({ base: baseValue === UNKNOWN ? '' : ((baseValue as string | null) ?? ''), crm: (crmValue as string | null) ?? '', mailbox: (mailboxValue as string | null) ?? '' })
        return settle(fd, 'merged', 'both changed: text-merge (Yjs 3-way)', undefined, 'merged')
      }
      case 'set-merge': {
        const setLike = (v: Value) => Array.isArray(v) || v === null
        if (!setLike(crmValue) || !setLike(mailboxValue) || !(baseValue === UNKNOWN || setLike(baseValue))) {
          return take(decision, pushTo, fd, name, 'crm', crmValue, mailboxValue, 'both changed: set-merge needs lists on both sides; crm-wins', 'conflict-crm-wins')
        }
        const merged = mergeSets(this.config.setMergeEngine, baseValue === UNKNOWN ? null : (baseValue as unknown[] | null), crmValue as unknown[] | null, mailboxValue as unknown[] | null)
        if (!jsonEqual(crmValue, merged)) pushTo.crm[name] = merged
        if (!jsonEqual(mailboxValue, merged)) pushTo.mailbox[name] = merged
        return settle(fd, 'merged', `both changed: set-merge (${this.config.setMergeEngine} 3-way)`, merged, 'merged')
      }
      case 'keep-both': {
        const conflict: ConflictRecord = { field: name, base: shown(baseValue), crm: crmValue, mailbox: mailboxValue }
        ;(decision.conflicts ??= []).push(conflict)
        return settle(fd, 'conflict-kept', 'both changed: keep-both, kept for the user to resolve (no write, no duplicate item)', undefined, 'none')
      }
    }
  }

  private clockOf(input: MergeInput, side: Side, name: string): Hlc {
    const encoded = input.context?.fieldClocks?.[side]?.[name]
    if (encoded !== undefined) return decodeHlc(encoded)
    const change = input.changes[side]
    // Derived clocks carry no node: a tie is broken by value, so swapping the sides changes nothing.
    return { wall: isUpsert(change) ? Math.floor(change.modifiedAt ?? 0) : 0, logical: 0, node: '' }
  }

  private planDelete(plan: Plan): void {
    const { input, decision } = plan
    const { changes, exists } = input
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
        note(decision, `${provenance}: removed from this mailbox only`)
        return
      }
      if (this.applyDeletionRule(plan, deleted, provenance)) return
      if (isUpsert(survivorChange)) {
        this.recreate(plan, 'crm', survivorChange.fields)
        note(decision, `an edit in the mailbox beats the crm delete (${provenance}): the record is re-created in the crm`)
        return
      }
      decision.writes.mailbox = { type: 'delete', provenance }
      return
    }
    // The mailbox copy is gone.
    if (provenance === 'left-filter' || provenance === 'lost-access') {
      decision.forget = true
      note(decision, `${provenance} in the mailbox never deletes in the crm: unlinked`)
      return
    }
    if (provenance === 'stopped-tracking') {
      const owner = context.user !== undefined && context.crmMeta?.ownerId !== undefined && context.crmMeta.ownerId === context.user.id
      if (owner && !isUpsert(survivorChange)) {
        decision.writes.crm = { type: 'delete', provenance }
        note(decision, 'stopped tracking: the mailbox owner owns the crm record, so it is deleted')
      } else {
        decision.forget = true
        note(decision, owner ? 'stopped tracking, but the crm record changed meanwhile: kept and unlinked' : 'stopped tracking: the crm record is kept (owned by someone else) and unlinked')
      }
      return
    }
    if (this.applyDeletionRule(plan, deleted, provenance)) return
    if (isUpsert(survivorChange)) {
      this.recreate(plan, 'mailbox', survivorChange.fields)
      note(decision, `an edit in the crm beats the mailbox delete (${provenance}): the record is re-created in the mailbox`)
      return
    }
    decision.writes.crm = { type: 'delete', provenance }
  }

  /**
   * The per-item-type deletion rules (protocols.md §5.6). Records the rule in explain (pseudo-field
   * `@delete`); when it keeps the delete from propagating, the item is unlinked and true is returned.
   */
  private applyDeletionRule(plan: Plan, deleted: Side, provenance: DeleteProvenance): boolean {
    const { input, decision } = plan
    const context = input.context ?? {}
    const survivor = otherSide(deleted)
    const survivorChange = input.changes[survivor]
    const fields = { ...(input.base?.fields ?? {}), ...(isUpsert(survivorChange) ? survivorChange.fields : {}) }
    const result = evaluateDeletionRule({ kind: input.kind, deleted, provenance, fields, crmMeta: context.crmMeta, user: context.user, now: context.now, rules: this.config.deletionRules })
    if (!result) return false
    decision.fields.push({
      field: DELETE_EXPLAIN_FIELD,
      base: undefined,
      crm: deleted === 'crm' ? `deleted (${provenance})` : 'kept',
      mailbox: deleted === 'mailbox' ? `deleted (${provenance})` : 'kept',
      outcome: result.propagate ? (deleted === 'crm' ? 'take-crm' : 'take-mailbox') : 'blocked',
      rule: result.rule,
      value: result.propagate ? 'deleted' : 'unlinked',
      winner: result.propagate ? deleted : survivor,
    })
    note(decision, result.rule)
    if (result.propagate) return false
    decision.unlink = result.rule
    return true
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
    for (const side of Sides) {
      const fields = pushTo[side]
      if (!exists[side]) {
        const source = otherSide(side)
        if (!exists[source]) continue
        if (side === 'mailbox') {
          if (plan.leftFilter) continue
          if (kind === 'email' && !mask.canSendFromCrm) {
            note(decision, 'the mailbox owner may not send e-mail from the crm: not created in the mailbox')
            continue
          }
          if (kind === 'appointment' && !mask.canSendFromCrm) {
            const view = { ...(input.base?.fields ?? {}), ...plan.crmFields }
            const attendees = [view.requiredAttendees, view.optionalAttendees].flatMap((v) => (Array.isArray(v) ? v : []))
            if (attendees.length > 0) {
              note(decision, 'the mailbox owner may not send invitations from the crm: the meeting is not created in the mailbox')
              continue
            }
          }
        } else if (input.base === undefined) {
          const view = { ...plan.mailboxFields }
          if (!isTracked(kind, view, context.tracked, this.config.trackedCategory)) {
            note(decision, 'the mailbox item is not tracked: not created in the crm')
            continue
          }
        }
        const sourceFields = source === 'crm' ? plan.crmFields : plan.mailboxFields
        const full = sharedIfSame(this.creatable(input, side, { ...(input.base?.fields ?? {}), ...sourceFields, ...fields }), sourceFields)
        if (hasKeys(full)) decision.writes[side] = { type: 'create', fields: full }
      } else if (side === 'mailbox' && plan.leftFilter) {
        if (changes.mailbox?.type !== 'delete') decision.writes.mailbox = { type: 'delete', provenance: 'left-filter' }
      } else if (hasKeys(fields)) {
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
