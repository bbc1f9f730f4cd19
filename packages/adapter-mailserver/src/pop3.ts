/**
 * POP3 as the incoming side: UIDL identifies messages across sessions. A round lists UIDLs, fetches
 * new ones (RETR), and reports e-mail whose every UIDL disappeared as deleted. Messages stay on the
 * server by default; with `leaveOnServer: false` a message is deleted (DELE) only once the engine
 * handed back a cursor of a completed round that contained it (so it is stored on the Concord side).
 */
import { CursorExpiredError, type Cursor, type NativeId, type RemoteChange, type PullPage, asVersion } from '@concord/engine'
import { createHash, randomBytes } from 'node:crypto'
import { MailServerError, classifyTransportError } from './errors.js'
import { Pop3Client, Pop3ProtocolError } from './pop3-client.js'
import { parseMessage, nativeIdFor } from './mime.js'
import type { MessageProblem } from './adapter.js'
import type { Pop3Incoming } from './options.js'
import { decodeCursor, encodeCursor } from './snapshot.js'

interface Pop3Snap {
  id: number
  full: boolean
  /** UIDL → native id (undefined until the message was fetched in this round). */
  uidls: Map<string, NativeId | undefined>
  work: Array<{ t: 'new'; uidl: string } | { t: 'del'; id: NativeId }>
}

type Session = Pop3Client

export class Pop3Source {
  private readonly epoch = randomBytes(9).toString('base64url')
  private readonly snaps = new Map<number, Pop3Snap>()
  private counter = 0

  constructor(
    private readonly options: Pop3Incoming,
    private readonly hooks: { report: (p: MessageProblem) => void; maxAttachmentBytes?: number | undefined },
  ) {}

  private async session<T>(what: string, fn: (pop: Session) => Promise<T>): Promise<T> {
    const pop = new Pop3Client({ host: this.options.host, port: this.options.port, secure: this.options.secure, timeoutMs: this.options.timeoutMs })
    try {
      try {
        await pop.connect(this.options.user, this.options.password)
      } catch (error) {
        if (error instanceof Pop3ProtocolError && error.response?.startsWith('-ERR')) {
          throw new MailServerError('auth-failed', `POP3 ${what}: login refused (${error.response})`, {}, { cause: error })
        }
        throw error
      }
      const out = await fn(pop)
      await pop.quit()
      return out
    } catch (error) {
      pop.close()
      if (error instanceof MailServerError || error instanceof CursorExpiredError) throw error
      throw classifyTransportError(`POP3 ${what}`, error)
    }
  }

  private static async uidlMap(pop: Session): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    for (const [n, uidl] of await pop.uidl()) out.set(uidl, n)
    return out
  }

  private resolve(e: string, s: number): Pop3Snap {
    if (e !== this.epoch) throw new CursorExpiredError('The cursor comes from another adapter instance (restart); the POP3 mailbox is listed again')
    const snap = this.snaps.get(s)
    if (!snap) throw new CursorExpiredError('The cursor is older than the snapshots this adapter keeps; the POP3 mailbox is listed again')
    return snap
  }

  async pull(cursor: Cursor | null, limit: number): Promise<PullPage> {
    const state = cursor === null ? null : decodeCursor(cursor)
    if (state && state.p !== 'pop3') throw new MailServerError('invalid-cursor', `The cursor belongs to an ${state.p} profile, this one is pop3`)
    return this.session('pull', async (pop) => {
      const onServer = await Pop3Source.uidlMap(pop)
      let snap: Pop3Snap
      let offset = 0
      if (state && state.o !== undefined) {
        snap = this.resolve(state.e, state.s)
        offset = state.o
      } else {
        const base = state ? this.resolve(state.e, state.s) : undefined
        const uidls = new Map<string, NativeId | undefined>()
        const work: Pop3Snap['work'] = []
        if (base && !this.options.leaveOnServer) {
          // Every message of a completed round the engine acknowledged is stored: remove it from the server.
          for (const [uidl, id] of base.uidls) {
            const n = onServer.get(uidl)
            if (n !== undefined && id !== undefined) {
              await pop.dele(n)
              onServer.delete(uidl)
            }
          }
        }
        for (const uidl of onServer.keys()) {
          const known = base?.uidls.get(uidl)
          uidls.set(uidl, known)
          if (!base?.uidls.has(uidl)) work.push({ t: 'new', uidl })
        }
        if (base) {
          const still = new Set([...uidls.values()].filter((v): v is NativeId => v !== undefined))
          const removedByUs = this.options.leaveOnServer ? new Set<string>() : new Set(base.uidls.keys())
          const gone = new Set<NativeId>()
          for (const [uidl, id] of base.uidls) if (id && !onServer.has(uidl) && !removedByUs.has(uidl) && !still.has(id)) gone.add(id)
          for (const id of gone) work.push({ t: 'del', id })
        }
        snap = { id: ++this.counter, full: !base, uidls, work }
        this.snaps.set(snap.id, snap)
        while (this.snaps.size > 8) this.snaps.delete(this.snaps.keys().next().value!)
      }
      const items = snap.work.slice(offset, offset + limit)
      const changes: RemoteChange[] = []
      for (const item of items) {
        if (item.t === 'del') {
          changes.push({ type: 'delete', nativeId: item.id, provenance: 'user-deleted' })
          continue
        }
        const n = onServer.get(item.uidl)
        if (n === undefined) continue
        const raw = await pop.retr(n)
        const version = asVersion(createHash('sha256').update(`pop3\n${item.uidl}`).digest('base64url').slice(0, 24))
        try {
          const parsed = await parseMessage(raw, { direction: 'incoming', flags: [], maxAttachmentBytes: this.hooks.maxAttachmentBytes })
          delete parsed.fields.categories // POP3 has no categories: unknown, not empty
          const id = nativeIdFor(parsed.fields.internetMessageId ?? undefined, { date: parsed.fields.sentAt ? new Date(parsed.fields.sentAt) : undefined, from: parsed.fields.from?.address, subject: parsed.fields.subject ?? undefined, size: raw.length })
          snap.uidls.set(item.uidl, id)
          // X-Concord-Id on mail received over POP3 is not trusted (anyone can send it).
          changes.push({ type: 'upsert', nativeId: id, kind: 'email', version, fields: parsed.fields, meta: { tracked: false } })
          for (const issue of parsed.issues) this.hooks.report({ nativeId: id, folder: 'INBOX', uid: item.uidl, outcome: 'synced', error: new MailServerError(issue.reason, `POP3 message ${item.uidl}: ${issue.message}`) })
        } catch (error) {
          const id = nativeIdFor(undefined, { subject: `pop3:${item.uidl}`, size: raw.length })
          snap.uidls.set(item.uidl, id)
          const err = error instanceof MailServerError ? error : new MailServerError('malformed-message', `POP3 message ${item.uidl} could not be parsed: ${(error as Error).message}`, {}, { cause: error })
          this.hooks.report({ nativeId: id, folder: 'INBOX', uid: item.uidl, outcome: 'envelope', error: err })
          changes.push({ type: 'upsert', nativeId: id, kind: 'email', version, fields: { direction: 'incoming' }, meta: { tracked: false } })
        }
      }
      const next = offset + items.length
      const hasMore = next < snap.work.length
      return { changes, nextCursor: encodeCursor({ v: 1, p: 'pop3', e: this.epoch, s: snap.id, ...(hasMore ? { o: next } : {}) }), hasMore, fullListing: snap.full }
    })
  }

  /** UIDLs of a native id, from the newest snapshot. */
  private uidlsOf(nativeId: NativeId): string[] {
    const latest = this.snaps.get(this.counter)
    return latest ? [...latest.uidls].filter(([, id]) => id === nativeId).map(([u]) => u) : []
  }

  async remove(nativeId: NativeId | undefined): Promise<void> {
    if (!nativeId) return
    const uidls = this.uidlsOf(nativeId)
    if (!uidls.length) return
    await this.session('delete', async (pop) => {
      const onServer = await Pop3Source.uidlMap(pop)
      for (const u of uidls) {
        const n = onServer.get(u)
        if (n !== undefined) await pop.dele(n)
      }
    })
  }

  async confirmMissing(nativeIds: readonly NativeId[]): Promise<NativeId[]> {
    if (this.snaps.size === 0) return []
    return this.session('confirm', async (pop) => {
      const onServer = await Pop3Source.uidlMap(pop)
      return nativeIds.filter((id) => {
        const uidls = new Set<string>()
        for (const snap of this.snaps.values()) for (const [u, v] of snap.uidls) if (v === id) uidls.add(u)
        // Only ids this adapter saw can be confirmed; unknown ids are left alone.
        return uidls.size > 0 && [...uidls].every((u) => !onServer.has(u))
      })
    })
  }

  async close(): Promise<void> {}
}
