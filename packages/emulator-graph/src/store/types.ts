import type { ItemKind } from './schemas.js'
import type { SeriesShape } from './recurrence.js'

export type { ItemKind }
export type ContainerKind = 'mailFolder' | 'calendar' | 'contactFolder' | 'todoList'

/** One entry of a container's change log. Entries are appended in mailbox sequence order. */
export interface LogEntry {
  seq: number
  /** Immutable id of the item (internal key). */
  key: string
  removed: boolean
  /** Rest id the item had when it was removed (clients that do not use immutable ids know it by this). */
  restId: string
  /** Set when the entry is about one occurrence of a series (`key` is the master): its date key. */
  occ?: string | undefined
  /** Removal of a series master: the shapes its occurrences had (their removals are reported). */
  shapes?: SeriesShape[] | undefined
}

/** A modified occurrence of a series (Graph `type: "exception"`), keyed by its original date. */
export interface ExceptionRecord {
  changeKey: string
  createdDateTime: string
  lastModifiedDateTime: string
  /** Fields that differ from the master (as written to the occurrence). */
  fields: Record<string, unknown>
  startMs: number
  endMs: number
}

export interface SeriesState {
  /** Date key (yyyymmdd) → exception. */
  exceptions: Record<string, ExceptionRecord>
  /** Date keys of deleted (cancelled) occurrences. */
  cancelled: string[]
}

export interface ExtendedProperty {
  id: string
  value: string | null
}

export interface LinkedResource {
  id: string
  applicationName: string | null
  displayName: string | null
  externalId: string | null
  webUrl: string | null
}

export interface Item {
  kind: ItemKind
  immutableId: string
  restId: string
  containerId: string
  changeKey: string
  createdDateTime: string
  lastModifiedDateTime: string
  /** Sequence number at which the item entered its current container. */
  addedSeq: number
  /** Resource fields (already normalised), without id / changeKey / parentFolderId. */
  data: Record<string, unknown>
  /** Single-value extended properties keyed by normalised id. */
  ext: Record<string, ExtendedProperty>
  linkedResources: LinkedResource[]
  /** Event time range (epoch ms) for calendarView. */
  startMs?: number | undefined
  endMs?: number | undefined
  /** Series master: exceptions and cancelled occurrences. */
  series?: SeriesState | undefined
  /** Earlier recurrence shapes of this event (newest last, bounded): their occurrences are reported removed by delta. */
  pastShapes?: SeriesShape[] | undefined
  /** Only on the transient item that stands for one occurrence of a series. */
  occurrence?: { master: Item; key: string; originalStartMs: number } | undefined
  /** To Do task dateTimeTimeZone fields → stored instant (epoch ms). */
  times?: Record<string, number> | undefined
}

export interface Container {
  id: string
  kind: ContainerKind
  wellKnownName: string | undefined
  parentId: string | undefined
  changeKey: string
  data: Record<string, unknown>
  /** Immutable ids of the items in this container (insertion ordered). */
  members: Set<string>
  log: LogEntry[]
  /** Immutable id → sequence number of the newest log entry about that item. */
  lastEntry: Map<string, number>
}

export interface Category {
  id: string
  displayName: string
  color: string
}

export interface Mailbox {
  id: string
  upn: string
  displayName: string
  seq: number
  containers: Map<string, Container>
  wellKnown: Map<string, string>
  items: Map<string, Item>
  restIndex: Map<string, string>
  transactionIds: Map<string, string>
  categories: Map<string, Category>
}

export type ChangeType = 'created' | 'updated' | 'deleted'

export interface ChangeEvent {
  mailbox: Mailbox
  item: Item
  containerId: string
  changeType: ChangeType
  /** Rest id the item had in that container (differs from item.restId after a move). */
  restId: string
}
