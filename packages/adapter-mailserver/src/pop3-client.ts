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

export interface Pop3ClientOptions {
  host: string
  port: number
  secure: boolean
  timeoutMs: number
}

export class Pop3Client {
  private socket: Socket | undefined
  private buffer = Buffer.alloc(0)
  private waiter: (() => void) | undefined
  private failure: Error | undefined

  constructor(private readonly options: Pop3ClientOptions) {}

  async connect(user: string, password: string): Promise<void> {
    const { host, port, secure } = this.options
    const socket = secure ? tlsConnect({ host, port, servername: host }) : tcpConnect({ host, port })
    this.socket = socket
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk])
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
      const i = this.buffer.indexOf(CRLF)
      if (i < 0) return undefined
      const text = this.buffer.subarray(0, i).toString('latin1')
      this.buffer = this.buffer.subarray(i + 2)
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
    const body = await this.waitFor(() => {
      if (this.buffer.length >= 3 && this.buffer[0] === 0x2e && this.buffer[1] === 0x0d && this.buffer[2] === 0x0a) {
        this.buffer = this.buffer.subarray(3)
        return Buffer.alloc(0)
      }
      const i = this.buffer.indexOf(END)
      if (i < 0) return undefined
      const raw = this.buffer.subarray(0, i + 2)
      this.buffer = this.buffer.subarray(i + END.length)
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
