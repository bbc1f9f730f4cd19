import { OutlookProtocolError, type ProtocolErrorCode, protocolCodeOf } from './errors.js'
import { encodeFrame } from './protocol.js'
import type { FrameTransport } from './transport.js'

interface Pending {
  resolve(value: unknown): void
  reject(error: Error): void
  timer: ReturnType<typeof setTimeout>
  cleanup(): void
}

export interface CallOptions {
  timeoutMs: number
  signal?: AbortSignal | undefined
}

/**
 * Request/response bookkeeping over one transport: correlation ids, timeouts, aborts, and failing
 * every pending call when the connection closes. Shared by both ends.
 */
export class RpcPeer {
  private readonly pending = new Map<string, Pending>()
  private counter = 0
  private closed: OutlookProtocolError | undefined

  constructor(
    private readonly transport: FrameTransport,
    /** May be lowered/raised once the peer's limit is known (after `welcome`). */
    public maxFrameBytes: number,
    private readonly idPrefix: string,
  ) {}

  /** Sends a request `{type, id, ...body}` and resolves with the peer's `result` payload. */
  call(type: string, body: object, options: CallOptions): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed)
    if (options.signal?.aborted) return Promise.reject(new OutlookProtocolError('unavailable', `${type} aborted before it was sent`))
    const id = `${this.idPrefix}${++this.counter}`
    const text = encodeFrame({ type, id, ...body }, this.maxFrameBytes)
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = () => this.settle(id, undefined, new OutlookProtocolError('unavailable', `${type} aborted`))
      const timer = setTimeout(() => this.settle(id, undefined, new OutlookProtocolError('timeout', `no answer to ${type} within ${options.timeoutMs} ms`)), options.timeoutMs)
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.pending.set(id, { resolve, reject, timer, cleanup: () => options.signal?.removeEventListener('abort', onAbort) })
      this.transport.send(text)
    })
  }

  /** Routes a `result`/`error` with an id. Returns false when no call is waiting for that id. */
  settle(id: string, result: unknown, error?: Error): boolean {
    const entry = this.pending.get(id)
    if (!entry) return false
    this.pending.delete(id)
    clearTimeout(entry.timer)
    entry.cleanup()
    if (error) entry.reject(error)
    else entry.resolve(result)
    return true
  }

  /** Fails every pending call (the connection closed) and refuses new ones. */
  close(error: OutlookProtocolError): void {
    this.closed = error
    for (const id of [...this.pending.keys()]) this.settle(id, undefined, error)
  }

  get pendingCount(): number {
    return this.pending.size
  }

  /** Sends a `result` for a request of the peer. A result too large to send becomes a `too_large` error. */
  reply(id: string, result: unknown): void {
    let text: string
    try {
      text = encodeFrame({ type: 'result', id, result }, this.maxFrameBytes)
    } catch (error) {
      return this.replyError(id, protocolCodeOf(error), (error as Error).message)
    }
    this.transport.send(text)
  }

  /** Sends an `error` (with the request id when there is one). */
  replyError(id: string | undefined, code: ProtocolErrorCode, message: string): void {
    const text = JSON.stringify({ type: 'error', ...(id === undefined ? {} : { id }), code, message: message.length > 1900 ? `${message.slice(0, 1900)}…` : message })
    this.transport.send(text)
  }
}
