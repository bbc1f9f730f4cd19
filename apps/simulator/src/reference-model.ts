import { type Fields, jsonEqual } from '@concord/engine'
import type { WorkloadSide } from './workload.js'

/** One write of the workload not yet synced: its value and when it was made. */
export interface UnsyncedWrite {
  value: unknown
  t: number
}

/** How the conflict policy under test decides a field both sides changed (the reference model). */
export type ConflictRule = (crm: UnsyncedWrite, mailbox: UnsyncedWrite) => unknown

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
 */
export function settleReference(items: ReadonlyMap<string, ReferenceItem>, dirty: Set<string>, conflictRule: ConflictRule): number {
  let conflicts = 0
  for (const key of dirty) {
    const item = items.get(key)!
    const u = item.unsynced
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
  }
  dirty.clear()
  return conflicts
}
