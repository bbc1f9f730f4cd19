/** A TCP proxy that cuts its first connection after `cutAfterBytes` of server → client traffic (a server dropping mid-fetch). */
import { createServer, connect, type Socket } from 'node:net'

export interface DropProxy {
  port: number
  /** Connections cut so far. */
  cuts: number
  close(): Promise<void>
}

export async function startDropProxy(targetPort: number, cutAfterBytes: number): Promise<DropProxy> {
  const sockets = new Set<Socket>()
  const state: { armed: boolean; cuts: number } = { armed: true, cuts: 0 }
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort })
    sockets.add(client).add(upstream)
    const cutThis = state.armed
    state.armed = false
    let bytes = 0
    upstream.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (cutThis && bytes > cutAfterBytes) {
        state.cuts++
        client.destroy()
        upstream.destroy()
        return
      }
      client.write(chunk)
    })
    client.on('data', (chunk: Buffer) => upstream.write(chunk))
    const end = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const proxy: DropProxy = {
    port: typeof address === 'object' && address ? address.port : 0,
    get cuts() {
      return state.cuts
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
  return proxy
}
