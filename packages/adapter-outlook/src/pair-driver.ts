import { type CycleReport, type ItemKind, type ReplicaAdapter, type ReplicaStore, SyncPair, type SyncPairOptions, asPairId } from '@concord/engine'
import type { SyncSummary } from './protocol.js'
import { ScopedReplica } from './scope.js'
import type { DesignatedClient, SyncDriver } from './session-host.js'

export interface SyncPairDriverOptions {
  /** The user's engine store (the same one every time for a user). */
  store(userId: string): ReplicaStore | Promise<ReplicaStore>
  /**
   * The user's CRM replica (adapter-crm scoped to the user; its security and filters apply). `kinds` is
   * the sync scope of this sync: a replica may list only those (changes of other kinds are dropped anyway).
   */
  crm(userId: string, kinds: readonly ItemKind[]): ReplicaAdapter | Promise<ReplicaAdapter>
  /** The user's merge context: owner, security mask, sync filters. */
  context?: ((userId: string) => SyncPairOptions['context'] | Promise<SyncPairOptions['context']>) | undefined
  /** Cycles run per `syncNow` at most; stops earlier when a cycle finds nothing to do. Default 3. */
  maxCycles?: number | undefined
  /** Passed to every `SyncPair` (merge strategy, page size, logger, clock…). */
  pairOptions?: Omit<SyncPairOptions, 'pairId' | 'store' | 'crm' | 'mailbox' | 'context'> | undefined
}

/**
 * A `SyncDriver` that runs the engine's `SyncPair` for a user: `crm` = the user's CRM replica,
 * `mailbox` = the designated Outlook client over its socket. One pair per (user, client): switching
 * the designated client starts a fresh pair for the new client. Both sides are restricted to the
 * sync's scope (`DesignatedClient.kinds`, `ScopedReplica`): CRM changes of other kinds are dropped,
 * client changes of other kinds are refused (`out_of_scope`), and neither side's records of those
 * kinds are ever taken as deleted.
 */
export class SyncPairDriver implements SyncDriver {
  constructor(private readonly options: SyncPairDriverOptions) {}

  async sync(client: DesignatedClient, signal: AbortSignal): Promise<SyncSummary> {
    const store = await this.options.store(client.userId)
    const kinds = client.kinds
    const pair = new SyncPair({
      ...this.options.pairOptions,
      pairId: asPairId(`outlook~${client.replica.replicaId}`),
      store,
      crm: new ScopedReplica({ inner: await this.options.crm(client.userId, kinds), kinds, store, outside: 'drop' }),
      mailbox: new ScopedReplica({ inner: client.replica, kinds, store, outside: 'refuse' }),
      context: await this.options.context?.(client.userId),
    })
    const summary: SyncSummary = { cycles: 0, pulled: { crm: 0, mailbox: 0 }, pushed: { crm: 0, mailbox: 0 }, rejected: { crm: 0, mailbox: 0 }, merged: 0 }
    const maxCycles = this.options.maxCycles ?? 3
    for (let i = 0; i < maxCycles; i++) {
      const report: CycleReport = await pair.runCycle(signal)
      summary.cycles++
      for (const side of ['crm', 'mailbox'] as const) {
        summary.pulled[side] += report.pulled[side]
        summary.pushed[side] += report.pushed[side]
        summary.rejected[side] += report.rejected[side]
      }
      summary.merged += report.merged
      const busy = report.logged.crm + report.logged.mailbox + report.merged + report.pushed.crm + report.pushed.mailbox
      if (busy === 0 || report.throttledMs !== undefined) break
    }
    return summary
  }
}
