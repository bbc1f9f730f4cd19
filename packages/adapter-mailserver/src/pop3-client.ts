/**
 * A small binary-safe POP3 client (RFC 1939 + UIDL): USER/PASS, UIDL, LIST, RETR, DELE, QUIT.
 *
 * Written here because the available npm client (node-pop3 0.11) decodes responses as strings and
 * hangs on a RETR of a message without a header/body separator (found by the bad-input tests); a
 * mailbox must never stall on one bad message. Every command has a timeout.
 */
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

export class Pop3ProtocolError extends Error {
  override name = 'Pop3ProtocolError'
  constructor(
    message: string,
    readonly response?: string,
  ) {
    super(message)
  }
}

const CRLF = Buffer.from('\r\n')
const END = Buffer.from('\r\n.\r\n')

/** Received bytes not yet consumed: appended in amortised O(1), read as a view (a 30 MB RETR is not quadratic). */
class ByteQueue {
  private buf = Buffer.alloc(64 * 1024)
  private start = 0
  private end = 0

  push(chunk: Buffer): void {
    if (this.end + chunk.length > this.buf.length) {
      const live = this.end - this.start
      if (live + chunk.length <= this.buf.length / 2) {
        this.buf.copyWithin(0, this.start, this.end)
      } else {
        const next = Buffer.alloc(Math.max(this.buf.length * 2, (live + chunk.length) * 2))
        this.buf.copy(next, 0, this.start, this.end)
        this.buf = next
      }
      this.start = 0
      this.end = live
    }
    chunk.copy(this.buf, this.end)
    this.end += chunk.length
  }

  /** The unconsumed bytes (a view: copy what must outlive the next `push`). */
  view(): Buffer {
    return this.buf.subarray(this.start, this.end)
  }

  consume(n: number): void {
    this.start += n
    if (this.start >= this.end) this.start = this.end = 0
  }
}

export interface Pop3ClientOptions {
  host: string
  port: number
  secure: boolean
  timeoutMs: number
}

export class Pop3Client {
  private socket: Socket | undefined
  private readonly queue = new ByteQueue()
  private waiter: (() => void) | undefined
  private failure: Error | undefined

  constructor(private readonly options: Pop3ClientOptions) {}

  async connect(user: string, password: string): Promise<void> {
    const { host, port, secure } = this.options
    const socket = secure ? tlsConnect({ host, port, servername: host }) : tcpConnect({ host, port })
    this.socket = socket
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      this.queue.push(chunk)
      this.waiter?.()
    })
    const fail = (error: Error) => {
      this.failure ??= error
      this.waiter?.()
    }
    socket.on('error', fail)
    socket.on('close', () => fail(new Pop3ProtocolError('the POP3 server closed the connection')))
    await this.status() // greeting
    await this.command(`USER ${user}`)
    await this.command(`PASS ${password}`, 'PASS ***')
  }

  private async waitFor<T>(take: () => T | undefined, what: string): Promise<T> {
    const deadline = Date.now() + this.options.timeoutMs
    for (;;) {
      const got = take()
      if (got !== undefined) return got
      if (this.failure) throw this.failure
      const left = deadline - Date.now()
      if (left <= 0) {
        this.close()
        throw new Pop3ProtocolError(`POP3 ${what}: no answer within ${this.options.timeoutMs} ms`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiter = () => {
          clearTimeout(timer)
          this.waiter = undefined
          resolve()
        }
      })
    }
  }

  /** One status line (+OK / -ERR). */
  private async status(what = 'greeting'): Promise<string> {
    const line = await this.waitFor(() => {
      const view = this.queue.view()
      const i = view.indexOf(CRLF)
      if (i < 0) return undefined
      const text = view.subarray(0, i).toString('latin1')
      this.queue.consume(i + 2)
      return text
    }, what)
    if (!line.startsWith('+OK')) throw new Pop3ProtocolError(`POP3 ${what}: ${line}`, line)
    return line
  }

  private async command(cmd: string, shown = cmd): Promise<string> {
    if (!this.socket || this.failure) throw this.failure ?? new Pop3ProtocolError('not connected')
    this.socket.write(`${cmd}\r\n`)
    return this.status(shown)
  }

  /** A multi-line answer after +OK, dot-unstuffed. */
  private async multiline(cmd: string): Promise<Buffer> {
    await this.command(cmd)
    let scanned = 0 // bytes already searched for the terminator (each arrival is searched once)
    const body = await this.waitFor(() => {
      const view = this.queue.view()
      if (view.length >= 3 && view[0] === 0x2e && view[1] === 0x0d && view[2] === 0x0a) {
        this.queue.consume(3)
        return Buffer.alloc(0)
      }
      const i = view.indexOf(END, Math.max(0, scanned - END.length))
      if (i < 0) {
        scanned = view.length
        return undefined
      }
      const raw = Buffer.from(view.subarray(0, i + 2))
      this.queue.consume(i + END.length)
      return raw
    }, cmd)
    // dot-unstuffing: a line starting with ".." loses one dot
    const out: Buffer[] = []
    let start = 0
    while (start < body.length) {
      let end = body.indexOf(CRLF, start)
      end = end < 0 ? body.length : end + 2
      const line = body.subarray(start, end)
      out.push(line[0] === 0x2e ? line.subarray(1) : line)
      start = end
    }
    return Buffer.concat(out)
  }

  /** [message number, unique id] for every message. */
  async uidl(): Promise<Array<[number, string]>> {
    const text = (await this.multiline('UIDL')).toString('latin1')
    const out: Array<[number, string]> = []
    for (const line of text.split('\r\n')) {
      const m = /^(\d+) (\S+)$/.exec(line.trim())
      if (m) out.push([Number(m[1]), m[2]!])
    }
    return out
  }

  async retr(n: number): Promise<Buffer> {
    return this.multiline(`RETR ${n}`)
  }

  async dele(n: number): Promise<void> {
    await this.command(`DELE ${n}`)
  }

  /** Ends the session; DELE takes effect only now (UPDATE state). */
  async quit(): Promise<void> {
    try {
      await this.command('QUIT')
    } finally {
      this.close()
    }
  }

  close(): void {
    this.socket?.destroy()
    this.socket = undefined
  }
}
