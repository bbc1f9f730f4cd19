import {
  type Cursor,
  type NativeId,
  type PullPage,
  type PushOp,
  type PushOptions,
  type PushResult,
  type RemoteChange,
  type ReplicaAdapter,
  type ReplicaId,
  SyncError,
  ValidationError,
  asConcordId,
  asCursor,
  asNativeId,
  asOpId,
  asVersion,
  parseFields,
} from '@concord/engine'
import { OutlookProtocolError, syncErrorFromWire, syncErrorOf } from './errors.js'
import { ConfirmMissingResultSchema, PullResultSchema, PushResultSchema, parseResult } from './protocol.js'
import type { CallOptions } from './rpc.js'
import { type ScopedPullOptions, normalizeKinds } from './scope.js'

/** How the server reaches one connected Outlook client (a `ClientSession` implements it). */
export interface ClientChannel {
  /** Sends a server→client request and resolves with its raw `result`; rejects with `OutlookProtocolError`. */
  call(type: 'pull' | 'push' | 'confirmMissing', body: object, options: CallOptions): Promise<unknown>
  /** The fencing token to send with the next request; throws `fenced`/`not_designated` when this client may not sync (any more). */
  fencingToken(): Promise<number>
}

export interface RemoteClientReplicaOptions {
  replicaId: ReplicaId
  channel: ClientChannel
  /** Per-request timeout; a timeout is a retryable `Transient` engine error. Default 30 s. */
  timeoutMs?: number | undefined
  /**
   * Whether the client understands `pull.kinds` (protocol 2). A protocol 1 client is never sent a scope;
   * the `ScopedReplica` around this replica refuses what it sends outside the scope. Default true.
   */
  sendKinds?: boolean | undefined
}

/**
 * The server-side `ReplicaAdapter` of an Outlook client: `pull`/`push` are forwarded over the
 * client's socket. Every answer is validated (schema, then canonical fields per kind). A timeout or
 * a dropped socket fails the call with a retryable `Transient` error and nothing is half-applied on
 * the engine side (the outbox re-sends; the client applies each op once per `opId`). A client that
 * is no longer the designated sync client fails with `Forbidden` before anything is sent.
 */
export class RemoteClientReplica implements ReplicaAdapter {
  readonly replicaId: ReplicaId
  private readonly channel: ClientChannel
  private readonly timeoutMs: number
  private readonly sendKinds: boolean

  constructor(options: RemoteClientReplicaOptions) {
    this.replicaId = options.replicaId
    this.channel = options.channel
    this.timeoutMs = options.timeoutMs ?? 30_000
    this.sendKinds = options.sendKinds ?? true
  }

  /** `options.kinds` (the sync scope, `ScopedPullOptions`) is sent to a protocol 2 client as `pull.kinds`. */
  async pull(cursor: Cursor | null, options: ScopedPullOptions): Promise<PullPage> {
    const kinds = this.sendKinds && options.kinds !== undefined ? { kinds: normalizeKinds(options.kinds) } : {}
    const raw = await this.call('pull', { cursor, limit: Math.max(1, Math.floor(options.limit)), ...kinds }, options.signal)
    const page = wrap(() => parseResult(PullResultSchema, raw, 'pull'))
    const changes: RemoteChange[] = page.changes.map((change, index) => {
      if (change.type === 'delete') return { type: 'delete', nativeId: asNativeId(change.nativeId), provenance: change.provenance }
      try {
        parseFields(change.kind, change.fields)
      } catch (error) {
        const detail = error instanceof ValidationError ? error.message : String(error)
        throw new SyncError('InvalidRemoteData', `Outlook client sent invalid fields in pull change ${index} (${change.nativeId}): ${detail}`, {}, { cause: error })
      }
      return {
        type: 'upsert',
        nativeId: asNativeId(change.nativeId),
        kind: change.kind,
        version: asVersion(change.version),
        fields: change.fields,
        concordId: change.concordId === undefined ? undefined : asConcordId(change.concordId),
        modifiedAt: change.modifiedAt,
        meta: change.meta,
      }
    })
    return { changes, nextCursor: asCursor(page.nextCursor), hasMore: page.hasMore, fullListing: page.fullListing }
  }

  async push(ops: readonly PushOp[], options: PushOptions = {}): Promise<PushResult> {
    if (ops.length === 0) return { applied: [], rejected: [] }
    let raw: unknown
    try {
      raw = await this.call('push', { ops }, options.signal)
    } catch (error) {
      // A batch too large for one frame is sent in halves; a single op too large is rejected alone.
      if (error instanceof SyncError && error.cause instanceof OutlookProtocolError && error.cause.code === 'too_large') {
        if (ops.length === 1) return { applied: [], rejected: [{ opId: ops[0]!.opId, error: new SyncError('Validation', `push op ${ops[0]!.opId} is larger than one frame: ${error.message}`) }] }
        const half = Math.ceil(ops.length / 2)
        const a = await this.push(ops.slice(0, half), options)
        const b = await this.push(ops.slice(half), options)
        return { applied: [...a.applied, ...b.applied], rejected: [...a.rejected, ...b.rejected] }
      }
      throw error
    }
    const result = wrap(() => parseResult(PushResultSchema, raw, 'push'))
    return {
      applied: result.applied.map((a) => ({ opId: asOpId(a.opId), nativeId: a.nativeId === undefined ? undefined : asNativeId(a.nativeId), version: a.version === undefined ? undefined : asVersion(a.version), fields: a.fields })),
      rejected: result.rejected.map((r) => ({ opId: asOpId(r.opId), error: syncErrorFromWire(r.code, r.message) })),
    }
  }

  /** Asks the client which of these items are gone (after a full listing); only ids the engine asked about count. */
  async confirmMissing(nativeIds: readonly NativeId[], options: PushOptions = {}): Promise<NativeId[]> {
    if (nativeIds.length === 0) return []
    const asked = new Set<string>(nativeIds)
    const raw = await this.call('confirmMissing', { nativeIds }, options.signal)
    const result = wrap(() => parseResult(ConfirmMissingResultSchema, raw, 'confirmMissing'))
    return result.missing.filter((id) => asked.has(id)).map(asNativeId)
  }

  private async call(type: 'pull' | 'push' | 'confirmMissing', body: object, signal: AbortSignal | undefined): Promise<unknown> {
    return wrapAsync(async () => {
      const fencingToken = await this.channel.fencingToken()
      return this.channel.call(type, { fencingToken, ...body }, { timeoutMs: this.timeoutMs, signal })
    })
  }
}

function toSyncError(error: unknown): unknown {
  if (error instanceof OutlookProtocolError) return syncErrorOf(error.code, `Outlook client: ${error.message}`, error)
  return error
}

function wrap<T>(fn: () => T): T {
  try {
    return fn()
  } catch (error) {
    throw toSyncError(error)
  }
}

async function wrapAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (error) {
    throw toSyncError(error)
  }
}

/** The engine replica id of a user's Outlook client: stable per (user, client), safe in store keys. */
export function outlookReplicaId(userId: string, clientId: string): ReplicaId {
  return `outlook:${userId.replaceAll('!', '%21')}:${clientId}` as ReplicaId
}
