import { TABLES, type TableDef } from '../schema.js'

export type Primitive = string | number | boolean | null

export interface LookupRef {
  table: string
  id: string
}

export interface Row {
  id: string
  version: number
  values: Record<string, Primitive>
  lookups: Record<string, LookupRef | null>
}

export interface Tombstone {
  version: number
  deletedAt: number
}

/** Per-table change log: parallel arrays, ordered by version (versions rise globally). */
class ChangeLog {
  versions: number[] = []
  ids: string[] = []
  deletes: boolean[] = []

  push(version: number, id: string, isDelete: boolean): void {
    this.versions.push(version)
    this.ids.push(id)
    this.deletes.push(isDelete)
  }

  truncate(length: number): void {
    this.versions.length = length
    this.ids.length = length
    this.deletes.length = length
  }

  /** Index of the first entry with version > v (binary search). */
  firstAfter(v: number): number {
    let lo = 0
    let hi = this.versions.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.versions[mid] as number) <= v) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

export class TableStore {
  readonly def: TableDef
  rows = new Map<string, Row>()
  tombstones = new Map<string, Tombstone>()
  log = new ChangeLog()
  /** column → normalized value → ids */
  indexes = new Map<string, Map<string, Set<string>>>()

  constructor(def: TableDef) {
    this.def = def
    for (const col of def.indexed) this.indexes.set(col, new Map())
  }

  indexValue(row: Row, col: string): string | null {
    if (col.startsWith('_') && col.endsWith('_value')) {
      const ref = row.lookups[col.slice(1, -6)]
      return ref ? ref.id.toLowerCase() : null
    }
    const v = row.values[col]
    if (v === null || v === undefined || v === '') return null
    return String(v).toLowerCase()
  }

  addToIndexes(row: Row): void {
    for (const [col, idx] of this.indexes) {
      const key = this.indexValue(row, col)
      if (key === null) continue
      let set = idx.get(key)
      if (!set) idx.set(key, (set = new Set()))
      set.add(row.id)
    }
  }

  removeFromIndexes(row: Row): void {
    for (const [col, idx] of this.indexes) {
      const key = this.indexValue(row, col)
      if (key === null) continue
      const set = idx.get(key)
      if (set) {
        set.delete(row.id)
        if (set.size === 0) idx.delete(key)
      }
    }
  }

  lookupIndex(col: string, value: string): string[] {
    const idx = this.indexes.get(col)
    if (!idx) return []
    return [...(idx.get(value.toLowerCase()) ?? [])]
  }
}

export interface StoreSnapshot {
  format: 1
  version: number
  minValidVersion: number
  tables: Record<string, { rows: Row[]; tombstones: Array<[string, Tombstone]> }>
}

/**
 * The row store: one global version counter; every insert, update or delete takes the next version
 * and appends to the table's change log. Supports undo transactions for atomic $batch change sets.
 */
export class Store {
  version = 1000
  /** Change-tracking tokens with a version below this are expired. */
  minValidVersion = 0
  readonly tables = new Map<string, TableStore>()
  private undo: Array<() => void> | null = null
  /** Called after each committed mutation (used for persistence). */
  onChange: (() => void) | null = null

  constructor() {
    for (const def of TABLES) this.tables.set(def.logicalName, new TableStore(def))
  }

  table(logicalName: string): TableStore {
    const t = this.tables.get(logicalName)
    if (!t) throw new Error(`unknown table ${logicalName}`)
    return t
  }

  get(logicalName: string, id: string): Row | undefined {
    return this.table(logicalName).rows.get(id.toLowerCase())
  }

  private record(fn: () => void): void {
    if (this.undo) this.undo.push(fn)
  }

  private bump(): number {
    const prev = this.version
    this.record(() => {
      this.version = prev
    })
    this.version += 1
    return this.version
  }

  private logPush(t: TableStore, version: number, id: string, isDelete: boolean): void {
    const len = t.log.versions.length
    this.record(() => t.log.truncate(len))
    t.log.push(version, id, isDelete)
  }

  insert(logicalName: string, row: Omit<Row, 'version'>): Row {
    const t = this.table(logicalName)
    const id = row.id.toLowerCase()
    const version = this.bump()
    const full: Row = { id, version, values: row.values, lookups: row.lookups }
    const tomb = t.tombstones.get(id)
    if (tomb) {
      t.tombstones.delete(id)
      this.record(() => t.tombstones.set(id, tomb))
    }
    t.rows.set(id, full)
    t.addToIndexes(full)
    this.record(() => {
      t.removeFromIndexes(full)
      t.rows.delete(id)
    })
    this.logPush(t, version, id, false)
    this.changed()
    return full
  }

  update(logicalName: string, id: string, values: Record<string, Primitive>, lookups: Record<string, LookupRef | null>): Row {
    const t = this.table(logicalName)
    const old = t.rows.get(id)
    if (!old) throw new Error(`update of missing row ${logicalName}/${id}`)
    const version = this.bump()
    const next: Row = { id, version, values: { ...old.values, ...values }, lookups: { ...old.lookups, ...lookups } }
    t.removeFromIndexes(old)
    t.rows.set(id, next)
    t.addToIndexes(next)
    this.record(() => {
      t.removeFromIndexes(next)
      t.rows.set(id, old)
      t.addToIndexes(old)
    })
    this.logPush(t, version, id, false)
    this.changed()
    return next
  }

  delete(logicalName: string, id: string, now: number): void {
    const t = this.table(logicalName)
    const old = t.rows.get(id)
    if (!old) return
    const version = this.bump()
    t.removeFromIndexes(old)
    t.rows.delete(id)
    const tomb = { version, deletedAt: now }
    t.tombstones.set(id, tomb)
    this.record(() => {
      t.tombstones.delete(id)
      t.rows.set(id, old)
      t.addToIndexes(old)
    })
    this.logPush(t, version, id, true)
    this.changed()
  }

  private changed(): void {
    if (!this.undo) this.onChange?.()
  }

  /** Run fn atomically: if it throws, every mutation it made is undone. */
  transaction<T>(fn: () => T): T {
    if (this.undo) return fn()
    this.undo = []
    const undo = this.undo
    try {
      const result = fn()
      this.undo = null
      if (undo.length > 0) this.onChange?.()
      return result
    } catch (err) {
      this.undo = null
      for (let i = undo.length - 1; i >= 0; i--) (undo[i] as () => void)()
      throw err
    }
  }

  /** Async variant: used by $batch change sets, whose operations are executed sequentially. */
  async transactionAsync<T>(fn: () => Promise<T>): Promise<T> {
    if (this.undo) return fn()
    this.undo = []
    const undo = this.undo
    try {
      const result = await fn()
      this.undo = null
      if (undo.length > 0) this.onChange?.()
      return result
    } catch (err) {
      this.undo = null
      for (let i = undo.length - 1; i >= 0; i--) (undo[i] as () => void)()
      throw err
    }
  }

  get inTransaction(): boolean {
    return this.undo !== null
  }

  /** Drop tombstones deleted before `before` (epoch ms). */
  purgeTombstones(before: number): void {
    for (const t of this.tables.values()) {
      for (const [id, tomb] of t.tombstones) if (tomb.deletedAt < before) t.tombstones.delete(id)
    }
  }

  snapshot(): StoreSnapshot {
    const tables: StoreSnapshot['tables'] = {}
    for (const [name, t] of this.tables) tables[name] = { rows: [...t.rows.values()], tombstones: [...t.tombstones] }
    return { format: 1, version: this.version, minValidVersion: this.minValidVersion, tables }
  }

  /** Replace the content with a snapshot; the change log is rebuilt from row and tombstone versions. */
  load(s: StoreSnapshot): void {
    this.version = s.version
    this.minValidVersion = s.minValidVersion
    for (const [name, t] of this.tables) {
      t.rows.clear()
      t.tombstones.clear()
      t.log.truncate(0)
      for (const idx of t.indexes.values()) idx.clear()
      const data = s.tables[name]
      if (!data) continue
      const entries: Array<[number, string, boolean]> = []
      for (const row of data.rows) {
        t.rows.set(row.id, row)
        t.addToIndexes(row)
        entries.push([row.version, row.id, false])
      }
      for (const [id, tomb] of data.tombstones) {
        t.tombstones.set(id, tomb)
        entries.push([tomb.version, id, true])
      }
      entries.sort((a, b) => a[0] - b[0])
      for (const [v, id, del] of entries) t.log.push(v, id, del)
    }
  }

  clear(): void {
    this.load({ format: 1, version: 1000, minValidVersion: 0, tables: {} })
  }
}
