export { OutlookProtocolError, ProtocolErrorCodes, type ProtocolErrorCode, protocolCodeOf, syncErrorOf } from './errors.js'
export * from './protocol.js'
export { OutlookLocalReplica, type LocalDatabase, type LocalItem, type OutlookLocalReplicaOptions, type CreateItemOptions } from './local-replica.js'
export { openMemoryLocalReplica, openClassicLocalReplica, openBrowserLocalReplica } from './open.js'
export { RemoteClientReplica, type RemoteClientReplicaOptions, type ClientChannel, outlookReplicaId } from './remote-replica.js'
export { type Designation, type DesignationStore, InMemoryDesignationStore, type IntervalStore, InMemoryIntervalStore } from './designation.js'
export {
  ClientSessionHost,
  type ClientSessionHostOptions,
  type AuthenticatedUser,
  type RequestContext,
  type ClientRequestHandlers,
  type DesignatedClient,
  type SyncDriver,
  type SessionInfo,
  type GuardedAction,
} from './session-host.js'
export { SyncPairDriver, type SyncPairDriverOptions } from './pair-driver.js'
export { ScopedReplica, type ScopedReplicaOptions, type ScopedPullOptions, ALL_KINDS, normalizeKinds, sameKinds } from './scope.js'
export { OutlookSyncClient, type OutlookSyncClientOptions, type ClientWebSocket, type ClientWebSocketConstructor, type CredentialStore, type Timers, type ClientEvent, type ClientState } from './sync-client.js'
export { type FrameTransport, type NodeWebSocketLike, type BrowserWebSocketLike, wsTransport, browserTransport } from './transport.js'
export type { CallOptions } from './rpc.js'
