import type { PushOp } from '@concord/engine'
import { propConfig, sampleFields } from '@concord/engine/testing'
import fc from 'fast-check'
import { expect, test } from 'vitest'
import { RECONNECT_TIMER, convergence, makeClient, startServer } from './test/fixtures.js'

type Kind = 'contact' | 'task'
type Action =
  | { type: 'crmCreate'; kind: Kind; n: number }
  | { type: 'crmUpdate'; pick: number; n: number }
  | { type: 'crmDelete'; pick: number }
  | { type: 'localCreate'; kind: Kind; n: number }
  | { type: 'localUpdate'; pick: number; n: number }
  | { type: 'localDelete'; pick: number }
  | { type: 'sync' }
  | { type: 'dropDuringPush' }
  | { type: 'dropDuringPull' }

const kind = fc.constantFrom<Kind>('contact', 'task')
const n = fc.integer({ min: 0, max: 50 })
const pick = fc.nat(20)
const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ type: fc.constant('crmCreate' as const), kind, n }),
  fc.record({ type: fc.constant('crmUpdate' as const), pick, n }),
  fc.record({ type: fc.constant('crmDelete' as const), pick }),
  fc.record({ type: fc.constant('localCreate' as const), kind, n }),
  fc.record({ type: fc.constant('localUpdate' as const), pick, n }),
  fc.record({ type: fc.constant('localDelete' as const), pick }),
  fc.constant({ type: 'sync' as const }),
  fc.constant({ type: 'dropDuringPush' as const }),
  fc.constant({ type: 'dropDuringPull' as const }),
)

const patch = (k: string, v: number) => (k === 'contact' ? { jobTitle: `Title ${v}` } : { subject: `Subject ${v}` })

// Random CRM edits, Outlook edits (offline while disconnected), syncs and sockets dropped in the
// middle of a pull or a push: after reconnecting and syncing, both sides agree, nothing tracked is
// lost and nothing is duplicated.
test('client sync converges through random edits and dropped sockets', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 14 }), async (actions) => {
      const server = await startServer()
      const c = await makeClient(server.url, 'tok-alice', 'alice-laptop', { syncOnReconnect: false })
      const crm = server.crm.remoteFor('alice')
      let drop: 'push' | 'pull' | undefined
      const push = c.replica.push.bind(c.replica)
      const pull = c.replica.pull.bind(c.replica)
      c.replica.push = async (ops: readonly PushOp[]) => {
        const result = await push(ops)
        if (drop === 'push') {
          drop = undefined
          server.dropAll()
        }
        return result
      }
      c.replica.pull = async (cursor, options) => {
        const page = await pull(cursor, options)
        if (drop === 'pull') {
          drop = undefined
          server.dropAll()
        }
        return page
      }
      const reconnect = async () => {
        if (c.client.state === 'open') return
        for (let i = 0; i < 100 && c.timers.fire(RECONNECT_TIMER) === 0; i++) await new Promise((resolve) => setImmediate(resolve))
        await c.client.whenConnected()
      }
      try {
        await c.client.start()
        for (const a of actions) {
          switch (a.type) {
            case 'crmCreate':
              crm.create(a.kind, sampleFields(a.kind, a.n), undefined, { ownerId: 'alice' })
              break
            case 'crmUpdate': {
              const live = crm.liveRecords()
              const r = live[a.pick % Math.max(1, live.length)]
              if (r) crm.update(r.nativeId, patch(r.kind, a.n))
              break
            }
            case 'crmDelete': {
              const live = crm.liveRecords()
              const r = live[a.pick % Math.max(1, live.length)]
              if (r) crm.remove(r.nativeId)
              break
            }
            case 'localCreate':
              await c.replica.createItem(a.kind, sampleFields(a.kind, a.n + 100), { tracked: true })
              break
            case 'localUpdate': {
              const live = await c.replica.listItems()
              const item = live[a.pick % Math.max(1, live.length)]
              if (item) await c.replica.updateItem(item.nativeId, patch(item.kind, a.n))
              break
            }
            case 'localDelete': {
              const live = await c.replica.listItems()
              const item = live[a.pick % Math.max(1, live.length)]
              if (item) await c.replica.deleteItem(item.nativeId)
              break
            }
            case 'sync':
              await reconnect()
              await c.client.syncNow()
              break
            case 'dropDuringPush':
            case 'dropDuringPull':
              await reconnect()
              drop = a.type === 'dropDuringPush' ? 'push' : 'pull'
              await c.client.syncNow().catch(() => undefined)
              drop = undefined
              break
          }
        }
        await reconnect()
        for (let i = 0; i < 3; i++) await c.client.syncNow()
        const quiet = await c.client.syncNow()
        expect(quiet.pushed).toEqual({ crm: 0, mailbox: 0 })
        expect(await convergence(server, 'alice', 'alice-laptop', c.replica)).toEqual([])
        // nothing duplicated: every CRM record has its own local copy, and vice versa
        const local = await c.replica.listItems()
        const tracked = local.filter((i) => i.meta?.tracked === true || i.concordId !== undefined)
        expect(tracked.length).toBe(crm.liveRecords().length)
        expect(new Set(crm.liveRecords().map((r) => r.concordId ?? r.nativeId)).size).toBe(crm.liveRecords().length)
      } finally {
        await c.client.stop()
        await server.close()
      }
    }),
    propConfig(12),
  )
}, 120_000)
