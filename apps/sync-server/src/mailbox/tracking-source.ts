/**
 * Automatic tracking for a POP3 mailbox. POP3 has nowhere to keep the tracking category (manual
 * tracking is unsupported for POP3/SMTP, protocols.md §5.1), so the owner's tracking option is applied
 * as each new incoming message is pulled: a message to track is reported to the engine as tracked
 * (`meta.tracked`), which brings it to the CRM in the same cycle, where it is correlated like any
 * tracked email. Only sender, recipients and subject are looked at (the privacy rule of §5.8).
 */
import type { Cursor, Fields, NativeId, PullOptions, PullPage, PushOp, PushOptions, PushResult, ReplicaAdapter, ReplicaId } from '@concord/engine'
import type { MailServerAdapter } from '@concord/adapter-mailserver'

export class AutoTrackingSource implements ReplicaAdapter {
  readonly replicaId: ReplicaId

  constructor(
    private readonly inner: MailServerAdapter,
    private readonly decide: (page: readonly Fields[], signal?: AbortSignal) => Promise<boolean[]>,
  ) {
    this.replicaId = inner.replicaId
  }

  async pull(cursor: Cursor | null, options: PullOptions): Promise<PullPage> {
    const page = await this.inner.pull(cursor, options)
    const candidates: number[] = []
    page.changes.forEach((c, i) => {
      if (c.type === 'upsert' && c.kind === 'email' && c.meta?.tracked !== true && c.fields.direction !== 'outgoing' && typeof (c.fields.from as { address?: unknown } | undefined)?.address === 'string') candidates.push(i)
    })
    if (candidates.length === 0) return page
    const decisions = await this.decide(
      candidates.map((i) => (page.changes[i] as Extract<PullPage['changes'][number], { type: 'upsert' }>).fields),
      options.signal,
    )
    const changes = [...page.changes]
    candidates.forEach((i, n) => {
      const c = changes[i]
      if (decisions[n] && c?.type === 'upsert') changes[i] = { ...c, meta: { ...c.meta, tracked: true } }
    })
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
