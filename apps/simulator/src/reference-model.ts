import { type Direction, type Fields, type ItemKind, deepFreeze, isTracked, jsonEqual, sharedIfSame, sharedOrCopy } from '@concord/engine'
import type { WorkloadSide } from './workload.js'

/** One write of the workload not yet synced: its value and when it was made. */
export interface UnsyncedWrite {
  value: unknown
  t: number
}

/**
 * How the conflict policy under test decides a field both sides changed (the reference model): the
 * value both sides end with, or `KEEP_BOTH`. `t` is the side's record modification time; `base` the
 * last agreed value (undefined when none).
 */
export type ConflictRule = (crm: UnsyncedWrite, mailbox: UnsyncedWrite, base?: unknown) => unknown

/** What the reference model tracks per item: the expected state, and the writes since the last clean sync. */
export interface ReferenceItem {
  origin: WorkloadSide
  expected: { deleted: boolean; fields: Fields }
  unsynced: { crm: Map<string, UnsyncedWrite>; mailbox: Map<string, UnsyncedWrite>; deletedBy?: WorkloadSide | undefined; created: boolean }
}

/**
 * Folds the writes since the last clean sync into each dirty item's expected state, the way the
 * engine's three-way merge should: a side changed a field only if its value now differs from the
 * base; an edit beats a concurrent delete; both changed → `conflictRule`. Returns the conflicts seen.
 * After a clean cycle that did not pull the CRM side, items with CRM-side writes stay dirty (see {@link settleModel}).
 */
export function settleReference(items: ReadonlyMap<string, ReferenceItem>, dirty: Set<string>, conflictRule: ConflictRule, crmPulled = true): number {
  let conflicts = 0
  for (const key of dirty) {
    const item = items.get(key)!
    const u = item.unsynced
    if (!crmPulled && (u.crm.size > 0 || u.deletedBy === 'crm' || (u.created && item.origin === 'crm'))) continue
    if (u.deletedBy !== undefined) {
      const other = u.deletedBy === 'crm' ? u.mailbox : u.crm
      if (other.size === 0 && !(u.created && u.deletedBy !== item.origin)) item.expected = { deleted: true, fields: {} }
      else for (const [name, w] of other) item.expected.fields[name] = w.value // an edit beats a concurrent delete
    } else {
      const base = item.expected.fields
      const changed = (w: UnsyncedWrite | undefined, name: string) => w !== undefined && (u.created || !(name in base) || !jsonEqual(w.value ?? null, base[name] ?? null))
      for (const name of new Set([...u.crm.keys(), ...u.mailbox.keys()])) {
        const c = u.crm.get(name)
        const m = u.mailbox.get(name)
        const cc = changed(c, name)
        const mc = changed(m, name)
        if (cc && mc && !jsonEqual(c!.value ?? null, m!.value ?? null)) {
          conflicts++
          base[name] = conflictRule(c!, m!)
        } else if (cc) base[name] = c!.value
        else if (mc) base[name] = m!.value
      }
    }
    item.unsynced = { crm: new Map(), mailbox: new Map(), created: false }
    dirty.delete(key)
  }
  return conflicts
}

// ── the fast-mode model: per-side state, field directions and tracking ─────────────────────────

/** Returned by a `ConflictRule` to keep both values (keep-both: nothing is written, the user resolves). */
export const KEEP_BOTH: unique symbol = Symbol('keep-both')

/** What the merge under test does with an item, as the reference model needs it. */
export interface MergeModel {
  /** Direction of a field (CrmWinsMerge: always `both`; PolicyMerge: the Dynamics defaults). */
  direction(kind: ItemKind, field: string): Direction
  /** Mailbox items reach the CRM only once tracked (PolicyMerge; CrmWinsMerge syncs everything). */
  tracking: boolean
  rule: ConflictRule
}

/** The model of one item: where it should live, and the field values each side should hold. */
export interface ModelItem {
  kind: ItemKind
  origin: WorkloadSide
  /** The item reached the other side (or was agreed there): it now lives on both. */
  linked: boolean
  deleted: boolean
  present: Record<WorkloadSide, boolean>
  /**
   * The agreed fields (the engine's base). This and the sides are copied on write: a frozen one may be
   * shared (with the other side, the workload's event, a fork's template), so a writer copies it first
   * ({@link writableFields}); an unfrozen one belongs to this item alone.
   */
  base: Fields
  /** The values each side should hold (copied on write, as `base`). */
  sides: Record<WorkloadSide, Fields>
  /** The side logged a real change since the last clean sync. */
  touched: Record<WorkloadSide, boolean>
  /** Virtual time of each side's last change (the record's modification time, which `lww` compares). */
  modifiedAt: Record<WorkloadSide, number>
  deletedBy?: WorkloadSide | undefined
  /** Fields kept in conflict (keep-both): the sides legitimately differ. */
  kept?: Set<string> | undefined
}

const other = (side: WorkloadSide): WorkloadSide => (side === 'crm' ? 'mailbox' : 'crm')

const NO_FIELDS: Fields = deepFreeze({})

/** `fields` if this item owns it, else (frozen: maybe shared) a copy of it to write to. */
export const writableFields = (fields: Fields): Fields => (Object.isFrozen(fields) ? { ...fields } : fields)

/**
 * A new model item: created by a person on `side`. Every member is there from the start (the optional
 * ones undefined), so all items share one shape however their lives go, and the model's hot loops
 * read them through monomorphic property accesses.
 */
export function modelCreate(kind: ItemKind, side: WorkloadSide, fields: Fields, t: number): ModelItem {
  return {
    kind,
    origin: side,
    linked: false,
    deleted: false,
    present: { crm: side === 'crm', mailbox: side === 'mailbox' },
    base: NO_FIELDS,
    sides: { crm: side === 'crm' ? sharedOrCopy(fields) : NO_FIELDS, mailbox: side === 'mailbox' ? sharedOrCopy(fields) : NO_FIELDS },
    touched: { crm: side === 'crm', mailbox: side === 'mailbox' },
    modifiedAt: { crm: t, mailbox: t },
    deletedBy: undefined,
    kept: undefined,
  }
}

/** A person's write on `side` (the item is live there). Returns whether it changed anything the engine sees. */
export function modelWrite(item: ModelItem, side: WorkloadSide, op: 'update' | 'delete' | 'move', fields: Fields | undefined, t: number): void {
  if (op === 'delete') {
    item.deletedBy = side
    item.present[side] = false
    return
  }
  if (op === 'move') {
    item.touched[side] = true // listed again under a new id, same content
    item.modifiedAt[side] = t
    return
  }
  const values = (item.sides[side] = writableFields(item.sides[side]))
  let changed = false
  for (const [name, value] of Object.entries(fields ?? {})) {
    if (jsonEqual(values[name] ?? null, value ?? null) && name in values) continue
    values[name] = value
    changed = true
  }
  if (changed) {
    item.touched[side] = true
    item.modifiedAt[side] = t
  }
}

const flowsTo = (side: WorkloadSide, direction: Direction) => (side === 'mailbox' ? direction === 'both' || direction === 'toExchange' : direction === 'both' || direction === 'toCrm')

/**
 * Folds what changed since the last clean sync into each dirty item the way the merge under test
 * should: deletes (an edit beats a concurrent delete), creation on the other side (when the item
 * flows there: tracking, directions), then per field a side changed it if its value differs from the
 * base; one-way and `none` fields stay local; both changed differently → `rule`. Returns the conflicts.
 *
 * After a clean cycle that did not pull the CRM side (`crmPulled` false), items with CRM-side changes
 * stay dirty: the engine has not seen them, and had the mailbox side changed such an item too, its
 * If-Match push would have been refused and the cycle would not be clean.
 */
export function settleModel(items: ReadonlyMap<string, ModelItem>, dirty: Set<string>, model: MergeModel, crmPulled = true): number {
  let conflicts = 0
  for (const key of dirty) {
    const item = items.get(key)
    if (!item || item.deleted) {
      dirty.delete(key)
      continue
    }
    if (!crmPulled && (item.touched.crm || item.deletedBy === 'crm' || (!item.linked && item.origin === 'crm'))) continue
    const { kind } = item
    if (item.deletedBy !== undefined) {
      const deleted = item.deletedBy
      const survivor = other(deleted)
      if (item.linked && item.present[survivor] && item.touched[survivor]) {
        // an edit beats a concurrent delete: the record comes back where it was deleted
        const fields: Fields = {}
        for (const [name, value] of Object.entries({ ...item.base, ...item.sides[survivor] })) if (value !== undefined && flowsTo(deleted, model.direction(kind, name))) fields[name] = value
        item.sides[deleted] = item.base = deepFreeze(fields) // (shared, copied on write)
        item.present[deleted] = true
      } else {
        item.deleted = true
        item.present = { crm: false, mailbox: false }
      }
    } else if (!item.linked) {
      const from = item.origin
      const to = other(from)
      const flows = !model.tracking || from === 'crm' || isTracked(kind, item.sides.mailbox, undefined)
      if (flows && item.present[from]) {
        const created: Fields = {}
        for (const [name, value] of Object.entries(item.sides[from])) {
          if (value === undefined) continue
          const direction = model.direction(kind, name)
          // an e-mail created from the CRM carries all of its content
          if (flowsTo(to, direction) || (to === 'mailbox' && kind === 'email' && direction !== 'none')) created[name] = value
        }
        item.sides[to] = item.base = deepFreeze(sharedIfSame(created, item.sides[from])) // (shared, copied on write)
        item.present[to] = true
        item.linked = true
      }
    } else {
      const base = (item.base = writableFields(item.base))
      const crm = (item.sides.crm = writableFields(item.sides.crm))
      const mailbox = (item.sides.mailbox = writableFields(item.sides.mailbox))
      const names = new Set([...Object.keys(base), ...Object.keys(crm), ...Object.keys(mailbox)])
      const changedOn = (side: WorkloadSide, name: string) => {
        const value = item.sides[side][name]
        return item.touched[side] && value !== undefined && (!(name in base) || !jsonEqual(value, base[name]))
      }
      for (const name of names) {
        const cc = changedOn('crm', name)
        const mc = changedOn('mailbox', name)
        if (!cc && !mc) continue
        const direction = model.direction(kind, name)
        const toMailbox = flowsTo('mailbox', direction)
        const toCrm = flowsTo('crm', direction)
        const take = (value: unknown) => {
          crm[name] = value
          mailbox[name] = value
          base[name] = value
          item.kept?.delete(name)
        }
        if (cc && !mc) {
          if (toMailbox) take(crm[name])
        } else if (mc && !cc) {
          if (toCrm) take(mailbox[name])
        } else if (jsonEqual(crm[name], mailbox[name])) {
          base[name] = crm[name]
          item.kept?.delete(name)
        } else if (!toCrm && !toMailbox) {
          // neither edit is propagated
        } else if (!toCrm) take(crm[name])
        else if (!toMailbox) take(mailbox[name])
        else {
          conflicts++
          const value = model.rule({ value: crm[name], t: item.modifiedAt.crm }, { value: mailbox[name], t: item.modifiedAt.mailbox }, name in base ? base[name] : undefined)
          if (value === KEEP_BOTH) (item.kept ??= new Set()).add(name)
          else take(value)
        }
      }
    }
    item.touched.crm = false
    item.touched.mailbox = false
    item.deletedBy = undefined
    dirty.delete(key)
  }
  return conflicts
}
