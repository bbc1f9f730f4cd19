/**
 * The organization's CRM change feed: ONE Dataverse change-tracking stream for the whole server, pulled
 * as the application user into a local change log. Every mailbox's CRM replica reads its own user's
 * part of it (`UserFeedView`) instead of running its own org-wide change tracking, so a change is
 * downloaded once, not once per mailbox (which would make the CRM traffic grow with mailboxes²).
 *
 * Refreshes are serialised and coalesced (see `refresh`), so a burst of mailbox syncs costs one or two pulls.
 * After each refresh, `onChanges` learns which users the new entries concern, so the server can sync
 * those mailboxes promptly (the CRM has no push).
 */
import { type LogEntry, type Logger, type ReplicaAdapter, type ReplicaStore, pullRound } from '@concord/engine'

export interface OrgFeedOptions {
  /** The CRM adapter of the application user (organization-wide read), any kinds the server syncs. */
  adapter: ReplicaAdapter
  store: ReplicaStore
  pageLimit?: number | undefined
  logger: Logger
  /** Owners and attendees of the entries a refresh added. */
  onChanges?: ((userIds: ReadonlySet<string>, entries: number) => void) | undefined
}

const MAX_PAGES = 100_000

export class CrmOrgFeed {
  readonly replicaId
  private readonly pageLimit: number
  private inFlight: Promise<void> | undefined
  private queued: Promise<void> | undefined

  constructor(private readonly options: OrgFeedOptions) {
    this.replicaId = options.adapter.replicaId
    this.pageLimit = options.pageLimit ?? 500
  }

  get store(): ReplicaStore {
    return this.options.store
  }

  /**
   * Brings the feed up to date: resolves after a pull that started after this call. Concurrent callers
   * share one pull; callers arriving while a pull runs share the single next one.
   */
  refresh(options: { signal?: AbortSignal | undefined } = {}): Promise<void> {
    if (!this.inFlight) return this.start(options.signal)
    this.queued ??= this.inFlight
      .catch(() => {})
      .then(() => {
        this.queued = undefined
        return this.start(options.signal)
      })
    return this.queued
  }

  private start(signal?: AbortSignal): Promise<void> {
    this.inFlight = this.pullRound(signal).finally(() => {
      this.inFlight = undefined
    })
    return this.inFlight
  }

  /** Resolves when no refresh is running (shutdown). */
  async idle(): Promise<void> {
    await this.inFlight?.catch(() => {})
  }

  headSeq(): Promise<number> {
    return this.options.store.headSeq(this.replicaId)
  }

  readLog(afterSeq: number, limit: number): Promise<LogEntry[]> {
    return this.options.store.readLog(this.replicaId, afterSeq, limit)
  }

  private async pullRound(signal?: AbortSignal): Promise<void> {
    const { adapter, store, logger } = this.options
    const before = await store.headSeq(this.replicaId)
    await pullRound(store, adapter, { pageLimit: this.pageLimit, maxPages: MAX_PAGES, logger, signal, logContext: { component: 'crm-feed' } })
    await this.announce(before)
  }

  private async announce(afterSeq: number): Promise<void> {
    if (!this.options.onChanges) return
    const users = new Set<string>()
    let entries = 0
    for (let seq = afterSeq; ; ) {
      const batch = await this.readLog(seq, 1_000)
      if (batch.length === 0) break
      for (const e of batch) {
        entries++
        if (e.meta?.ownerId) users.add(e.meta.ownerId)
        for (const a of e.meta?.attendeeIds ?? []) users.add(a)
      }
      seq = batch.at(-1)!.seq
    }
    if (entries > 0) this.options.onChanges(users, entries)
  }
}
