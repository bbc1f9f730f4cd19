/**
 * The socket both ends of the protocol talk through. A `ws` WebSocket (Node) and the browser's
 * WebSocket both fit, through `wsTransport` and `browserTransport`; tests may use a pair of
 * in-memory transports.
 */
export interface FrameTransport {
  /** Sends one text frame. Never throws for a closed socket (the frame is dropped). */
  send(text: string): void
  /** Closes the connection with a WebSocket close code. */
  close(code: number, reason: string): void
  /** `text` is undefined for a binary frame (never valid in this protocol); `bytes` is the frame size. */
  onMessage(handler: (text: string | undefined, bytes: number) => void): void
  onClose(handler: (code: number, reason: string) => void): void
}

/** The parts of a `ws` WebSocket the transport uses (structural, so no runtime import of `ws`). */
export interface NodeWebSocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  on(event: 'message', listener: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): unknown
  on(event: 'close', listener: (code: number, reason: Buffer) => void): unknown
  on(event: 'error', listener: (error: Error) => void): unknown
}

const OPEN = 1

function sizeOf(data: Buffer | ArrayBuffer | Buffer[]): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.byteLength, 0)
  return data.byteLength
}

/** A transport over a `ws` WebSocket (server side, or a Node client). */
export function wsTransport(socket: NodeWebSocketLike): FrameTransport {
  socket.on('error', () => {
    // 'close' follows every 'error'; the session reacts there. Listening keeps ws from throwing.
  })
  return {
    send(text) {
      if (socket.readyState === OPEN) socket.send(text)
    },
    close(code, reason) {
      try {
        socket.close(code, reason)
      } catch {
        socket.close()
      }
    },
    onMessage(handler) {
      socket.on('message', (data, isBinary) => {
        if (isBinary) return handler(undefined, sizeOf(data))
        const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)
        handler(buffer.toString('utf8'), buffer.byteLength)
      })
    },
    onClose(handler) {
      socket.on('close', (code, reason) => handler(code, reason.toString('utf8')))
    },
  }
}

/** The parts of a browser WebSocket the transport uses. */
export interface BrowserWebSocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void
}

const encoder = new TextEncoder()

/** A transport over a browser WebSocket (the add-in), or anything with the same event API. */
export function browserTransport(socket: BrowserWebSocketLike): FrameTransport {
  return {
    send(text) {
      if (socket.readyState === OPEN) socket.send(text)
    },
    close(code, reason) {
      try {
        socket.close(code, reason)
      } catch {
        // Browsers only accept 1000 and 3000–4999 from scripts.
        socket.close(1000, reason)
      }
    },
    onMessage(handler) {
      socket.addEventListener('message', (event) => {
        if (typeof event.data === 'string') handler(event.data, encoder.encode(event.data).byteLength)
        else handler(undefined, (event.data as { byteLength?: number; size?: number }).byteLength ?? (event.data as { size?: number }).size ?? 0)
      })
    },
    onClose(handler) {
      socket.addEventListener('close', (event) => handler(event.code, event.reason))
    },
  }
}
