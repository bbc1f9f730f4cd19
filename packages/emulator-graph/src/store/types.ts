import type { ItemKind } from './schemas.js'

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
