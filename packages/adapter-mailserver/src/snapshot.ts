/**
 * Pull state. A cursor names a snapshot: per folder UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and the
 * UID → (native id, flags) map the round ended with. The next round diffs the server against it.
 * Snapshots live in the adapter (the last few, so a replayed cursor diffs against the same base);
 * a cursor from another adapter instance (a restart) raises `CursorExpiredError` and the engine
 * lists again, which creates no duplicates because native ids are Message-IDs.
 */
import { createHash, randomBytes } from 'node:crypto'
import { CursorExpiredError, type Cursor, type NativeId, type Version, asCursor, asVersion } from '@concord/engine'
import { z } from 'zod'
import { MailServerError } from './errors.js'

export interface MsgMeta {
  id: NativeId
  /** Sorted flags and keywords. */
  flags: string[]
  size: number
}

export interface FolderState {
  uidValidity: string
  uidNext: number
  /** HIGHESTMODSEQ when the server has CONDSTORE. */
  modseq?: string | undefined
  msgs: Map<number, MsgMeta>
}

export interface Loc {
  folder: string
  uid: number
  meta: MsgMeta
}

export type WorkItem = { t: 'full' | 'flags'; id: NativeId; folder: string; uid: number } | { t: 'del'; id: NativeId }

export interface Snapshot {
  id: number
  full: boolean
  folders: Map<string, FolderState>
  primary: Map<NativeId, Loc>
  work: WorkItem[]
}

const CursorSchema = z.strictObject({
  v: z.literal(1),
  p: z.enum(['imap', 'pop3']),
  e: z.string().min(1).max(64),
  s: z.number().int().nonnegative(),
  o: z.number().int().nonnegative().optional(),
  /** Per folder [UIDVALIDITY, HIGHESTMODSEQ] (informational; the snapshot is authoritative). */
  f: z.record(z.string(), z.tuple([z.string(), z.string().nullable()])).optional(),
})
export type CursorState = z.infer<typeof CursorSchema>

export function encodeCursor(state: CursorState): Cursor {
  return asCursor(`ms1.${Buffer.from(JSON.stringify(state)).toString('base64url')}`)
}

export function decodeCursor(cursor: Cursor): CursorState {
  const text = String(cursor)
  if (!text.startsWith('ms1.')) throw new MailServerError('invalid-cursor', `Not a mail-server cursor: "${text.slice(0, 40)}"`)
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(text.slice(4), 'base64url').toString('utf8'))
  } catch (error) {
    throw new MailServerError('invalid-cursor', 'The mail-server cursor is not valid JSON', {}, { cause: error })
  }
  const r = CursorSchema.safeParse(json)
  if (!r.success) throw new MailServerError('invalid-cursor', `Invalid mail-server cursor: ${r.error.issues[0]?.path.join('.') || '(root)'}: ${r.error.issues[0]?.message}`)
  return r.data
}

/** The version of an e-mail as seen at one place: changes when its flags change or it moves. */
export function versionOf(folder: string, uidValidity: string, uid: number, flags: readonly string[]): Version {
  return asVersion(createHash('sha256').update(`${folder}\n${uidValidity}\n${uid}\n${[...flags].sort().join(' ')}`).digest('base64url').slice(0, 24))
}

/**
 * Where each e-mail is read from: where it was read from last round while it is still there (so a
 * second message claiming the same Message-ID cannot take a known record over), else the first
 * configured folder holding it, newest UID first.
 */
export function primaryOf(order: readonly string[], folders: ReadonlyMap<string, FolderState>, base?: ReadonlyMap<NativeId, Loc>): Map<NativeId, Loc> {
  const out = new Map<NativeId, Loc>()
  if (base) {
    for (const [id, loc] of base) {
      const meta = folders.get(loc.folder)?.msgs.get(loc.uid)
      if (meta && meta.id === id) out.set(id, { folder: loc.folder, uid: loc.uid, meta })
    }
  }
  const sticky = new Set(out.keys())
  for (const folder of order) {
    const state = folders.get(folder)
    if (!state) continue
    for (const [uid, meta] of state.msgs) {
      if (sticky.has(meta.id)) continue
      const cur = out.get(meta.id)
      if (!cur || (cur.folder === folder && uid > cur.uid)) out.set(meta.id, { folder, uid, meta })
    }
  }
  return out
}

/** What a round reports: new or moved e-mail in full, flag changes as categories, deletes last. */
export function workBetween(base: ReadonlyMap<NativeId, Loc> | undefined, next: ReadonlyMap<NativeId, Loc>): WorkItem[] {
  const upserts: WorkItem[] = []
  const deletes: WorkItem[] = []
  for (const [id, loc] of next) {
    const old = base?.get(id)
    if (!old || old.folder !== loc.folder || old.uid !== loc.uid) upserts.push({ t: 'full', id, folder: loc.folder, uid: loc.uid })
    else if (old.meta.flags.join(' ') !== loc.meta.flags.join(' ')) upserts.push({ t: 'flags', id, folder: loc.folder, uid: loc.uid })
  }
  if (base) for (const id of base.keys()) if (!next.has(id)) deletes.push({ t: 'del', id })
  return [...upserts, ...deletes]
}

/** Keeps the last `max` snapshots of one adapter instance. */
export class SnapshotStore {
  readonly epoch = randomBytes(9).toString('base64url')
  private readonly snaps = new Map<number, Snapshot>()
  private counter = 0
  constructor(private readonly max = 8) {}

  add(s: Omit<Snapshot, 'id'>): Snapshot {
    const snap = { ...s, id: ++this.counter }
    this.snaps.set(snap.id, snap)
    while (this.snaps.size > this.max) this.snaps.delete(this.snaps.keys().next().value!)
    return snap
  }

  latest(): Snapshot | undefined {
    return this.snaps.get(this.counter)
  }

  /** The snapshot a cursor names, or `CursorExpiredError` (another instance, or evicted). */
  resolve(state: CursorState): Snapshot {
    if (state.e !== this.epoch) throw new CursorExpiredError('The cursor comes from another adapter instance (restart); the mailbox is listed again (no duplicates: ids are Message-IDs)')
    const snap = this.snaps.get(state.s)
    if (!snap) throw new CursorExpiredError('The cursor is older than the snapshots this adapter keeps; the mailbox is listed again')
    return snap
  }
}
