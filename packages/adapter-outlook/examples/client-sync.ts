import type { AddressInfo } from 'node:net'
import { type NativeId, PolicyMerge, asReplicaId, openMemoryStore } from '@concord/engine'
import { MemoryRemote, MemoryReplicaAdapter } from '@concord/engine/testing'
import { WebSocket, WebSocketServer } from 'ws'
import {
  type ClientRequestHandlers,
  ClientSessionHost,
  type ClientWebSocketConstructor,
  InMemoryDesignationStore,
  OutlookProtocolError,
  OutlookSyncClient,
  SyncPairDriver,
  openMemoryLocalReplica,
} from '../src/index.js'

/** Server and Outlook client in one process: a CRM contact reaches Outlook, a tracked Outlook task reaches the CRM. */
export async function clientSyncExample(): Promise<{ contactsInOutlook: number; tasksInCrm: number; designated: boolean }> {
  // --- server side (apps/sync-server mounts these) -------------------------------------------
  const crm = new MemoryRemote('crm') // stands in for the user's @concord/adapter-crm scope
  const { store } = await openMemoryStore()
  const handlers: ClientRequestHandlers = {
    shouldTrack: async () => ({ track: false }),
    track: async (ctx, input) => ({ crmId: crm.create(input.kind, input.fields, undefined, { ownerId: ctx.userId, tracked: true }) }),
    setRegarding: async (_ctx, input) => (crm.update(input.crmId as NativeId, { regarding: input.regarding }), { crmId: input.crmId }),
    stopTracking: async () => ({ deleted: false }),
    addContact: async (ctx, input) => ({ crmId: crm.create('contact', { email1: input.sender.address }, undefined, { ownerId: ctx.userId }), created: true }),
    lookupIds: async (_ctx, kind) => crm.liveRecords().filter((r) => r.kind === kind).map((r) => r.nativeId),
    lookupDetails: async (_ctx, ids) =>
      ids.map((id) => {
        const r = crm.get(id as NativeId)
        if (!r) throw new OutlookProtocolError('not_found', `no CRM record ${id}`)
        return { crmId: id, kind: r.kind, fields: r.fields }
      }),
  }
  const host = new ClientSessionHost({
    authenticate: async (token) => (token === 'alice-token' ? { userId: 'alice' } : null),
    designations: new InMemoryDesignationStore(),
    handlers,
    sync: new SyncPairDriver({ store: () => store, crm: () => new MemoryReplicaAdapter(asReplicaId('crm'), crm), pairOptions: { merge: new PolicyMerge() } }),
    minIntervalMinutes: 5,
  })
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: host.maxFrameBytes })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  wss.on('connection', (socket) => host.handleWebSocket(socket))

  // --- client side (where Outlook runs) --------------------------------------------------------
  const replica = await openMemoryLocalReplica() // openClassicLocalReplica(dir) in Node, openBrowserLocalReplica(name) in the add-in
  const client = new OutlookSyncClient({
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    token: 'alice-token',
    clientId: 'alice-laptop',
    replica,
    WebSocket: WebSocket as unknown as ClientWebSocketConstructor, // omit in a browser
  })
  const welcome = await client.start() // first client of the user: designated; syncs every 15 min from now on

  crm.create('contact', { givenName: 'Ann', surname: 'Lee', email1: 'ann@fabrikam.test' }, undefined, { ownerId: 'alice' })
  await replica.createItem('task', { subject: 'Call Ann', status: 'notStarted' }, { tracked: true })
  await client.syncNow()

  const result = { contactsInOutlook: (await replica.listItems('contact')).length, tasksInCrm: crm.liveRecords().filter((r) => r.kind === 'task').length, designated: welcome.designated }
  await client.stop()
  host.close()
  await new Promise<void>((resolve) => wss.close(() => resolve()))
  return result
}
