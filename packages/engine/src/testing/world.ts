import type { ReplicaAdapter } from '../contract/replica-adapter.js'
import { asPairId, asReplicaId, type ReplicaId } from '../ids.js'
import type { Fields } from '../model/item.js'
import type { ReplicaStore } from '../store/replica-store.js'
import type { MergeStrategy } from '../sync/merge-strategy.js'
import { SyncPair } from '../sync/sync-pair.js'
import { jsonEqual } from '../util/canonical-json.js'
import { type MemoryFaults, MemoryRemote, MemoryReplicaAdapter } from './memory-replica.js'

export interface TwoReplicaWorld {
  crm: MemoryRemote
  mailbox: MemoryRemote
  crmAdapter: MemoryReplicaAdapter
  mailboxAdapter: MemoryReplicaAdapter
  pair: SyncPair
  store: ReplicaStore
}

export interface WorldOptions {
  store: ReplicaStore
  /** Reuse the remotes of an earlier world (a restart after a crash keeps the remote state). */
  remotes?: { crm: MemoryRemote; mailbox: MemoryRemote } | undefined
  faults?: MemoryFaults | undefined
  seed?: number | undefined
  merge?: MergeStrategy | undefined
  pageLimit?: number | undefined
  now?: (() => number) | undefined
  explainRecords?: boolean | undefined
  waitForOutboxWrite?: boolean | undefined
}

export const CRM_REPLICA: ReplicaId = asReplicaId('crm')
export const MAILBOX_REPLICA: ReplicaId = asReplicaId('mailbox-alice')

/** A CRM and a mailbox, both in memory, synced through `store`. The standard fixture of engine tests. */
export function createTwoReplicaWorld(options: WorldOptions): TwoReplicaWorld {
  const crm = options.remotes?.crm ?? new MemoryRemote('crm', options.now)
  const mailbox = options.remotes?.mailbox ?? new MemoryRemote('mbx', options.now)
  const seed = options.seed ?? 1
  const crmAdapter = new MemoryReplicaAdapter(CRM_REPLICA, crm, { faults: options.faults, seed })
  const mailboxAdapter = new MemoryReplicaAdapter(MAILBOX_REPLICA, mailbox, { faults: options.faults, seed: seed + 7919 })
  const pair = new SyncPair({ pairId: asPairId('crm~alice'), store: options.store, crm: crmAdapter, mailbox: mailboxAdapter, merge: options.merge, pageLimit: options.pageLimit, now: options.now, explainRecords: options.explainRecords, waitForOutboxWrite: options.waitForOutboxWrite })
  return { crm, mailbox, crmAdapter, mailboxAdapter, pair, store: options.store }
}

export interface ConvergenceReport {
  converged: boolean
  crmCount: number
  mailboxCount: number
  problems: string[]
}

/**
 * Checks that every live record on one side has exactly one live counterpart with equal fields on
 * the other, through the store's links. Lists every problem rather than stopping at the first.
 */
export async function checkConvergence(world: TwoReplicaWorld): Promise<ConvergenceReport> {
  const problems: string[] = []
  const crmLive = world.crm.liveRecords()
  const mailboxLive = world.mailbox.liveRecords()
  const matchedMailbox = new Set<string>()
  for (const record of crmLive) {
    const snapshot = await world.store.getSnapshot(CRM_REPLICA, record.nativeId)
    if (!snapshot) {
      problems.push(`crm ${record.nativeId} was never seen by the engine`)
      continue
    }
    const link = await world.store.getLink(snapshot.concordId)
    const counterpart = link?.natives[MAILBOX_REPLICA]
    const other = counterpart === undefined ? undefined : world.mailbox.get(counterpart)
    if (!other) {
      problems.push(`crm ${record.nativeId} (${snapshot.concordId}) has no live mailbox copy`)
      continue
    }
    matchedMailbox.add(other.nativeId)
    if (!fieldsEqual(record.fields, other.fields)) problems.push(`${snapshot.concordId}: fields differ crm=${JSON.stringify(record.fields)} mailbox=${JSON.stringify(other.fields)}`)
  }
  for (const record of mailboxLive) if (!matchedMailbox.has(record.nativeId)) problems.push(`mailbox ${record.nativeId} has no crm counterpart`)
  return { converged: problems.length === 0, crmCount: crmLive.length, mailboxCount: mailboxLive.length, problems }
}

function fieldsEqual(a: Fields, b: Fields): boolean {
  const names = new Set([...Object.keys(a), ...Object.keys(b)])
  for (const name of names) if (!jsonEqual(a[name] ?? null, b[name] ?? null)) return false
  return true
}

/** Runs cycles until one finds nothing to pull, merge or push (bounded). Retries throttles and lost acks. */
export async function syncUntilQuiet(world: TwoReplicaWorld, maxCycles = 50): Promise<number> {
  for (let cycle = 1; cycle <= maxCycles; cycle++) {
    let report
    try {
      report = await world.pair.runCycle()
    } catch (error) {
      if ((error as { code?: string }).code === 'Transient') continue
      throw error
    }
    const busy = report.logged.crm + report.logged.mailbox + report.merged + report.pushed.crm + report.pushed.mailbox
    if (busy === 0 && report.throttledMs === undefined && !report.mergeDeferred && report.rejected.crm + report.rejected.mailbox === 0) return cycle
  }
  throw new Error(`not quiet after ${maxCycles} cycles`)
}

/**
 * Runs `act` once, right before the adapter's first push that has a delete: a person's edit racing the
 * engine between its pull and its push. Returns whether it ran.
 */
export function beforeFirstDeletePush(adapter: ReplicaAdapter, act: () => void): () => boolean {
  const push = adapter.push.bind(adapter)
  let ran = false
  adapter.push = async (ops, options) => {
    if (!ran && ops.some((op) => op.type === 'delete')) {
      ran = true
      act()
    }
    return push(ops, options)
  }
  return () => ran
}
