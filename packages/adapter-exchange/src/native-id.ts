/** Native ids carry the kind (and the To Do list), so `confirmMissing(ids)` and pushes know where to look. */
import { SyncError, asNativeId } from '@concord/engine'
import type { ItemKind, NativeId } from '@concord/engine'

const PREFIX: Record<ItemKind, string> = { email: 'm', appointment: 'e', contact: 'c', task: 't' }
const KIND_OF: Record<string, ItemKind> = { m: 'email', e: 'appointment', c: 'contact', t: 'task' }

export interface DecodedNativeId {
  kind: ItemKind
  graphId: string
  /** To Do list of a task. */
  listId?: string | undefined
}

/** `m~{id}`, `e~{id}`, `c~{id}`, `t~{listId}~{id}` (Graph ids never contain `~`). */
export function encodeNativeId(kind: ItemKind, graphId: string, listId?: string): NativeId {
  return asNativeId(kind === 'task' ? `t~${listId ?? ''}~${graphId}` : `${PREFIX[kind]}~${graphId}`)
}

export function decodeNativeId(nativeId: string): DecodedNativeId {
  const parts = nativeId.split('~')
  const kind = KIND_OF[parts[0] ?? '']
  if (kind === 'task' && parts.length === 3 && parts[1] && parts[2]) return { kind, listId: parts[1], graphId: parts[2] }
  if (kind !== undefined && kind !== 'task' && parts.length === 2 && parts[1]) return { kind, graphId: parts[1] }
  throw new SyncError('Validation', `Not an Exchange adapter native id: '${nativeId.slice(0, 80)}'`)
}
