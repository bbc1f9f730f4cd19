/**
 * `ReplicaAdapter` for a mailbox on a plain mail server (the SSS "POP3/IMAP + SMTP" profile and the
 * E-mail Router's job): e-mail only. Incoming over IMAP (CONDSTORE/QRESYNC when offered, plain
 * UID/flag scans otherwise) or POP3 (UIDL); outgoing over SMTP, sent once, with the sent copy
 * appended to the Sent folder on IMAP profiles. See README.md.
 */
import {
  CursorExpiredError,
  EmailFieldsSchema,
  PreconditionFailedError,
  SyncError,
  ValidationError,
  jsonEqual,
  silentLogger,
  type Cursor,
  type EmailFields,
  type Logger,
  type NativeId,
  type PullOptions,
  type PullPage,
  type PushApplied,
  type PushOp,
  type PushOptions,
  type PushResult,
  type RemoteChange,
  type ReplicaAdapter,
  type ReplicaId,
  type Version,
  asNativeId,
  asReplicaId,
} from '@concord/engine'
import { createHash } from 'node:crypto'
import { ImapFlow, type FetchMessageObject } from 'imapflow'
import { MailServerError, classifyTransportError } from './errors.js'
import { MemorySendLedger, type SendLedger, type SendLedgerEntry } from './ledger.js'
import {
  CONCORD_ID_HEADER,
  categoriesOf,
  categoryToKeyword,
  composeMessage,
  fieldsFromEnvelope,
  messageIdOf,
  nativeIdFor,
  normalizeMessageId,
  parseMessage,
  type EnvelopeFacts,
  type ParsedEmail,
} from './mime.js'
import { parseMailServerOptions, type ImapIncoming, type MailServerOptions, type MailServerOptionsInput } from './options.js'
import { Pop3Source } from './pop3.js'
import { SmtpSender } from './smtp.js'
import {
  SnapshotStore,
  decodeCursor,
  encodeCursor,
  primaryOf,
  versionOf,
  workBetween,
  type FolderState,
  type MsgMeta,
  type Snapshot,
  type WorkItem,
} from './snapshot.js'

/** One problem of one message. The message is synced anyway: in full (`synced`) or from its envelope. */
export interface MessageProblem {
  nativeId: NativeId
  folder: string
  /** IMAP UID, or the POP3 UIDL. */
  uid: number | string
  error: MailServerError
  /**
   * `synced`: the e-mail was synced with its content (a wrong charset, a missing Date, broken MIME that
   * mailparser still read, an attachment over the CRM's limit); `envelope`: only its envelope/headers
   * were synced (unparseable, or over `maxMessageBytes`).
   */
  outcome: 'synced' | 'envelope'
}

export interface MailServerAdapterDeps {
  /** Where "prepared/sent/filed" of outgoing e-mail is recorded. Default: in memory (not crash-safe). */
  ledger?: SendLedger
  logger?: Logger
  /** Called for each problem of a message (see `MessageProblem.outcome`); the other messages are not affected. */
  onMessageProblem?: (problem: MessageProblem) => void
}

const CONTENT_KEYS = ['subject', 'body', 'from', 'to', 'cc', 'bcc', 'inReplyTo'] as const

/** Where one copy of an e-mail is stored (see `locate`). */
interface StoredCopy {
  folder: string
  uid: number
  uidValidity: string
  flags: string[]
}

/** A write's `ifMatch` against the copy's current version (folder, UIDVALIDITY, UID, flags): stale → PreconditionFailedError. */
function checkIfMatch(copy: StoredCopy, ifMatch: string | undefined, what: string): void {
  if (ifMatch === undefined) return
  const current = versionOf(copy.folder, copy.uidValidity, copy.uid, copy.flags)
  if (ifMatch !== current) throw new PreconditionFailedError(`E-mail ${what} changed since version ${ifMatch} (now ${current})`)
}

export class MailServerAdapter implements ReplicaAdapter {
  readonly replicaId: ReplicaId
  readonly options: MailServerOptions
  readonly ledger: SendLedger
  private readonly logger: Logger
  private readonly onProblem: ((p: MessageProblem) => void) | undefined
  private readonly snaps = new SnapshotStore()
  private readonly smtp: SmtpSender | undefined
  private readonly pop3: Pop3Source | undefined
  private client: ImapFlow | undefined
  private vanished: { folder: string; uids: number[] } | undefined
  private sentReady = false
  /** The snapshot of the page `pull` returned last (see `trackPulled`). */
  private lastPulled: Snapshot | undefined

  constructor(options: MailServerOptionsInput, deps: MailServerAdapterDeps = {}) {
    this.options = parseMailServerOptions(options)
    this.replicaId = asReplicaId(this.options.replicaId)
    this.ledger = deps.ledger ?? new MemorySendLedger()
    this.logger = deps.logger ?? silentLogger
    this.onProblem = deps.onMessageProblem
    this.smtp = this.options.outgoing ? new SmtpSender(this.options.outgoing) : undefined
    if (this.options.incoming.protocol === 'pop3') this.pop3 = new Pop3Source(this.options.incoming, { report: (p) => this.report(p), maxAttachmentBytes: this.options.maxAttachmentBytes })
  }

  get protocol(): 'imap' | 'pop3' {
    return this.options.incoming.protocol
  }

  private get imap(): ImapIncoming {
    if (this.options.incoming.protocol !== 'imap') throw new MailServerError('unsupported-operation', 'This profile reads mail over POP3, not IMAP')
    return this.options.incoming
  }

  /** Folders read by `pull`, in priority order: the configured ones, then Sent. */
  get folders(): string[] {
    const imap = this.imap
    return [...new Set([...imap.folders, imap.sentFolder])]
  }

  private report(p: MessageProblem) {
    this.logger.warn({ nativeId: p.nativeId, folder: p.folder, uid: p.uid, reason: p.error.reason, outcome: p.outcome, err: p.error.message }, p.outcome === 'envelope' ? 'message synced from its envelope only' : 'message synced with a problem')
    this.onProblem?.(p)
  }

  // ---- connection -------------------------------------------------------------------------------

  private async connection(): Promise<ImapFlow> {
    if (this.client?.usable) return this.client
    this.dropConnection()
    const imap = this.imap
    const client = new ImapFlow({
      host: imap.host,
      port: imap.port,
      secure: imap.secure,
      auth: { user: imap.user, pass: imap.password },
      logger: false,
      qresync: imap.useCondstore,
      disableAutoIdle: true,
      disableCompression: true,
      connectionTimeout: imap.timeoutMs,
      greetingTimeout: imap.timeoutMs,
      socketTimeout: imap.timeoutMs,
      expungeHandler: (event) => {
        if (event.vanished && this.vanished && event.path === this.vanished.folder && typeof event.uid === 'number') this.vanished.uids.push(event.uid)
      },
    })
    client.on('error', (err: unknown) => this.logger.warn({ err: (err as Error)?.message }, 'IMAP connection error'))
    try {
      await client.connect()
    } catch (error) {
      client.close()
      throw classifyTransportError(`IMAP ${imap.host}:${imap.port}`, error)
    }
    this.client = client
    this.sentReady = false
    return client
  }

  private dropConnection() {
    if (this.client) {
      try {
        this.client.close()
      } catch {
        // already closed
      }
    }
    this.client = undefined
  }

  /** Runs `fn` on the IMAP connection; a transport failure drops the connection (the next call reconnects). */
  private async withImap<T>(what: string, fn: (client: ImapFlow) => Promise<T>): Promise<T> {
    const client = await this.connection()
    try {
      return await fn(client)
    } catch (error) {
      if (error instanceof SyncError) {
        if (error instanceof MailServerError && error.reason === 'connection-lost') this.dropConnection()
        throw error
      }
      const classified = classifyTransportError(`IMAP ${what}`, error)
      if (!client.usable || (classified instanceof MailServerError && classified.reason === 'connection-lost')) this.dropConnection()
      throw classified
    }
  }

  private async ensureSentFolder(client: ImapFlow) {
    if (this.sentReady) return
    const sent = this.imap.sentFolder
    const list = await client.list()
    if (!list.some((m) => m.path === sent)) {
      try {
        await client.mailboxCreate(sent)
      } catch (error) {
        // created concurrently by another client: fine if it now exists
        const again = await client.list()
        if (!again.some((m) => m.path === sent)) throw error
      }
    }
    this.sentReady = true
  }

  /** True when the server offers CONDSTORE and it is used for this profile. */
  async usesCondstore(): Promise<boolean> {
    return this.withImap('capabilities', async (client) => this.imap.useCondstore && client.enabled.has('CONDSTORE'))
  }

  // ---- pull -------------------------------------------------------------------------------------

  async pull(cursor: Cursor | null, options: PullOptions): Promise<PullPage> {
    const limit = Math.max(1, Math.floor(options.limit))
    throwIfAborted(options.signal)
    if (this.pop3) return this.pop3.pull(cursor, limit)
    const state = cursor === null ? null : decodeCursor(cursor)
    if (state && state.p !== 'imap') throw new MailServerError('invalid-cursor', `The cursor belongs to a ${state.p} profile, this one is imap`)
    let snap: Snapshot
    let offset = 0
    if (state && state.o !== undefined) {
      snap = this.snaps.resolve(state)
      offset = state.o
    } else {
      const base = state ? this.snaps.resolve(state) : undefined
      snap = await this.withImap('pull', (client) => this.round(client, base))
    }
    throwIfAborted(options.signal)
    this.lastPulled = snap
    const items = snap.work.slice(offset, offset + limit)
    const changes = items.length ? await this.withImap('fetch', (client) => this.materialize(client, items, snap)) : []
    const next = offset + items.length
    const hasMore = next < snap.work.length
    const f: Record<string, [string, string | null]> = {}
    for (const [folder, s] of snap.folders) f[folder] = [s.uidValidity, s.modseq ?? null]
    const nextCursor = encodeCursor({ v: 1, p: 'imap', e: this.snaps.epoch, s: snap.id, ...(hasMore ? { o: next } : {}), f })
    return { changes, nextCursor, hasMore, fullListing: snap.full }
  }

  /** Diffs every folder against `base` and stores the new snapshot with the round's work list. */
  private async round(client: ImapFlow, base: Snapshot | undefined): Promise<Snapshot> {
    await this.ensureSentFolder(client)
    const order = this.folders
    const folders = new Map<string, FolderState>()
    for (const folder of order) {
      const old = base?.folders.get(folder)
      if (base && !old) throw new CursorExpiredError(`Folder "${folder}" was not part of the cursor's round; listing again`)
      folders.set(folder, await this.scanFolder(client, folder, old))
    }
    const primary = primaryOf(order, folders, base?.primary)
    return this.snaps.add({ full: !base, folders, primary, work: workBetween(base?.primary, primary) })
  }

  private async scanFolder(client: ImapFlow, folder: string, old: FolderState | undefined): Promise<FolderState> {
    let mb
    try {
      mb = await client.mailboxOpen(folder, { readOnly: true })
    } catch (error) {
      if (!client.usable) throw error
      throw new MailServerError('invalid-options', `Folder "${folder}" cannot be opened (incoming.folders): ${(error as Error).message}${typeof (error as { responseText?: unknown }).responseText === 'string' ? ` (${(error as { responseText: string }).responseText})` : ''}`, {}, { cause: error })
    }
    const uidValidity = String(mb.uidValidity)
    const modseq = mb.highestModseq !== undefined && !mb.noModseq ? String(mb.highestModseq) : undefined
    if (old && old.uidValidity !== uidValidity) {
      throw new CursorExpiredError(`UIDVALIDITY of "${folder}" changed (${old.uidValidity} → ${uidValidity}): every UID is void; listing again`)
    }
    const msgs = new Map(old?.msgs ?? [])
    const meta = (m: FetchMessageObject): MsgMeta => ({
      id: nativeIdFor(m.envelope?.messageId, { date: toDate(m.envelope?.date) ?? toDate(m.internalDate), from: m.envelope?.from?.[0]?.address, subject: m.envelope?.subject, size: m.size }),
      flags: flagList(m.flags),
      size: m.size ?? 0,
    })
    const condstore = this.imap.useCondstore && client.enabled.has('CONDSTORE') && modseq !== undefined
    if (mb.exists === 0) {
      msgs.clear()
    } else if (!old) {
      for await (const m of client.fetch('1:*', { uid: true, flags: true, envelope: true, size: true, internalDate: true })) msgs.set(m.uid, meta(m))
    } else if (condstore && old.modseq !== undefined) {
      if (old.modseq !== modseq) {
        const qresync = client.enabled.has('QRESYNC')
        this.vanished = { folder, uids: [] }
        try {
          for await (const m of client.fetch('1:*', { uid: true, flags: true, envelope: true, size: true, internalDate: true }, { uid: true, changedSince: BigInt(old.modseq) })) {
            const known = msgs.get(m.uid)
            msgs.set(m.uid, known ? { ...known, flags: flagList(m.flags) } : meta(m))
          }
          if (qresync) for (const uid of this.vanished.uids) msgs.delete(uid)
        } finally {
          this.vanished = undefined
        }
        if (!qresync) await this.dropExpunged(client, msgs)
      }
    } else {
      // Plain scan: every UID's flags, envelopes only for UIDs not seen before.
      const current = new Map<number, string[]>()
      for await (const m of client.fetch('1:*', { uid: true, flags: true })) current.set(m.uid, flagList(m.flags))
      for (const uid of [...msgs.keys()]) if (!current.has(uid)) msgs.delete(uid)
      const unknown: number[] = []
      for (const [uid, flags] of current) {
        const known = msgs.get(uid)
        if (known) msgs.set(uid, { ...known, flags })
        else unknown.push(uid)
      }
      if (unknown.length) for await (const m of client.fetch(unknown.join(','), { uid: true, flags: true, envelope: true, size: true, internalDate: true }, { uid: true })) msgs.set(m.uid, meta(m))
    }
    return { uidValidity, uidNext: mb.uidNext, modseq, msgs }
  }

  private async dropExpunged(client: ImapFlow, msgs: Map<number, MsgMeta>) {
    const all = await client.search({ all: true }, { uid: true })
    const present = new Set(all || [])
    for (const uid of [...msgs.keys()]) if (!present.has(uid)) msgs.delete(uid)
  }

  private async materialize(client: ImapFlow, items: readonly WorkItem[], snap: Snapshot): Promise<RemoteChange[]> {
    const max = this.options.maxMessageBytes
    const fetched = new Map<string, FetchMessageObject>()
    const parsing = new Map<string, Promise<{ ok: true; value: ParsedEmail } | { ok: false; error: unknown }>>()
    const byFolder = new Map<string, { normal: number[]; large: number[] }>()
    for (const item of items) {
      if (item.t !== 'full') continue
      const size = snap.folders.get(item.folder)?.msgs.get(item.uid)?.size ?? 0
      const group = byFolder.get(item.folder) ?? { normal: [], large: [] }
      ;(size > max ? group.large : group.normal).push(item.uid)
      byFolder.set(item.folder, group)
    }
    for (const [folder, group] of byFolder) {
      await client.mailboxOpen(folder, { readOnly: true })
      if (group.normal.length)
        for await (const m of client.fetch(group.normal.join(','), { uid: true, envelope: true, internalDate: true, size: true, source: true }, { uid: true })) {
          const key = `${folder}\n${m.uid}`
          fetched.set(key, m)
          // Parse while the rest of the page streams in (mailparser is the CPU-heavy part).
          const flags = snap.folders.get(folder)?.msgs.get(m.uid)?.flags ?? []
          if (m.source) parsing.set(key, settle(parseMessage(m.source, { direction: this.directionOf(folder), flags, receivedAt: toDate(m.internalDate), maxAttachmentBytes: this.options.maxAttachmentBytes })))
        }
      if (group.large.length)
        for await (const m of client.fetch(group.large.join(','), { uid: true, envelope: true, internalDate: true, size: true }, { uid: true })) fetched.set(`${folder}\n${m.uid}`, m)
    }
    const changes: RemoteChange[] = []
    for (const item of items) {
      if (item.t === 'del') {
        changes.push({ type: 'delete', nativeId: item.id, provenance: 'user-deleted' })
        continue
      }
      const state = snap.folders.get(item.folder)!
      const meta = state.msgs.get(item.uid)!
      const version = versionOf(item.folder, state.uidValidity, item.uid, meta.flags)
      const categories = categoriesOf(meta.flags)
      const tracked = categories.includes(this.options.trackingCategory)
      if (item.t === 'flags') {
        changes.push({ type: 'upsert', nativeId: item.id, kind: 'email', version, fields: { categories }, meta: { tracked } })
        continue
      }
      const m = fetched.get(`${item.folder}\n${item.uid}`)
      if (!m) continue // expunged since the round was computed: the next round reports the delete
      const ctx = { direction: this.directionOf(item.folder), flags: meta.flags, receivedAt: toDate(m.internalDate), maxAttachmentBytes: this.options.maxAttachmentBytes }
      let fields: EmailFields
      let concordId: string | undefined
      if (!m.source) {
        fields = fieldsFromEnvelope(envelopeFacts(m), ctx)
        this.report({ nativeId: item.id, folder: item.folder, uid: item.uid, outcome: 'envelope', error: new MailServerError('message-too-large', `Message ${item.folder}/${item.uid} is ${m.size ?? meta.size} bytes, above maxMessageBytes (${max}); reported from its envelope, body not downloaded`) })
      } else {
        const result = await (parsing.get(`${item.folder}\n${item.uid}`) ?? settle(parseMessage(m.source, ctx)))
        if (result.ok) {
          fields = result.value.fields
          for (const issue of result.value.issues) {
            this.report({ nativeId: item.id, folder: item.folder, uid: item.uid, outcome: 'synced', error: new MailServerError(issue.reason, `Message ${item.folder}/${item.uid}: ${issue.message}`) })
          }
          // X-Concord-Id is trusted only where Concord writes it (the Sent copy of e-mail it sent):
          // anyone can put the header on a message mailed to this inbox.
          if (item.folder === this.imap.sentFolder) concordId = result.value.concordId
        } else {
          const error = result.error
          const err = new MailServerError('malformed-message', `Message ${item.folder}/${item.uid} could not be parsed: ${(error as Error).message}; reported from its envelope`, {}, { cause: error })
          this.report({ nativeId: item.id, folder: item.folder, uid: item.uid, outcome: 'envelope', error: err })
          fields = fieldsFromEnvelope(envelopeFacts(m), ctx)
        }
      }
      const checked = EmailFieldsSchema.safeParse(fields)
      if (!checked.success) {
        this.report({ nativeId: item.id, folder: item.folder, uid: item.uid, outcome: 'envelope', error: new MailServerError('malformed-message', `Message ${item.folder}/${item.uid} has invalid fields: ${checked.error.issues[0]?.path.join('.')}: ${checked.error.issues[0]?.message}`) })
        fields = { categories, direction: ctx.direction }
      }
      changes.push({
        type: 'upsert',
        nativeId: item.id,
        kind: 'email',
        version,
        fields,
        ...(concordId ? { concordId: concordId as never } : {}),
        ...(ctx.receivedAt ? { modifiedAt: ctx.receivedAt.getTime() } : {}),
        meta: { tracked },
      })
    }
    return changes
  }

  private directionOf(folder: string): 'incoming' | 'outgoing' {
    return folder === this.imap.sentFolder ? 'outgoing' : 'incoming'
  }

  // ---- push -------------------------------------------------------------------------------------

  async push(ops: readonly PushOp[], options: PushOptions = {}): Promise<PushResult> {
    const result: PushResult = { applied: [], rejected: [] }
    for (const op of ops) {
      try {
        throwIfAborted(options.signal)
        if (op.kind !== 'email') {
          throw new MailServerError('unsupported-kind', `A POP3/IMAP + SMTP profile syncs e-mail only: ${op.kind}s are not supported (appointments, contacts and tasks need an Exchange profile)`)
        }
        if (op.type === 'create') result.applied.push(await this.create(op))
        else if (op.type === 'update') result.applied.push(await this.update(op))
        else result.applied.push(await this.remove(op))
      } catch (error) {
        const err = error instanceof SyncError ? error : classifyTransportError('push', error)
        result.rejected.push({ opId: op.opId, error: err })
      }
    }
    return result
  }

  private parseFields(fields: unknown, what: string): EmailFields {
    const r = EmailFieldsSchema.safeParse(fields)
    if (!r.success) throw ValidationError.fromZod(what, r.error)
    return r.data
  }

  private generatedMessageId(concordId: string, fields: EmailFields): string {
    const domain = this.options.messageIdDomain ?? fields.from?.address.split('@')[1] ?? 'concord.invalid'
    const hash = createHash('sha256').update(`${this.replicaId}\n${concordId}`).digest('hex').slice(0, 32)
    return `<concord.${hash}@${domain}>`
  }

  private async create(op: Extract<PushOp, { type: 'create' }>): Promise<PushApplied> {
    const fields = this.parseFields(op.fields, 'e-mail to send')
    if (fields.direction === 'incoming') {
      throw new MailServerError('unsupported-operation', 'Only outgoing e-mail can be created on a mail server (it is sent over SMTP); field "direction" is "incoming"')
    }
    if (!this.smtp) throw new MailServerError('invalid-options', 'The profile has no outgoing (SMTP) server; cannot send e-mail')
    if (!fields.from) throw new MailServerError('invalid-email', 'The e-mail to send has no sender (field "from")')
    const concordId = String(op.concordId)
    let entry = await this.ledger.get(concordId)
    if (!entry && this.protocol === 'imap') {
      // No ledger record (e.g. a fresh ledger): a Sent copy stamped with this Concord id means it went out.
      const found = await this.withImap('search', (client) => this.findSentCopy(client, { concordId }))
      if (found) return { opId: op.opId, nativeId: found.nativeId, version: found.version }
    }
    const messageId = entry?.messageId ?? normalizeMessageId(fields.internetMessageId) ?? this.generatedMessageId(concordId, fields)
    const nativeId = asNativeId(`mid:${messageId}`)
    if (!entry) {
      entry = { concordId, messageId, state: 'prepared', at: Date.now() }
      await this.ledger.put(entry)
      const date = new Date(entry.at)
      const raw = await composeMessage({ fields, messageId, concordId, date, keepBcc: false })
      const to = [...(fields.to ?? []), ...(fields.cc ?? []), ...(fields.bcc ?? [])].map((a) => a.address)
      await this.smtp.send({ from: fields.from.address, to }, raw)
      entry = { ...entry, state: 'sent' }
      await this.ledger.put(entry)
    } else if (entry.state === 'prepared') {
      const found = this.protocol === 'imap' ? await this.withImap('search', (client) => this.findSentCopy(client, { messageId })) : undefined
      if (!found) {
        throw new MailServerError(
          'send-uncertain',
          `E-mail ${messageId} (Concord id ${concordId}) was handed to SMTP when the previous attempt stopped; it is not sent again automatically. ` +
            'Check the recipients, then call resolveUncertainSend(concordId, "resend" | "mark-sent").',
        )
      }
      entry = { ...entry, state: 'sent' }
      await this.ledger.put(entry)
    }
    if (this.protocol === 'pop3') return { opId: op.opId, nativeId }
    const filed = await this.withImap('append', async (client) => {
      const existing = await this.findSentCopy(client, { messageId })
      if (existing) return existing
      const raw = await composeMessage({ fields, messageId, concordId, date: new Date(entry.at), keepBcc: true })
      const flags = ['\\Seen', ...(fields.categories ?? []).map(categoryToKeyword)]
      const res = await client.append(this.imap.sentFolder, raw, flags, new Date(entry.at))
      if (!res || !res.uid || res.uidValidity === undefined) return undefined
      return { nativeId, version: versionOf(this.imap.sentFolder, String(res.uidValidity), res.uid, flags) }
    })
    if (entry.state !== 'filed') await this.ledger.put({ ...entry, state: 'filed', at: entry.at })
    return { opId: op.opId, nativeId, ...(filed ? { version: filed.version } : {}) }
  }

  /**
   * After `send-uncertain`: `mark-sent` records the e-mail as sent (the next push files the Sent
   * copy), `resend` forgets the attempt so the next push sends it again with the same Message-ID.
   */
  async resolveUncertainSend(concordId: string, decision: 'resend' | 'mark-sent'): Promise<void> {
    const entry = await this.ledger.get(concordId)
    if (!entry || entry.state !== 'prepared') throw new MailServerError('unsupported-operation', `No uncertain send is recorded for Concord id ${concordId}`)
    if (decision === 'mark-sent') await this.ledger.put({ ...entry, state: 'sent' })
    else await this.ledger.delete(concordId)
  }

  private async findSentCopy(client: ImapFlow, by: { messageId?: string; concordId?: string }): Promise<{ nativeId: NativeId; version: Version } | undefined> {
    await this.ensureSentFolder(client)
    const folder = this.imap.sentFolder
    const mb = await client.mailboxOpen(folder, { readOnly: true })
    if (mb.exists === 0) return undefined
    const header = by.messageId ? { 'message-id': by.messageId } : { [CONCORD_ID_HEADER.toLowerCase()]: by.concordId! }
    const uids = (await client.search({ header }, { uid: true })) || []
    for (const uid of uids.sort((a, b) => b - a)) {
      const m = await client.fetchOne(String(uid), { uid: true, flags: true, envelope: true, size: true, headers: [CONCORD_ID_HEADER.toLowerCase()] }, { uid: true })
      if (!m) continue
      const mid = normalizeMessageId(m.envelope?.messageId)
      if (by.messageId && mid !== by.messageId) continue
      if (by.concordId && headerValue(m.headers, CONCORD_ID_HEADER) !== by.concordId) continue
      const nativeId = nativeIdFor(mid, { date: toDate(m.envelope?.date), from: m.envelope?.from?.[0]?.address, subject: m.envelope?.subject, size: m.size })
      return { nativeId, version: versionOf(folder, String(mb.uidValidity), uid, flagList(m.flags)) }
    }
    return undefined
  }

  /** Every place an e-mail is stored in the synced folders (newest UID first per folder). */
  private async locate(client: ImapFlow, nativeId: NativeId | undefined, concordId: string | undefined): Promise<StoredCopy[]> {
    const out: StoredCopy[] = []
    const mid = nativeId ? messageIdOf(nativeId) : undefined
    if (nativeId && !mid) {
      // A hash id (no Message-ID): the newest snapshot knows where it is.
      const loc = this.snaps.latest()?.primary.get(nativeId)
      if (!loc) return out
      const mb = await client.mailboxOpen(loc.folder, { readOnly: true })
      const m = mb.exists ? await client.fetchOne(String(loc.uid), { uid: true, flags: true }, { uid: true }) : false
      if (m) out.push({ folder: loc.folder, uid: m.uid, uidValidity: String(mb.uidValidity), flags: flagList(m.flags) })
      return out
    }
    if (!mid && !concordId) return out
    await this.ensureSentFolder(client)
    for (const folder of this.folders) {
      const mb = await client.mailboxOpen(folder, { readOnly: true })
      if (mb.exists === 0) continue
      const header = mid ? { 'message-id': mid } : { [CONCORD_ID_HEADER.toLowerCase()]: concordId! }
      const uids = (await client.search({ header }, { uid: true })) || []
      if (!uids.length) continue
      for await (const m of client.fetch(uids.join(','), { uid: true, flags: true, envelope: true }, { uid: true })) {
        if (mid && normalizeMessageId(m.envelope?.messageId) !== mid) continue
        out.push({ folder, uid: m.uid, uidValidity: String(mb.uidValidity), flags: flagList(m.flags) })
      }
    }
    const rank = (f: string) => this.folders.indexOf(f)
    return out.sort((a, b) => rank(a.folder) - rank(b.folder) || b.uid - a.uid)
  }

  private async update(op: Extract<PushOp, { type: 'update' }>): Promise<PushApplied> {
    const patch = this.parseFields(op.fields, 'e-mail update')
    if (this.protocol === 'pop3') {
      if (patch.categories?.includes(this.options.trackingCategory)) throw manualTrackingUnsupported()
      throw new MailServerError('unsupported-operation', 'A POP3 mailbox cannot change stored e-mail (no flags, no folders); only IMAP profiles accept updates')
    }
    return this.withImap('update', async (client) => {
      const locs = await this.locate(client, op.nativeId, undefined)
      const loc = locs[0]
      if (!loc) throw new SyncError('NotFound', `E-mail ${op.nativeId} is not in the synced folders`)
      checkIfMatch(loc, op.ifMatch, op.nativeId)
      const wantedKeywords = patch.categories === undefined ? undefined : (patch.categories ?? []).map(categoryToKeyword)
      const currentKeywords = loc.flags.filter((f) => categoriesOf([f]).length > 0)
      const keepSystem = loc.flags.filter((f) => categoriesOf([f]).length === 0)
      await client.mailboxOpen(loc.folder)
      const m = await client.fetchOne(String(loc.uid), { uid: true, source: true, internalDate: true }, { uid: true })
      if (!m || !m.source) throw new SyncError('NotFound', `E-mail ${op.nativeId} disappeared while updating it`)
      const parsed = await parseMessage(m.source, { direction: loc.folder === this.imap.sentFolder ? 'outgoing' : 'incoming', flags: loc.flags })
      const contentChanged = CONTENT_KEYS.some((k) => patch[k] !== undefined && !jsonEqual(patch[k] ?? null, parsed.fields[k] ?? (k === 'to' || k === 'cc' || k === 'bcc' ? [] : null)))
      const keywords = wantedKeywords ?? currentKeywords
      if (contentChanged) {
        // Message content on IMAP is immutable: replace it (same Message-ID), as clients do for drafts.
        const merged: EmailFields = { ...parsed.fields }
        for (const k of CONTENT_KEYS) if (patch[k] !== undefined) (merged as Record<string, unknown>)[k] = patch[k]
        const messageId = normalizeMessageId(parsed.fields.internetMessageId) ?? messageIdOf(op.nativeId) ?? this.generatedMessageId(String(op.concordId), merged)
        const raw = await composeMessage({ fields: merged, messageId, concordId: String(op.concordId), date: parsed.fields.sentAt ? new Date(parsed.fields.sentAt) : new Date(), keepBcc: true, references: parsed.references })
        const flags = [...keepSystem.filter((f) => f !== '\\Recent'), ...keywords]
        const res = await client.append(loc.folder, raw, flags, toDate(m.internalDate) ?? new Date())
        if (!res || !res.uid) throw new SyncError('Transient', `APPEND to ${loc.folder} returned no UID`)
        await client.mailboxOpen(loc.folder)
        await client.messageDelete(String(loc.uid), { uid: true })
        const after = await client.fetchOne(String(res.uid), { uid: true, flags: true }, { uid: true })
        return { opId: op.opId, nativeId: op.nativeId, version: versionOf(loc.folder, String(res.uidValidity ?? loc.uidValidity), res.uid, after ? flagList(after.flags) : flags) }
      }
      const add = keywords.filter((k) => !currentKeywords.includes(k))
      const remove = currentKeywords.filter((k) => !keywords.includes(k))
      if (add.length) await client.messageFlagsAdd(String(loc.uid), add, { uid: true })
      if (remove.length) await client.messageFlagsRemove(String(loc.uid), remove, { uid: true })
      const after = await client.fetchOne(String(loc.uid), { uid: true, flags: true }, { uid: true })
      return { opId: op.opId, nativeId: op.nativeId, version: versionOf(loc.folder, loc.uidValidity, loc.uid, after ? flagList(after.flags) : loc.flags) }
    })
  }

  private async remove(op: Extract<PushOp, { type: 'delete' }>): Promise<PushApplied> {
    if (this.pop3) {
      // A POP3 message never changes (no flags, no folders): its version cannot go stale.
      await this.pop3.remove(op.nativeId)
      return { opId: op.opId }
    }
    return this.withImap('delete', async (client) => {
      const locs = await this.locate(client, op.nativeId, op.nativeId ? undefined : String(op.concordId))
      if (locs[0]) checkIfMatch(locs[0], op.ifMatch, op.nativeId ?? op.concordId)
      for (const loc of locs) {
        await client.mailboxOpen(loc.folder)
        await client.messageDelete(String(loc.uid), { uid: true })
      }
      return { opId: op.opId }
    })
  }

  /**
   * Manual tracking: adds or removes the tracking category (an IMAP keyword). A POP3/SMTP profile
   * has nowhere to keep it: `manual-tracking-unsupported`, as documented for server-side sync.
   */
  async setTracked(nativeId: NativeId, tracked: boolean): Promise<Version> {
    if (this.protocol === 'pop3') throw manualTrackingUnsupported()
    return this.withImap('track', async (client) => {
      const loc = (await this.locate(client, nativeId, undefined))[0]
      if (!loc) throw new SyncError('NotFound', `E-mail ${nativeId} is not in the synced folders`)
      const keyword = categoryToKeyword(this.options.trackingCategory)
      await client.mailboxOpen(loc.folder)
      if (tracked) await client.messageFlagsAdd(String(loc.uid), [keyword], { uid: true })
      else await client.messageFlagsRemove(String(loc.uid), [keyword], { uid: true })
      const after = await client.fetchOne(String(loc.uid), { uid: true, flags: true }, { uid: true })
      return versionOf(loc.folder, loc.uidValidity, loc.uid, after ? flagList(after.flags) : [])
    })
  }

  /**
   * Automatic tracking of e-mail the last `pull` returned: adds the tracking category (an IMAP keyword)
   * with one `UID STORE` per folder — no search per message — and records the new flags in that round's
   * snapshot, so the next round does not report them back as a flag change. Returns each message's new
   * version and categories (ids not in the last pulled round are left out). POP3: `manual-tracking-unsupported`.
   */
  async trackPulled(nativeIds: readonly NativeId[]): Promise<Map<NativeId, { version: Version; categories: string[] }>> {
    if (this.protocol === 'pop3') throw manualTrackingUnsupported()
    const out = new Map<NativeId, { version: Version; categories: string[] }>()
    const snap = this.lastPulled
    if (!snap || nativeIds.length === 0) return out
    const keyword = categoryToKeyword(this.options.trackingCategory)
    const byFolder = new Map<string, Array<{ id: NativeId; uid: number; meta: MsgMeta }>>()
    for (const id of nativeIds) {
      const loc = snap.primary.get(id)
      if (!loc || loc.meta.flags.includes(keyword)) continue
      const list = byFolder.get(loc.folder) ?? []
      list.push({ id, uid: loc.uid, meta: loc.meta })
      byFolder.set(loc.folder, list)
    }
    if (byFolder.size === 0) return out
    await this.withImap('track', async (client) => {
      for (const [folder, list] of byFolder) {
        const state = snap.folders.get(folder)
        if (!state) continue
        await client.mailboxOpen(folder)
        await client.messageFlagsAdd(list.map((m) => m.uid).join(','), [keyword], { uid: true })
        for (const { id, uid, meta } of list) {
          // A new object: snapshots share unchanged MsgMeta entries, and only this round's view changes.
          const next: MsgMeta = { ...meta, flags: [...new Set([...meta.flags, keyword])].sort() }
          state.msgs.set(uid, next)
          snap.primary.set(id, { folder, uid, meta: next })
          out.set(id, { version: versionOf(folder, state.uidValidity, uid, next.flags), categories: categoriesOf(next.flags) })
        }
      }
    })
    return out
  }

  async confirmMissing(nativeIds: readonly NativeId[]): Promise<NativeId[]> {
    if (this.pop3) return this.pop3.confirmMissing(nativeIds)
    return this.withImap('confirm', async (client) => {
      const gone: NativeId[] = []
      for (const id of nativeIds) {
        if (!messageIdOf(id)) continue // hash ids: not searchable on the server; left alone
        if ((await this.locate(client, id, undefined)).length === 0) gone.push(id)
      }
      return gone
    })
  }

  async close(): Promise<void> {
    const client = this.client
    this.client = undefined
    if (client?.usable) {
      try {
        await client.logout()
      } catch {
        client.close()
      }
    } else client?.close()
    this.smtp?.close()
    await this.pop3?.close()
  }

  /** For tests and diagnostics: the ledger entry of an outgoing e-mail. */
  async sendState(concordId: string): Promise<SendLedgerEntry | undefined> {
    return this.ledger.get(concordId)
  }
}

function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  )
}

function throwIfAborted(signal: AbortSignal | undefined) {
  if (signal?.aborted) throw new SyncError('Aborted', 'The mail-server operation was aborted')
}

function manualTrackingUnsupported(): MailServerError {
  return new MailServerError('manual-tracking-unsupported', 'Manual tracking is not supported for a POP3/SMTP mailbox (server-side sync documents it as unsupported); use automatic tracking options instead')
}

/** Flags that describe the message, not the session: `\Recent` changes with every login. */
function flagList(flags: Set<string> | undefined): string[] {
  return [...(flags ?? [])].filter((f) => f !== '\\Recent').sort()
}

/** One header's (unfolded) value from a fetched header block. */
function headerValue(block: Buffer | undefined, name: string): string | undefined {
  if (!block) return undefined
  const text = block.toString('utf8').replace(/\r?\n[ \t]+/g, ' ')
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i > 0 && line.slice(0, i).trim().toLowerCase() === name.toLowerCase()) return line.slice(i + 1).trim()
  }
  return undefined
}

function toDate(value: Date | string | undefined): Date | undefined {
  if (value === undefined) return undefined
  const d = value instanceof Date ? value : new Date(value)
  return Number.isNaN(d.getTime()) ? undefined : d
}

function envelopeFacts(m: FetchMessageObject): EnvelopeFacts {
  const e = m.envelope
  return {
    messageId: e?.messageId,
    inReplyTo: e?.inReplyTo,
    subject: e?.subject,
    date: toDate(e?.date as Date | string | undefined),
    from: e?.from,
    to: e?.to,
    cc: e?.cc,
  }
}
