/**
 * The task pane's connection to the sync server: one browser WebSocket to `/client` speaking
 * the client-sync protocol (`PROTOCOL_VERSION`: hello → welcome, then client requests). It never syncs items (server-side sync does);
 * it only asks the tracking requests and the App for Outlook's `mailboxStatus` / `itemInfo` / `search`.
 */
import { OutlookProtocolError } from '../../src/errors.js'
import { ClientResultSchemas, type ClientRequestType, HandshakeReplySchema, PROTOCOL_VERSION, ServerMessageSchema, type WelcomeMessage, decodeFrame, parseResult } from '../../src/protocol.js'
import { RpcPeer } from '../../src/rpc.js'
import { browserTransport, type BrowserWebSocketLike } from '../../src/transport.js'
import type { z } from 'zod'

/** The browser `WebSocket` members the pane uses. */
export interface PaneSocket extends BrowserWebSocketLike {
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void
  addEventListener(type: 'open' | 'error', listener: () => void, options?: { once?: boolean }): void
}
export type PaneSocketConstructor = new (url: string) => PaneSocket

const REQUEST_TIMEOUT_MS = 30_000

export class PaneClient {
  private closedError: OutlookProtocolError | undefined

  private constructor(
    private readonly peer: RpcPeer,
    private readonly socket: PaneSocket,
    readonly welcome: WelcomeMessage,
  ) {}

  /**
   * Opens the socket and completes the handshake; rejects with the server's error (e.g. `unauthorized`).
   * `onClose` is told when the connection closes after the handshake (not after `close()`).
   */
  static connect(url: string, token: string, clientId: string, WebSocketImpl: PaneSocketConstructor, onClose?: (code: number, reason: string) => void): Promise<PaneClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocketImpl(url)
      const transport = browserTransport(socket)
      const peer = new RpcPeer(transport, 1024 * 1024, 'pane-')
      let client: PaneClient | undefined
      transport.onMessage((text) => {
        if (text === undefined) return
        if (!client) {
          const reply = decodeFrame(text, HandshakeReplySchema)
          if (!reply.ok) return reject(reply.error)
          if (reply.message.type === 'error') return reject(new OutlookProtocolError(reply.message.code, reply.message.message))
          client = new PaneClient(peer, socket, reply.message)
          peer.maxFrameBytes = reply.message.maxFrameBytes
          return resolve(client)
        }
        const decoded = decodeFrame(text, ServerMessageSchema)
        if (!decoded.ok) return
        const m = decoded.message
        if (m.type === 'result') peer.settle(m.id, m.result)
        else if (m.type === 'error' && m.id !== undefined) peer.settle(m.id, undefined, new OutlookProtocolError(m.code, m.message))
        // pull / push / confirmMissing are for a designated sync client: the pane is never designated.
        else if (m.type === 'pull' || m.type === 'push' || m.type === 'confirmMissing') peer.replyError(m.id, 'not_designated', 'the App for Outlook does not sync items')
      })
      transport.onClose((code, reason) => {
        const error = new OutlookProtocolError('unavailable', `the connection to the sync server closed (${code}${reason ? `: ${reason}` : ''})`)
        peer.close(error)
        if (!client) return reject(error)
        const closedByUs = client.closedError !== undefined
        client.closedError = error
        if (!closedByUs) onClose?.(code, reason)
      })
      socket.addEventListener('error', () => reject(new OutlookProtocolError('unavailable', `cannot reach the sync server at ${url}`)), { once: true })
      socket.addEventListener('open', () => transport.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, token, clientId, clientName: 'App for Outlook', syncItems: false })), { once: true })
    })
  }

  get closed(): boolean {
    return this.closedError !== undefined
  }

  /** One client request, its result validated against the protocol's schema. */
  async request<T extends ClientRequestType>(type: T, body: object): Promise<z.infer<(typeof ClientResultSchemas)[T]>> {
    const raw = await this.peer.call(type, body, { timeoutMs: REQUEST_TIMEOUT_MS })
    return parseResult(ClientResultSchemas[type] as unknown as z.ZodType<z.infer<(typeof ClientResultSchemas)[T]>>, raw, type)
  }

  close(): void {
    this.closedError ??= new OutlookProtocolError('unavailable', 'the pane closed the connection')
    this.socket.close(1000, 'pane closed')
  }
}
