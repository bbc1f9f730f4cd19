import 'fake-indexeddb/auto'
import { BrowserLevel } from 'browser-level'
import { describe, expect, test } from 'vitest'
import { asReplicaId } from '../ids.js'
import { sampleFields } from '../testing/sample-fields.js'
import { checkConvergence, createTwoReplicaWorld, syncUntilQuiet } from '../testing/world.js'
import { ReplicaStore, type StoreDatabase } from './replica-store.js'

// The Outlook add-in keeps its replica in IndexedDB through browser-level; the store has no
// Node-only code, so the same engine runs there. fake-indexeddb stands in for the browser here.
describe('ReplicaStore on browser-level (IndexedDB)', () => {
  test('syncs, closes and reopens with its state intact', async () => {
    const open = async () => {
      const db = new BrowserLevel<string, string>('concord-test', { keyEncoding: 'utf8', valueEncoding: 'utf8' }) as unknown as StoreDatabase
      await db.open()
      return ReplicaStore.open(db)
    }
    const store = await open()
    const w = createTwoReplicaWorld({ store })
    w.crm.create('contact', sampleFields('contact', 1))
    w.mailbox.create('task', sampleFields('task', 1))
    await syncUntilQuiet(w)
    expect((await checkConvergence(w)).converged).toBe(true)
    const cursor = await store.getCursor(asReplicaId('crm'))
    await store.close()

    const reopened = await open()
    expect(await reopened.getCursor(asReplicaId('crm'))).toBe(cursor)
    const again = createTwoReplicaWorld({ store: reopened, remotes: { crm: w.crm, mailbox: w.mailbox } })
    const report = await again.pair.runCycle()
    expect(report.pushed).toEqual({ crm: 0, mailbox: 0 })
    await reopened.close()
  })
})
