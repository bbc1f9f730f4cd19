import type { DeleteProvenance, PushOp, RecordMeta, ReplicaAdapter } from '../contract/replica-adapter.js'
import { SyncError, ThrottledError } from '../errors.js'
import { type ConcordId, type NativeId, type OpId, type PairId, type ReplicaId, asOpId } from '../ids.js'
import { type Logger, silentLogger } from '../logger.js'
import type { Fields } from '../model/item.js'
import type { ReplicaStore } from '../store/replica-store.js'
import { withAgreedFields } from '../store/records.js'
import type { BaseRecord, ConflictListRecord, ExplainRecord, LinkRecord, LogEntry, OutboxEntry, QuarantineRecord, TombstoneRecord } from '../store/records.js'
import { stableHash } from '../util/hash.js'
import type { MergeContext } from '../merge/context.js'
import { type Hlc, compareHlc, decodeHlc, encodeHlc } from '../merge/hlc.js'
import { jsonEqual } from '../util/canonical-json.js'
import { pullRound } from './pull-round.js'
import { SnapshotsRead } from './snapshots-read.js'
import { CrmWinsMerge, type FieldDecision, type MergeDecision, type MergeInput, type MergeStrategy, type SideChange, type Side, Sides, otherSide } from './merge-strategy.js'
import { DEFAULT_DELETION_THRESHOLD, type DeletionGuardThreshold, evaluateDeletionGuard } from '../merge/deletion-guard.js'

export interface SyncPairOptions {
  pairId: PairId
  store: ReplicaStore
  crm: ReplicaAdapter
  mailbox: ReplicaAdapter
  merge?: MergeStrategy | undefined
  /** Page size asked of adapters. Default 100. */
  pageLimit?: number | undefined
  /** Log entries merged per plan batch. Default 1000. */
  mergeBatch?: number | undefined
  /** After this many failed attempts a push is parked for an admin instead of retried. Default 5. */
  maxPushAttempts?: number | undefined
  /** Upper bound on pages pulled from one replica in one cycle (guards against a looping remote). Default 10,000. */
  maxPagesPerCycle?: number | undefined
  now?: (() => number) | undefined
  logger?: Logger | undefined
  /** Mass-deletion guard: a plan deleting more than this share (and at least `min`) of a side's items is quarantined. Default 20 % / 50. */
  deletionGuard?: DeletionGuardThreshold | undefined
  /** How long deleted items stay restorable (ms). Default 30 days. */
  tombstoneRetentionMs?: number | undefined
  /**
   * Who this pair syncs for and what they may do: the mailbox owner, their security mask (from the
   * CRM adapter), their sync filters. Per-record metadata (owner, attendees, tracked) comes from the
   * adapters' `RemoteUpsert.meta`. Absent = no restriction.
   */
  context?: PairContext | undefined
  /** Called with every merge decision (explain log, metrics). */
  onDecision?: ((concordId: ConcordId, decision: MergeDecision) => void) | undefined
  /**
   * Keep each item's latest merge decision per field in the store, for {@link SyncPair.explain}. Default
   * true. Off, a merge reads and writes no explain record (one read and one write per merged item less)
   * and `explain` throws: for runs whose store nobody asks why of, such as a simulation's.
   */
  explainRecords?: boolean | undefined
  /**
   * Whether a push waits until the outbox entry it sends is in the database (default true): a process that
   * crashes after a remote applied a write must find the entry to acknowledge it on restart, not plan it
   * again. False: the store writes in the background (in order, failures still surface at the next write) and
   * the push goes at once — for a simulation, which has no crash to survive and only waits on the disk.
   */
  waitForOutboxWrite?: boolean | undefined
}

/** The per-pair part of the merge context; see `SyncPairOptions.context`. */
export type PairContext = Pick<MergeContext, 'user' | 'mask' | 'filters'>

export interface CycleReport {
  pulled: Record<Side, number>
  logged: Record<Side, number>
  merged: number
  pushed: Record<Side, number>
  /** Pushes that failed and stay in the outbox (or were dropped for re-merge after a 412). */
  rejected: Record<Side, number>
  resynced: Side[]
  /** Set when a side throttled us; the caller (scheduler) should wait at least this long. */
  throttledMs?: number | undefined
  /** True when pending pushes could not be sent, so merging was deferred to the next cycle. */
  mergeDeferred: boolean
  /** Why nothing was merged, when a gate stopped it (no sync privilege). */
  skipped?: string | undefined
  /** Field conflicts kept for the user in this cycle (`keep-both`). */
  conflicts?: number | undefined
  /** The sides this cycle pulled (see {@link CycleOptions.pull}). */
  pulledSides: Side[]
}

/** What one cycle does beyond the default. */
export interface CycleOptions {
  /**
   * The sides to pull; default both. A side left out is merged as last seen (a scheduler that knows a side
   * changes rarely polls it less often: Dataverse requests are the scarce budget). Updates and deletes carry
   * If-Match, so a write that races an edit not yet seen is refused (412), never a lost update; the cycle
   * still pulls a left-out side when pushes to it wait for a re-merge after such a 412 (the re-merge needs
   * its newer state), and when the other side's unmerged changes fill a whole merge batch.
   */
  pull?: readonly Side[] | undefined
}

const emptyCounts = (): Record<Side, number> => ({ crm: 0, mailbox: 0 })

/**
 * One CRM replica and one mailbox replica kept in sync through the store.
 *
 * A cycle: (1) send pushes still owed from an earlier cycle or crash, (2) pull each side to the
 * end of its round, one atomic batch per page, (3) merge the unmerged log entries of both sides
 * against the base into an outbox, atomically with the merge watermarks, (4) send the outbox and
 * retire each acknowledged push atomically with its base update. Any step may crash: every write
 * is one batch and every replay is idempotent, so a restarted cycle loses and duplicates nothing.
 */
export class SyncPair {
  readonly pairId: PairId
  private readonly store: ReplicaStore
  private readonly adapters: Record<Side, ReplicaAdapter>
  private readonly strategy: MergeStrategy
  private readonly pageLimit: number
  private readonly mergeBatch: number
  private readonly maxPushAttempts: number
  private readonly maxPages: number
  private readonly now: () => number
  private readonly logger: Logger
  private readonly onDecision: SyncPairOptions['onDecision']
  private readonly explainRecords: boolean
  private readonly waitForOutboxWrite: boolean
  private readonly deletionGuard: DeletionGuardThreshold
  private context: PairContext
  private readonly tombstoneRetentionMs: number
  /**
   * False only when this process knows the pair's outbox is empty (this SyncPair is the pair's
   * single writer). Lets idle cycles skip the outbox scans; starts true because a crash may have
   * left pushes behind.
   */
  private outboxMayHaveEntries = true
  /**
   * False only when this process knows no outbox entry of the pair waits for a re-merge (only a push
   * this SyncPair saw refused marks one). Lets merges skip the outbox scans for them.
   */
  private outboxMayHaveRemerge = true
  /** Merge watermarks, cached after the first read (this SyncPair is their only writer). */
  private marks: Record<Side, number> | undefined

  constructor(options: SyncPairOptions) {
    this.pairId = options.pairId
    this.store = options.store
    this.adapters = { crm: options.crm, mailbox: options.mailbox }
    this.strategy = options.merge ?? new CrmWinsMerge()
    this.pageLimit = options.pageLimit ?? 100
    this.mergeBatch = options.mergeBatch ?? 1000
    this.maxPushAttempts = options.maxPushAttempts ?? 5
    this.maxPages = options.maxPagesPerCycle ?? 10_000
    this.now = options.now ?? Date.now
    this.logger = options.logger ?? silentLogger
    this.onDecision = options.onDecision
    this.explainRecords = options.explainRecords ?? true
    this.waitForOutboxWrite = options.waitForOutboxWrite ?? true
    this.deletionGuard = options.deletionGuard ?? DEFAULT_DELETION_THRESHOLD
    this.context = options.context ?? {}
    this.tombstoneRetentionMs = options.tombstoneRetentionMs ?? 30 * 24 * 3600_000
  }

  /** Replaces the pair's context (e.g. after the owner's privileges were read again). */
  setContext(context: PairContext): void {
    this.context = context
  }

  private sideOf(replicaId: ReplicaId): Side {
    return replicaId === this.replicaId('crm') ? 'crm' : 'mailbox'
  }

  replicaId(side: Side): ReplicaId {
    return this.adapters[side].replicaId
  }

  /**
   * Runs one full cycle. Throttling ends the cycle early with `throttledMs` set; state stays consistent.
   * Cycles and admin actions of one pair run one at a time (`ReplicaStore.runForPair`): a call made while
   * another runs waits for it.
   */
  runCycle(signal?: AbortSignal, options: CycleOptions = {}): Promise<CycleReport> {
    return this.store.runForPair(this.pairId, () => this.cycle(signal, options))
  }

  private async cycle(signal: AbortSignal | undefined, options: CycleOptions): Promise<CycleReport> {
    const report: CycleReport = { pulled: emptyCounts(), logged: emptyCounts(), merged: 0, pushed: emptyCounts(), rejected: emptyCounts(), resynced: [], mergeDeferred: false, pulledSides: [] }
    try {
      await this.flushOutbox(report, signal)
      const wanted = options.pull ?? Sides
      for (const side of Sides) if (wanted.includes(side)) await this.pullRound(side, report, signal)
      for (const side of Sides) if (!wanted.includes(side) && (await this.mustPull(side))) await this.pullRound(side, report, signal)
      if (await this.hasBlockingOutbox()) {
        report.mergeDeferred = true
        return report
      }
      if (this.context.mask?.canSync === false) {
        // Without the sync privilege nothing syncs — and nothing is merged either, so the changes
        // pulled meanwhile are merged once the privilege is back instead of being skipped over.
        report.skipped = 'the mailbox owner has no sync privilege'
        return report
      }
      const merged = await this.mergePending()
      report.merged = merged.items
      if (merged.conflicts > 0) report.conflicts = merged.conflicts
      await this.flushOutbox(report, signal)
    } catch (error) {
      if (error instanceof ThrottledError) {
        report.throttledMs = Math.max(report.throttledMs ?? 0, error.retryAfterMs)
        return report
      }
      throw error
    }
    return report
  }

  /** Pulls one side to the end of its round. A stale cursor turns into one full listing. */
  private async pullRound(side: Side, report: CycleReport, signal?: AbortSignal): Promise<void> {
    const r = await pullRound(this.store, this.adapters[side], { pageLimit: this.pageLimit, maxPages: this.maxPages, logger: this.logger, signal, logContext: { side } })
    report.pulled[side] += r.pulled
    report.logged[side] += r.logged
    report.pulledSides.push(side)
    if (r.resynced) report.resynced.push(side)
  }

  /** Whether a side the caller left out must be pulled anyway (see {@link CycleOptions.pull}). */
  private async mustPull(side: Side): Promise<boolean> {
    if (this.outboxMayHaveEntries && this.outboxMayHaveRemerge && (await this.store.listOutbox(this.pairId, this.replicaId(side))).some((entry) => entry.remerge)) return true
    const from = otherSide(side)
    const mark = (await this.watermarks())[from]
    if ((await this.store.headSeq(this.replicaId(from))) <= mark) return false
    const unmerged = await this.store.readLog(this.replicaId(from), mark, this.mergeBatch)
    return unmerged.length >= this.mergeBatch
  }

  /** Merge watermarks, read once (this SyncPair is their only writer). */
  private async watermarks(): Promise<Record<Side, number>> {
    this.marks ??= { crm: await this.store.getWatermark(this.pairId, this.replicaId('crm')), mailbox: await this.store.getWatermark(this.pairId, this.replicaId('mailbox')) }
    return this.marks
  }

  private async hasBlockingOutbox(): Promise<boolean> {
    if (!this.outboxMayHaveEntries) return false
    for (const side of Sides) {
      const pending = await this.store.listOutbox(this.pairId, this.replicaId(side))
      if (pending.some((entry) => this.isSendable(entry))) return true
    }
    return false
  }

  private isSendable(entry: OutboxEntry): boolean {
    return !entry.remerge && entry.attempts < this.maxPushAttempts
  }

  private async remergeEntries(): Promise<OutboxEntry[]> {
    const out: OutboxEntry[] = []
    if (!this.outboxMayHaveEntries || !this.outboxMayHaveRemerge) return out
    for (const side of Sides) for (const entry of await this.store.listOutbox(this.pairId, this.replicaId(side))) if (entry.remerge) out.push(entry)
    if (out.length === 0) this.outboxMayHaveRemerge = false
    return out
  }

  /** Merges every unmerged log entry of both sides, in batches, each committed atomically. */
  private async mergePending(): Promise<{ items: number; conflicts: number }> {
    const merged = { items: 0, conflicts: 0 }
    for (;;) {
      const marks = await this.watermarks()
      const entries: Record<Side, LogEntry[]> = { crm: [], mailbox: [] }
      for (const side of Sides) {
        if ((await this.store.headSeq(this.replicaId(side))) > marks[side]) entries[side] = await this.store.readLog(this.replicaId(side), marks[side], this.mergeBatch)
      }
      const remerge = await this.remergeEntries()
      if (entries.crm.length === 0 && entries.mailbox.length === 0 && remerge.length === 0) return merged
      const result = await this.mergeEntries(entries, remerge)
      merged.items += result.items
      merged.conflicts += result.conflicts
    }
  }

  private async mergeEntries(entries: Record<Side, LogEntry[]>, remerge: readonly OutboxEntry[]): Promise<{ items: number; conflicts: number }> {
    const latest = new Map<ConcordId, { kind: LogEntry['kind']; changes: Record<Side, SideChange | undefined>; meta: Partial<Record<Side, RecordMeta>>; deletedNative?: Partial<Record<Side, NativeId>> }>()
    for (const side of Sides) {
      for (const entry of entries[side]) {
        const slot = latest.get(entry.concordId) ?? { kind: entry.kind, changes: { crm: undefined, mailbox: undefined }, meta: {} }
        if (entry.meta) slot.meta[side] = entry.meta
        // A deleted record's metadata (owner, state) is still in its snapshot: the deletion rules need it.
        if (entry.type === 'delete') (slot.deletedNative ??= {})[side] = entry.nativeId
        else if (slot.deletedNative) delete slot.deletedNative[side]
        slot.changes[side] =
          entry.type === 'delete'
            ? { type: 'delete', provenance: entry.provenance ?? 'user-deleted' }
            : { type: 'upsert', fields: entry.fields ?? {}, version: entry.version!, modifiedAt: entry.modifiedAt }
        latest.set(entry.concordId, slot)
      }
    }
    // A push the remote refused because the record changed is our side's change, still owed: merge
    // it again with the remote's newer state (which this pull brought) instead of losing it.
    const retire: Array<{ target: ReplicaId; concordId: ConcordId }> = []
    for (const entry of remerge) {
      const op = entry.op
      if (op.type === 'create') continue
      const source = otherSide(this.sideOf(entry.target))
      const slot = latest.get(op.concordId) ?? { kind: op.kind, changes: { crm: undefined, mailbox: undefined }, meta: {} }
      if (slot.changes[source] === undefined) {
        if (op.type === 'update') slot.changes[source] = { type: 'upsert', fields: entry.agreed, version: entry.sourceVersion ?? op.ifMatch ?? ('' as never) }
        else {
          slot.changes[source] = { type: 'delete', provenance: op.provenance }
          if (entry.sourceNative !== undefined) (slot.deletedNative ??= {})[source] = entry.sourceNative
        }
      }
      latest.set(op.concordId, slot)
      retire.push({ target: entry.target, concordId: op.concordId })
    }
    const ids = [...latest.keys()]
    const [bases, links, pendingTo] = await Promise.all([
      this.store.getBases(this.pairId, ids),
      this.store.getLinks(ids),
      this.outboxMayHaveEntries ? this.pendingOutbox(ids) : Promise.resolve(undefined),
    ])
    const outbox: OutboxEntry[] = []
    const explain: Array<{ concordId: ConcordId; record: ExplainRecord }> = []
    const baseWrites: Array<{ concordId: ConcordId; base: BaseRecord | null }> = []
    const plannedAt = this.now()

    const snapshotsRead = new SnapshotsRead(this.store)
    const metaFor = await this.recordMeta(ids, links, latest, snapshotsRead)
    const inputs: MergeInput[] = ids.map((concordId, index) => {
      const { kind, changes } = latest.get(concordId)!
      const link = links[index]
      const exists = { crm: link?.natives[this.replicaId('crm')] !== undefined, mailbox: link?.natives[this.replicaId('mailbox')] !== undefined }
      const meta = metaFor[index]!
      const context: MergeContext = { ...this.context, crmMeta: meta.crm, tracked: meta.mailbox?.tracked, fieldClocks: fieldClocksOf(bases[index], changes), now: plannedAt }
      return { pairId: this.pairId, concordId, kind, base: bases[index], changes, exists, context }
    })
    const decisions = this.strategy.mergeBatch ? this.strategy.mergeBatch(inputs) : inputs.map((input) => this.strategy.merge(input))
    const conflicts: ConflictListRecord[] = []

    for (const [index, concordId] of ids.entries()) {
      const { kind, changes } = inputs[index]!
      const base = bases[index]
      const link = links[index]
      const decision = decisions[index]!
      if (decision.conflicts?.length) conflicts.push({ concordId, kind, at: plannedAt, conflicts: decision.conflicts })
      this.onDecision?.(concordId, decision)
      if (this.explainRecords && decision.fields.length > 0) explain.push({ concordId, record: { at: plannedAt, fields: Object.fromEntries(decision.fields.map((f) => [f.field, f])) } })

      if (decision.forget) {
        if (base) baseWrites.push({ concordId, base: null })
        continue
      }
      if (decision.unlink !== undefined) {
        // The kept copy stays where it is; the pair stops syncing the item (no write on either side).
        baseWrites.push({ concordId, base: { ...(base ?? withAgreedFields(undefined, kind, {})), unlinked: { at: plannedAt, rule: decision.unlink } } })
        continue
      }
      if (Object.keys(decision.agreedNow).length > 0 || decision.fieldClocks) {
        const next = agreeFields(base, kind, decision.agreedNow, changes, this.adapters)
        if (decision.fieldClocks) next.clocks = { ...next.clocks, ...decision.fieldClocks }
        baseWrites.push({ concordId, base: next })
      }
      for (const side of Sides) {
        const write = decision.writes[side]
        if (!write) continue
        const target = this.replicaId(side)
        const nativeId = link?.natives[target]
        const source = otherSide(side)
        const sourceChange = changes[source]
        const opId = newOpId()
        let op: PushOp
        if (write.type === 'delete') op = { opId, type: 'delete', concordId, kind, nativeId, provenance: write.provenance }
        else if (write.type === 'create' || nativeId === undefined) op = { opId, type: 'create', concordId, kind, fields: write.fields }
        else op = { opId, type: 'update', concordId, kind, nativeId, fields: write.fields } // ifMatch: fillIfMatch
        const entry: OutboxEntry = {
          pairId: this.pairId,
          target,
          op,
          agreed: write.type === 'delete' ? {} : write.fields,
          sourceReplica: this.replicaId(source),
          sourceVersion: sourceChange?.type === 'upsert' ? sourceChange.version : undefined,
          sourceNative: write.type === 'delete' ? latest.get(concordId)!.deletedNative?.[source] : undefined,
          attempts: 0,
          plannedAt,
        }
        const pending = pendingTo?.[side].get(concordId)
        outbox.push(pending && !pending.remerge ? coalesce(pending, entry) : entry)
      }
    }
    const watermarks: Partial<Record<ReplicaId, number>> = {}
    for (const side of Sides) {
      const last = entries[side].at(-1)
      if (last) watermarks[this.replicaId(side)] = last.seq
    }
    await this.fillIfMatch(outbox, snapshotsRead)
    const replanned = new Set(outbox.map((entry) => `${entry.target}|${entry.op.concordId}`))
    const quarantine = await this.holdMassDeletes(outbox, plannedAt)
    const previous = explain.length > 0 ? await this.store.getExplainMany(this.pairId, explain.map((e) => e.concordId)) : []
    explain.forEach((e, i) => (e.record.fields = { ...(previous[i]?.fields ?? {}), ...e.record.fields }))
    await this.store.commitPlan(this.pairId, { outbox, bases: baseWrites, watermarks, retire: retire.filter((r) => !replanned.has(`${r.target}|${r.concordId}`)), quarantine, explain, conflicts })
    if (outbox.length > 0) this.outboxMayHaveEntries = true
    for (const side of Sides) {
      const last = entries[side].at(-1)
      if (last && this.marks) this.marks[side] = last.seq
    }
    return { items: ids.length, conflicts: conflicts.reduce((n, c) => n + c.conflicts.length, 0) }
  }

  /**
   * Per item: the CRM record's metadata (owner, attendees, state — for sync filters) and the mailbox
   * item's (tracked). From this batch's changes, else from the last snapshot of that side.
   */
  private async recordMeta(
    ids: readonly ConcordId[],
    links: ReadonlyArray<LinkRecord | undefined>,
    latest: Map<ConcordId, { meta: Partial<Record<Side, RecordMeta>>; deletedNative?: Partial<Record<Side, NativeId>> }>,
    snapshotsRead: SnapshotsRead,
  ): Promise<Array<Partial<Record<Side, RecordMeta>>>> {
    const out = ids.map((id) => ({ ...latest.get(id)!.meta }))
    for (const side of Sides) {
      const replica = this.replicaId(side)
      const missing: number[] = []
      const natives: NativeId[] = []
      ids.forEach((id, i) => {
        const nativeId = out[i]![side] === undefined ? (links[i]?.natives[replica] ?? latest.get(id)!.deletedNative?.[side]) : undefined
        if (nativeId === undefined) return
        missing.push(i)
        natives.push(nativeId)
      })
      const snapshots = await snapshotsRead.get(replica, natives)
      missing.forEach((i, k) => {
        const meta = snapshots[k]?.meta
        if (meta) out[i]![side] = meta
      })
    }
    return out
  }

  /** Open field conflicts kept for the user (`keep-both`). */
  listConflicts(): Promise<ConflictListRecord[]> {
    return this.store.listConflicts(this.pairId)
  }

  /**
   * Resolves a kept conflict: `winner`'s value is written to the other side (and becomes the base
   * once acknowledged). Appointment invitations are not duplicated: it is an update of one field.
   */
  resolveConflict(concordId: ConcordId, field: string, winner: Side): Promise<void> {
    return this.store.runForPair(this.pairId, () => this.resolveConflictNow(concordId, field, winner))
  }

  private async resolveConflictNow(concordId: ConcordId, field: string, winner: Side): Promise<void> {
    const record = await this.store.getConflicts(this.pairId, concordId)
    const conflict = record?.conflicts.find((c) => c.field === field)
    if (!record || !conflict) throw new SyncError('NotFound', `No open conflict on ${concordId}.${field} in pair ${this.pairId}`)
    const loser = otherSide(winner)
    const link = await this.store.getLink(concordId)
    const nativeId = link?.natives[this.replicaId(loser)]
    const value = conflict[winner]
    const outbox: OutboxEntry[] = []
    if (nativeId !== undefined) {
      const snapshot = await this.store.getSnapshot(this.replicaId(loser), nativeId)
      outbox.push({
        pairId: this.pairId,
        target: this.replicaId(loser),
        op: { opId: newOpId(), type: 'update', concordId, kind: record.kind, nativeId, fields: { [field]: value }, ifMatch: snapshot?.version },
        agreed: { [field]: value },
        sourceReplica: this.replicaId(winner),
        attempts: 0,
        plannedAt: this.now(),
      })
    }
    const rest = record.conflicts.filter((c) => c.field !== field)
    await this.store.settleConflicts(this.pairId, concordId, rest.length > 0 ? { ...record, conflicts: rest } : null, outbox)
    this.outboxMayHaveEntries = true
  }

  /**
   * Applies the mass-deletion guard to a plan: per target side, if its deletes exceed the threshold,
   * they leave the outbox and are held in one quarantine record until an admin confirms or rejects.
   */
  private async holdMassDeletes(outbox: OutboxEntry[], now: number): Promise<QuarantineRecord[]> {
    const held: QuarantineRecord[] = []
    for (const side of Sides) {
      const target = this.replicaId(side)
      const deletes = outbox.filter((entry) => entry.target === target && entry.op.type === 'delete')
      if (deletes.length < this.deletionGuard.min) continue
      const verdict = evaluateDeletionGuard({ replicaItemCount: await this.store.countBases(this.pairId), deletes: deletes.map((d) => ({ provenance: (d.op as { provenance: DeleteProvenance }).provenance })), threshold: this.deletionGuard })
      if (verdict.action !== 'hold') continue
      this.logger.warn({ pairId: this.pairId, target, deletes: deletes.length }, verdict.reason)
      held.push({ id: `q_${stableHash(`${this.pairId}|${target}|${now}|${deletes.length}`)}`, pairId: this.pairId, target, createdAt: now, reason: verdict.reason, entries: deletes })
      for (const entry of deletes) outbox.splice(outbox.indexOf(entry), 1)
    }
    return held
  }

  /** Deletes held by the mass-deletion guard, waiting for `confirmQuarantine` or `rejectQuarantine`. */
  listQuarantine(): Promise<QuarantineRecord[]> {
    return this.store.listQuarantine(this.pairId)
  }

  /** An admin confirms held deletes: they are queued and sent by the next cycle. */
  confirmQuarantine(id: string): Promise<number> {
    return this.store.runForPair(this.pairId, () => this.confirmQuarantineNow(id))
  }

  private async confirmQuarantineNow(id: string): Promise<number> {
    const record = await this.requireQuarantine(id)
    await this.store.resolveQuarantine(this.pairId, id, record.entries)
    this.outboxMayHaveEntries = true
    return record.entries.length
  }

  /**
   * An admin rejects held deletes: nothing is deleted on the held side, and the items are created
   * again on the side that lost them, from their last agreed state. Nothing is lost.
   */
  rejectQuarantine(id: string): Promise<number> {
    return this.store.runForPair(this.pairId, () => this.rejectQuarantineNow(id))
  }

  private async rejectQuarantineNow(id: string): Promise<number> {
    const record = await this.requireQuarantine(id)
    const deletedOn = this.replicaId(otherSide(this.sideOf(record.target)))
    const restores: OutboxEntry[] = []
    const bases = await this.store.getBases(this.pairId, record.entries.map((e) => e.op.concordId))
    record.entries.forEach((entry, i) => {
      const base = bases[i]
      if (!base) return
      restores.push(this.restoreEntry(entry.op.concordId, base.kind, base.fields, deletedOn, record.target))
    })
    await this.store.resolveQuarantine(this.pairId, id, restores)
    this.outboxMayHaveEntries = true
    return restores.length
  }

  private async requireQuarantine(id: string): Promise<QuarantineRecord> {
    const record = await this.store.getQuarantine(this.pairId, id)
    if (!record) throw new SyncError('NotFound', `No quarantine ${id} on pair ${this.pairId}`)
    return record
  }

  /**
   * Items deleted by sync that can still be restored. Expired tombstones are pruned first, in the pair's
   * queue like every write of the pair: between the prune's listing and its delete, no cycle or restore
   * can put a new tombstone under a key it is about to delete.
   */
  listTombstones(): Promise<TombstoneRecord[]> {
    return this.store.runForPair(this.pairId, async () => {
      await this.store.pruneTombstones(this.pairId, this.now() - this.tombstoneRetentionMs)
      return this.store.listTombstones(this.pairId)
    })
  }

  /** Undoes a delete: the item is created again, from its last agreed state, on every side that lost it. */
  restoreDeleted(concordId: ConcordId): Promise<void> {
    return this.store.runForPair(this.pairId, () => this.restoreDeletedNow(concordId))
  }

  private async restoreDeletedNow(concordId: ConcordId): Promise<void> {
    const tombstone = await this.store.getTombstone(this.pairId, concordId)
    if (!tombstone) throw new SyncError('NotFound', `No restorable delete of ${concordId} on pair ${this.pairId}`)
    const link = await this.store.getLink(concordId)
    const entries = Sides.filter((side) => link?.natives[this.replicaId(side)] === undefined).map((side) =>
      this.restoreEntry(concordId, tombstone.kind, tombstone.fields, this.replicaId(side), this.replicaId(otherSide(side))),
    )
    await this.store.restoreTombstone(this.pairId, concordId, entries)
    this.outboxMayHaveEntries = true
  }

  private restoreEntry(concordId: ConcordId, kind: OutboxEntry['op']['kind'], fields: Fields, target: ReplicaId, source: ReplicaId): OutboxEntry {
    const plannedAt = this.now()
    const opId = newOpId()
    return { pairId: this.pairId, target, op: { opId, type: 'create', concordId, kind, fields }, agreed: fields, sourceReplica: source, attempts: 0, plannedAt }
  }

  /** The recorded decision for one field of an item: base, both values, direction, mask, policy, winner. */
  async explain(concordId: ConcordId, field: string): Promise<(FieldDecision & { at: number }) | undefined> {
    if (!this.explainRecords) throw new SyncError('Config', `pair ${this.pairId} keeps no explain records (explainRecords: false)`)
    const record = await this.store.getExplain(this.pairId, concordId)
    const decision = record?.fields[field] as FieldDecision | undefined
    return decision && record ? { ...decision, at: record.at } : undefined
  }

  /** Pending pushes for `ids`, per target side (to coalesce new plans into them). */
  private async pendingOutbox(ids: readonly ConcordId[]): Promise<Record<Side, Map<ConcordId, OutboxEntry>>> {
    const out: Record<Side, Map<ConcordId, OutboxEntry>> = { crm: new Map(), mailbox: new Map() }
    const wanted = new Set(ids)
    for (const side of Sides) for (const entry of await this.store.listOutbox(this.pairId, this.replicaId(side))) if (wanted.has(entry.op.concordId)) out[side].set(entry.op.concordId, entry)
    return out
  }

  /** Updates and deletes carry If-Match with the version we last saw of the target record. */
  private async fillIfMatch(outbox: OutboxEntry[], snapshotsRead: SnapshotsRead): Promise<void> {
    for (const side of Sides) {
      const target = this.replicaId(side)
      const writes = outbox.filter((entry) => entry.target === target && needsIfMatch(entry.op))
      const snapshots = await snapshotsRead.get(
        target,
        writes.map((entry) => (entry.op as { nativeId: NativeId }).nativeId),
      )
      writes.forEach((entry, i) => {
        if (entry.op.type !== 'create') entry.op = { ...entry.op, ifMatch: snapshots[i]?.version }
      })
    }
  }

  /** Sends every pending push of both sides; acknowledged ones are retired one atomic write each. */
  private async flushOutbox(report: CycleReport, signal?: AbortSignal): Promise<void> {
    if (!this.outboxMayHaveEntries) return
    let remaining = 0 // entries left in the outbox after this flush, sendable or not
    for (const side of Sides) {
      const adapter = this.adapters[side]
      const listed = await this.store.listOutbox(this.pairId, adapter.replicaId)
      const pending = listed.filter((entry) => this.isSendable(entry))
      for (let i = 0; i < pending.length; i += this.pageLimit) {
        signal?.throwIfAborted()
        const chunk = pending.slice(i, i + this.pageLimit)
        const byOp = new Map<OpId, OutboxEntry>(chunk.map((entry) => [entry.op.opId, entry]))
        // Under group commit: the outbox is on disk before the remote sees a write (unless the caller
        // chose not to wait: `waitForOutboxWrite`). One flush per side covers every chunk: the chunks
        // come from the listing made before it.
        if (i === 0) {
          if (this.waitForOutboxWrite) await this.store.flush()
          else this.store.flushInBackground()
        }
        const result = await adapter.push(
          chunk.map((entry) => entry.op),
          { signal },
        )
        const acks = result.applied.flatMap((applied) => {
          const entry = byOp.get(applied.opId)
          return entry ? [{ entry, applied }] : []
        })
        await this.store.ackPushes(acks)
        report.pushed[side] += acks.length
        let throttled: ThrottledError | undefined
        for (const rejected of result.rejected) {
          const entry = byOp.get(rejected.opId)
          if (!entry) continue
          report.rejected[side]++
          if (rejected.error instanceof ThrottledError) {
            throttled = rejected.error
            continue // not an attempt: the remote never looked at it
          }
          // 412 or gone: the remote changed under us. Re-merge the op with the remote's newer state. (A create
          // has no remote state to re-merge with: it is retried.)
          const changedUnderUs = (rejected.error.code === 'PreconditionFailed' && entry.op.type !== 'create') || (rejected.error.code === 'NotFound' && entry.op.type === 'update')
          this.logger.warn({ replicaId: adapter.replicaId, opId: entry.op.opId, code: rejected.error.code, message: rejected.error.message }, 'push rejected')
          if (changedUnderUs) this.outboxMayHaveRemerge = true
          await this.store.settlePushFailure(entry, rejected.error, changedUnderUs ? 'remerge' : 'retry')
        }
        if (throttled) throw throttled
      }
      // nothing sent, nothing awaited since the listing: the outbox is as listed
      remaining += pending.length === 0 ? listed.length : (await this.store.listOutbox(this.pairId, adapter.replicaId)).length
    }
    if (remaining === 0) this.outboxMayHaveEntries = false
  }
}

/** An update or a delete of a known record that has no If-Match yet. A delete found by its Concord id has no version to match. */
function needsIfMatch(op: PushOp): boolean {
  return op.type !== 'create' && op.nativeId !== undefined && op.ifMatch === undefined
}

/**
 * A fresh idempotency key. It must never repeat: a remote that remembers applied keys would answer
 * a new op with an old result (two equal edits planned in the same millisecond did exactly that).
 * Ops are persisted in the outbox before they are sent, so a random key is replayed as it was.
 */
function newOpId(): OpId {
  return asOpId(`op_${globalThis.crypto.randomUUID()}`)
}

function agreeFields(base: BaseRecord | undefined, kind: BaseRecord['kind'], agreed: Fields, changes: Record<Side, SideChange | undefined>, adapters: Record<Side, ReplicaAdapter>): BaseRecord {
  const next = withAgreedFields(base, kind, agreed)
  for (const side of Sides) {
    const change = changes[side]
    if (change?.type === 'upsert') next.versions[adapters[side].replicaId] = change.version
  }
  return next
}

/**
 * Hybrid logical clocks of the fields each side changed, for `lww`: the side's own modification time,
 * but always after the clock the field was last agreed at — an edit made after seeing the base is
 * ordered after it even when the remote's clock lags (skew). Absent when a side has no time.
 */
function fieldClocksOf(base: BaseRecord | undefined, changes: Record<Side, SideChange | undefined>): MergeContext['fieldClocks'] {
  let out: MergeContext['fieldClocks']
  for (const side of Sides) {
    const change = changes[side]
    if (change?.type !== 'upsert' || change.modifiedAt === undefined) continue
    const clocks: Record<string, string> = {}
    for (const name of Object.keys(change.fields)) {
      if (base && name in base.fields && jsonEqual(change.fields[name], base.fields[name])) continue
      const agreed = base?.clocks?.[name]
      const previous = agreed === undefined ? undefined : decodeHlc(agreed)
      // a remote may report sub-millisecond times: HLC walls are whole ms
      const own: Hlc = { wall: Math.floor(change.modifiedAt), logical: 0, node: side }
      clocks[name] = encodeHlc(previous && compareHlc(own, previous) <= 0 ? { wall: previous.wall, logical: previous.logical + 1, node: side } : own)
    }
    ;(out ??= {})[side] = clocks
  }
  return out
}

/** Folds a newly planned push into one still pending for the same item and target. */
function coalesce(pending: OutboxEntry, next: OutboxEntry): OutboxEntry {
  const a = pending.op
  const b = next.op
  if (b.type === 'delete') return { ...next, op: { ...b, nativeId: b.nativeId ?? (a.type !== 'create' ? a.nativeId : undefined) } }
  if (a.type === 'delete') return { ...next, op: b.type === 'update' ? { opId: b.opId, type: 'create', concordId: b.concordId, kind: b.kind, fields: b.fields } : b }
  const fields = { ...a.fields, ...b.fields }
  const agreed = { ...pending.agreed, ...next.agreed }
  if (a.type === 'create' || b.type === 'create') return { ...next, agreed, op: { opId: b.opId, type: 'create', concordId: b.concordId, kind: b.kind, fields } }
  return { ...next, agreed, op: { ...a, opId: b.opId, fields } }
}
