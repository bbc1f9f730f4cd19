/**
 * Automatic tracking for imap/pop3 mailboxes: the owner's tracking option is applied as each new
 * incoming message is pulled. A message to track is reported to the engine as tracked (`meta.tracked`)
 * with all its fields, which brings it to the CRM in the same cycle, where it is correlated like any
 * tracked email. (A later flag-only change carries just the categories, not enough to create the CRM
 * email, so the decision cannot wait for the next round as it does for Exchange.) IMAP also gets the
 * tracking category as a keyword, so mail clients show the message as tracked; POP3 has nowhere to
 * keep it (manual tracking is unsupported for POP3/SMTP, protocols.md §5.1). Only sender, recipients
 * and subject are looked at (the privacy rule of §5.8).
 */
import { CursorExpiredError, type Cursor, type Fields, type NativeId, type PullOptions, type PullPage, type PushOp, type PushOptions, type PushResult, type ReplicaAdapter, type ReplicaId, type Version } from '@concord/engine'
import { MailServerError, type MailServerAdapter } from '@concord/adapter-mailserver'

export class AutoTrackingSource implements ReplicaAdapter {
  readonly replicaId: ReplicaId

  constructor(
    private readonly inner: MailServerAdapter,
    private readonly decide: (page: readonly Fields[], signal?: AbortSignal) => Promise<boolean[]>,
    /**
     * The messages of a page decided "track" (IMAP: the tracking keyword is added to all of them at once,
     * see `MailServerAdapter.trackPulled`); returns their new versions and categories, which the page then
     * carries. A failure is reported by the callee (an empty map), never thrown.
     */
    private readonly onTracked?: (nativeIds: NativeId[]) => Promise<ReadonlyMap<NativeId, { version: Version; categories: string[] }>>,
  ) {
    this.replicaId = inner.replicaId
  }

  async pull(cursor: Cursor | null, options: PullOptions): Promise<PullPage> {
    let page: PullPage
    try {
      page = await this.inner.pull(cursor, options)
    } catch (error) {
      // A cursor of another profile (the mailbox moved from Exchange, or from POP3 to IMAP): list again.
      if (cursor !== null && error instanceof MailServerError && error.reason === 'invalid-cursor') throw new CursorExpiredError(`the stored cursor is not this profile's (${error.message}); the mailbox is listed again`)
      throw error
    }
    const candidates: number[] = []
    page.changes.forEach((c, i) => {
      if (c.type === 'upsert' && c.kind === 'email' && c.meta?.tracked !== true && c.fields.direction !== 'outgoing' && typeof (c.fields.from as { address?: unknown } | undefined)?.address === 'string') candidates.push(i)
    })
    if (candidates.length === 0) return page
    const decisions = await this.decide(
      candidates.map((i) => (page.changes[i] as Extract<PullPage['changes'][number], { type: 'upsert' }>).fields),
      options.signal,
    )
    const tracked = candidates.filter((_, n) => decisions[n] === true)
    if (tracked.length === 0) return page
    const marked = this.onTracked ? await this.onTracked(tracked.map((i) => page.changes[i]!.nativeId)) : undefined
    const changes = [...page.changes]
    for (const i of tracked) {
      const c = changes[i]
      if (c?.type !== 'upsert') continue
      const m = marked?.get(c.nativeId)
      changes[i] = m ? { ...c, version: m.version, fields: { ...c.fields, categories: m.categories }, meta: { ...c.meta, tracked: true } } : { ...c, meta: { ...c.meta, tracked: true } }
    }
    return { ...page, changes }
  }

  push(ops: readonly PushOp[], options?: PushOptions): Promise<PushResult> {
    return this.inner.push(ops, options)
  }

  confirmMissing(nativeIds: readonly NativeId[], options?: PushOptions): Promise<NativeId[]> {
    options?.signal?.throwIfAborted()
    return this.inner.confirmMissing(nativeIds)
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}
