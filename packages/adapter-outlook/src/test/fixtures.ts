import { type AddressInfo } from 'node:net'
import { type Fields, type ItemKind, type NativeId, PolicyMerge, type ReplicaStore, asReplicaId, jsonEqual, openMemoryStore } from '@concord/engine'
import { MemoryRemote, MemoryReplicaAdapter } from '@concord/engine/testing'
import { WebSocketServer } from 'ws'
import { InMemoryDesignationStore } from '../designation.js'
import { OutlookProtocolError } from '../errors.js'
import type { OutlookLocalReplica } from '../local-replica.js'
export { ManualTimers, SYNC_TIMER, RECONNECT_TIMER, makeClient, RawClient, type TestClient } from '../testing/index.js'
import { SyncPairDriver, type SyncPairDriverOptions } from '../pair-driver.js'
import { outlookReplicaId } from '../remote-replica.js'
import type { ShouldTrackInput } from '../protocol.js'
import { ClientSessionHost, type ClientRequestHandlers, type ClientSessionHostOptions } from '../session-host.js'

/** The CRM as the tests see it: one in-memory remote per user (the user's scope), ids prefixed by user. */
export class MemoryCrm {
  readonly remotes = new Map<string, MemoryRemote>()
  readonly shouldTrackCalls: ShouldTrackInput[] = []

  remoteFor(userId: string): MemoryRemote {
    let remote = this.remotes.get(userId)
    if (!remote) this.remotes.set(userId, (remote = new MemoryRemote(`crm-${userId}`)))
    return remote
  }

  /** Which user a CRM id belongs to (the CRM's own security check). */
  private find(crmId: string): { userId: string; remote: MemoryRemote } | undefined {
    for (const [userId, remote] of this.remotes) if (remote.records.has(crmId as NativeId)) return { userId, remote }
    return undefined
  }

  private readable(userId: string, crmId: string): MemoryRemote {
    const found = this.find(crmId)
    if (!found || !found.remote.get(crmId as NativeId)) throw new OutlookProtocolError('not_found', `no CRM record ${crmId}`)
    if (found.userId !== userId) throw new OutlookProtocolError('forbidden', `user ${userId} may not read CRM record ${crmId}`)
    return found.remote
  }

  /** The handlers a sync server would implement against adapter-crm. */
  handlers(): ClientRequestHandlers {
    return {
      shouldTrack: async (ctx, email) => {
        this.shouldTrackCalls.push(email)
        const known = new Set(this.remoteFor(ctx.userId).liveRecords().filter((r) => r.kind === 'contact').map((r) => String(r.fields.email1).toLowerCase()))
        const addresses = [email.from, ...email.to, ...email.cc].map((a) => a.address.toLowerCase())
        return { track: addresses.some((a) => known.has(a)) }
      },
      track: async (ctx, input) => {
        const remote = this.remoteFor(ctx.userId)
        const existing = input.concordId === undefined ? undefined : remote.findByConcordId(input.concordId as never)
        if (existing) return { crmId: existing.nativeId }
        const fields = input.regarding ? { ...input.fields, regarding: input.regarding } : input.fields
        return { crmId: remote.create(input.kind, fields, input.concordId as never, { ownerId: ctx.userId, tracked: true }) }
      },
      setRegarding: async (ctx, input) => {
        this.readable(ctx.userId, input.crmId).update(input.crmId as NativeId, { regarding: input.regarding })
        return { crmId: input.crmId }
      },
      stopTracking: async (ctx, input) => {
        const remote = this.readable(ctx.userId, input.crmId)
        const record = remote.live(input.crmId as NativeId)
        if (record.meta?.ownerId === ctx.userId) {
          remote.remove(record.nativeId, 'stopped-tracking')
          return { deleted: true }
        }
        remote.setMeta(record.nativeId, { tracked: false })
        return { deleted: false }
      },
      addContact: async (ctx, input) => {
        const remote = this.remoteFor(ctx.userId)
        const existing = remote.liveRecords().find((r) => r.kind === 'contact' && String(r.fields.email1).toLowerCase() === input.sender.address.toLowerCase())
        if (existing) return { crmId: existing.nativeId, created: false }
        const [givenName, ...rest] = (input.sender.name ?? '').split(' ')
        const fields = { email1: input.sender.address, ...(givenName ? { givenName } : {}), ...(rest.length ? { surname: rest.join(' ') } : {}) }
        return { crmId: remote.create('contact', fields, undefined, { ownerId: ctx.userId }), created: true }
      },
      lookupIds: async (ctx, kind: ItemKind) => this.remoteFor(ctx.userId).liveRecords().filter((r) => r.kind === kind).map((r) => r.nativeId),
      lookupDetails: async (ctx, crmIds) =>
        crmIds.map((crmId) => {
          const record = this.readable(ctx.userId, crmId).live(crmId as NativeId)
          return { crmId, kind: record.kind, fields: record.fields }
        }),
    }
  }
}

export interface TestServer {
  url: string
  host: ClientSessionHost
  crm: MemoryCrm
  designations: InMemoryDesignationStore
  stores: Map<string, ReplicaStore>
  wss: WebSocketServer
  /** Kills every server-side socket without a close handshake (a dropped connection). */
  dropAll(): void
  close(): Promise<void>
}

export const TOKENS: Record<string, string> = { 'tok-alice': 'alice', 'tok-bob': 'bob' }

export async function startServer(options: Partial<ClientSessionHostOptions> = {}, driverOptions: Pick<SyncPairDriverOptions, 'context'> = {}): Promise<TestServer> {
  const crm = new MemoryCrm()
  const designations = new InMemoryDesignationStore()
  const stores = new Map<string, ReplicaStore>()
  const driver = new SyncPairDriver({
    store: async (userId) => {
      let store = stores.get(userId)
      if (!store) stores.set(userId, (store = (await openMemoryStore()).store))
      return store
    },
    crm: (userId) => new MemoryReplicaAdapter(asReplicaId(`crm-${userId}`), crm.remoteFor(userId)),
    pairOptions: { merge: new PolicyMerge() },
    ...driverOptions,
  })
  const host = new ClientSessionHost({
    authenticate: async (token) => (TOKENS[token] ? { userId: TOKENS[token] } : null),
    designations,
    handlers: crm.handlers(),
    sync: driver,
    ...options,
  })
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: host.maxFrameBytes })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  wss.on('connection', (socket) => host.handleWebSocket(socket))
  const { port } = wss.address() as AddressInfo
  return {
    url: `ws://127.0.0.1:${port}`,
    host,
    crm,
    designations,
    stores,
    wss,
    dropAll: () => {
      for (const socket of wss.clients) socket.terminate()
    },
    close: async () => {
      host.close()
      for (const socket of wss.clients) socket.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    },
  }
}

export async function convergence(server: TestServer, userId: string, clientId: string, replica: OutlookLocalReplica): Promise<string[]> {
  const problems: string[] = []
  const store = server.stores.get(userId)
  if (!store) return ['no store for user']
  const crmReplica = asReplicaId(`crm-${userId}`)
  const mailboxReplica = outlookReplicaId(userId, clientId)
  const linkedLocal = new Set<string>()
  for (const record of server.crm.remoteFor(userId).liveRecords()) {
    const snapshot = await store.getSnapshot(crmReplica, record.nativeId)
    if (!snapshot) {
      problems.push(`crm ${record.nativeId} never seen`)
      continue
    }
    const link = await store.getLink(snapshot.concordId)
    const localId = link?.natives[mailboxReplica]
    const local = localId === undefined ? undefined : await replica.getItem(localId)
    if (!local || local.deleted) {
      problems.push(`crm ${record.nativeId} has no live local copy`)
      continue
    }
    linkedLocal.add(local.nativeId)
    if (!fieldsEqual(record.fields, local.fields)) problems.push(`${record.nativeId}: fields differ crm=${JSON.stringify(record.fields)} local=${JSON.stringify(local.fields)}`)
  }
  for (const item of await replica.listItems()) {
    const snapshot = await store.getSnapshot(mailboxReplica, item.nativeId)
    const link = snapshot && (await store.getLink(snapshot.concordId))
    if (link?.natives[crmReplica] !== undefined && !linkedLocal.has(item.nativeId)) problems.push(`local ${item.nativeId} is linked to a CRM record that is gone`)
  }
  return problems
}

function fieldsEqual(a: Fields, b: Fields): boolean {
  for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) if (!jsonEqual(a[name] ?? null, b[name] ?? null)) return false
  return true
}
