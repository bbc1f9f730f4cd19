/** Turns stored items and containers into Graph JSON representations. */
import { evaluate, objectResolver, type FilterNode } from '../odata/filter.js'
import type { Container, Item, Mailbox } from './types.js'
import { utcToZoned } from '../timezones.js'

export interface RenderOptions {
  immutable: boolean
  select?: string[] | undefined
  extFilter?: FilterNode | undefined
  expandExt?: boolean | undefined
  expandLinked?: boolean | undefined
  withType?: boolean | undefined
  bodyText?: boolean | undefined
  /** `Prefer: outlook.timezone` (name as sent + its IANA zone); event start/end are expressed in it. Default UTC. */
  timeZone?: { name: string; iana: string } | undefined
}

export const ODATA_TYPE: Record<Item['kind'], string> = {
  message: '#microsoft.graph.message',
  event: '#microsoft.graph.event',
  contact: '#microsoft.graph.contact',
  task: '#microsoft.graph.todoTask',
}

export function etag(changeKey: string): string {
  return `W/"${changeKey}"`
}

export function itemId(item: Item, immutable: boolean): string {
  return immutable ? item.immutableId : item.restId
}

export function linkedResourceJson(lr: Item['linkedResources'][number]): Record<string, unknown> {
  return {
    applicationName: lr.applicationName,
    displayName: lr.displayName,
    externalId: lr.externalId,
    webUrl: lr.webUrl,
    id: lr.id,
  }
}

/** Extended properties as the filter resolver sees them (ids normalised). */
export function extForFilter(item: Item): Array<{ id: string; value: string | null }> {
  return Object.entries(item.ext).map(([id, p]) => ({ id, value: p.value }))
}

export function renderItem(item: Item, opts: RenderOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (opts.withType) out['@odata.type'] = ODATA_TYPE[item.kind]
  out['@odata.etag'] = etag(item.changeKey)
  out['id'] = itemId(item, opts.immutable)
  const full: Record<string, unknown> = {
    createdDateTime: item.createdDateTime,
    lastModifiedDateTime: item.lastModifiedDateTime,
  }
  if (item.kind !== 'task') full['changeKey'] = item.changeKey
  if (item.kind === 'message' || item.kind === 'contact') full['parentFolderId'] = item.containerId
  Object.assign(full, item.data)
  const tz = opts.timeZone ?? { name: 'UTC', iana: 'Etc/UTC' }
  if (item.kind === 'event' && item.startMs !== undefined && item.endMs !== undefined) {
    full['start'] = { dateTime: utcToZoned(item.startMs, tz.iana), timeZone: tz.name }
    full['end'] = { dateTime: utcToZoned(item.endMs, tz.iana), timeZone: tz.name }
  }
  if (item.occurrence) {
    full['seriesMasterId'] = itemId(item.occurrence.master, opts.immutable)
    full['originalStart'] = new Date(item.occurrence.originalStartMs).toISOString().replace(/\.000Z$/, 'Z')
  }
  if (item.kind === 'task' && item.times) {
    for (const [k, ms] of Object.entries(item.times)) {
      if (full[k] != null) full[k] = { dateTime: utcToZoned(ms, tz.iana), timeZone: tz.name }
    }
  }
  if (opts.bodyText && item.kind !== 'contact') {
    const body = full['body'] as { contentType?: string; content?: string } | undefined
    if (body?.contentType?.toLowerCase() === 'html') {
      full['body'] = { contentType: 'text', content: (body.content ?? '').replace(/<[^>]*>/g, '').trim() }
    }
  }
  if (opts.select) {
    for (const s of opts.select) {
      if (s === 'id') continue
      if (s in full) out[s] = full[s]
      else {
        const k = Object.keys(full).find((x) => x.toLowerCase() === s.toLowerCase())
        if (k !== undefined) out[k] = full[k]
      }
    }
  } else {
    Object.assign(out, full)
  }
  if (opts.expandExt) {
    const filter = opts.extFilter
    const props = Object.entries(item.ext)
      .filter(([key, p]) => filter === undefined || evaluate(filter, objectResolver({ id: key, value: p.value })))
      .map(([, p]) => ({ id: p.id, value: p.value }))
    if (props.length > 0) out['singleValueExtendedProperties'] = props
  }
  if (opts.expandLinked && item.kind === 'task') {
    out['linkedResources'] = item.linkedResources.map(linkedResourceJson)
  }
  return out
}

export function renderRemoved(kind: Item['kind'], id: string): Record<string, unknown> {
  return { '@odata.type': ODATA_TYPE[kind], id, '@removed': { reason: 'deleted' } }
}

export function rootFolderId(mb: Mailbox): string {
  return `AAMkAGroot${mb.id.replace(/-/g, '')}AAA=`
}

export function renderContainer(mb: Mailbox, c: Container): Record<string, unknown> {
  switch (c.kind) {
    case 'mailFolder': {
      let unread = 0
      for (const key of c.members) if (mb.items.get(key)?.data['isRead'] === false) unread++
      let children = 0
      for (const o of mb.containers.values()) if (o.parentId === c.id) children++
      return {
        id: c.id,
        displayName: c.data['displayName'],
        parentFolderId: c.parentId ?? rootFolderId(mb),
        childFolderCount: children,
        unreadItemCount: unread,
        totalItemCount: c.members.size,
        isHidden: c.data['isHidden'] ?? false,
      }
    }
    case 'calendar':
      return {
        id: c.id,
        name: c.data['name'],
        color: c.data['color'] ?? 'auto',
        hexColor: '',
        isDefaultCalendar: c.wellKnownName === 'calendar',
        changeKey: c.changeKey,
        canShare: true,
        canViewPrivateItems: true,
        canEdit: true,
        allowedOnlineMeetingProviders: [],
        defaultOnlineMeetingProvider: 'none',
        isTallyingResponses: true,
        isRemovable: c.wellKnownName !== 'calendar',
        owner: { name: mb.displayName, address: mb.upn },
      }
    case 'contactFolder':
      return { id: c.id, displayName: c.data['displayName'], parentFolderId: c.parentId ?? rootFolderId(mb) }
    case 'todoList':
      return {
        '@odata.etag': etag(c.changeKey),
        displayName: c.data['displayName'],
        isOwner: true,
        isShared: false,
        wellknownListName: c.wellKnownName === 'defaultlist' ? 'defaultList' : 'none',
        id: c.id,
      }
  }
}
