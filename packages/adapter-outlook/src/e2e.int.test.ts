import { DEFAULT_SYNC_FILTERS, type NativeId } from '@concord/engine'
import { sampleFields } from '@concord/engine/testing'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { OutlookProtocolError } from './errors.js'
import { type TestClient, type TestServer, RECONNECT_TIMER, SYNC_TIMER, convergence, makeClient, startServer } from './test/fixtures.js'

let server: TestServer
const clients: TestClient[] = []

beforeEach(async () => {
  server = await startServer()
})
afterEach(async () => {
  for (const c of clients.splice(0)) await c.client.stop()
  await server.close()
})

async function client(token: string, clientId: string, extra: Parameters<typeof makeClient>[3] = {}): Promise<TestClient> {
  const c = await makeClient(server.url, token, clientId, extra)
  clients.push(c)
  return c
}

async function expectConverged(userId: string, c: TestClient, clientId = 'alice-laptop'): Promise<void> {
  expect(await convergence(server, userId, clientId, c.replica)).toEqual([])
}

describe('client sync over a real WebSocket', () => {
  test('a CRM edit reaches the designated client; a tracked client edit reaches the CRM', async () => {
    const alice = await client('tok-alice', 'alice-laptop')
    const welcome = await alice.client.start()
    expect(welcome).toMatchObject({ userId: 'alice', designated: true, fencingToken: 1, intervalMinutes: 15, minIntervalMinutes: 5 })
    const crm = server.crm.remoteFor('alice')
    const contactId = crm.create('contact', sampleFields('contact', 1), undefined, { ownerId: 'alice' })
    const summary = await alice.client.syncNow()
    expect(summary.pushed.mailbox).toBe(1)
    const [local] = await alice.replica.listItems('contact')
    expect(local?.fields).toEqual(sampleFields('contact', 1))

    crm.update(contactId, { jobTitle: 'Head of Sales' })
    await alice.client.syncNow()
    expect((await alice.replica.getItem(local!.nativeId))?.fields.jobTitle).toBe('Head of Sales')

    const task = await alice.replica.createItem('task', sampleFields('task', 2), { tracked: true })
    await alice.replica.createItem('task', sampleFields('task', 3)) // untracked: stays in Outlook
    await alice.client.syncNow()
    const tasks = crm.liveRecords().filter((r) => r.kind === 'task')
    expect(tasks).toHaveLength(1)
    expect(tasks[0]!.fields.subject).toBe(sampleFields('task', 2).subject)
    await alice.replica.updateItem(task.nativeId, { subject: 'Renamed in Outlook' })
    await alice.client.syncNow()
    expect(crm.liveRecords().find((r) => r.kind === 'task')?.fields.subject).toBe('Renamed in Outlook')
    await expectConverged('alice', alice)
  })

  test('offline edits queue locally and sync on reconnect, converging', async () => {
    const alice = await client('tok-alice', 'alice-laptop')
    await alice.client.start()
    const crm = server.crm.remoteFor('alice')
    crm.create('contact', sampleFields('contact', 1), undefined, { ownerId: 'alice' })
    await alice.client.syncNow()

    const disconnected = alice.next('disconnected')
    server.dropAll()
    await disconnected
    expect(alice.client.state).toBe('connecting')
    await expect(alice.client.syncNow()).rejects.toMatchObject({ code: 'unavailable' })
    // offline: edits go to the local log only
    const [contact] = await alice.replica.listItems('contact')
    await alice.replica.updateItem(contact!.nativeId, { jobTitle: 'Edited offline' })
    await alice.replica.createItem('task', sampleFields('task', 5), { tracked: true })
    crm.create('contact', sampleFields('contact', 6), undefined, { ownerId: 'alice' }) // CRM moves on meanwhile
    expect(await alice.replica.pendingEdits()).toBe(2)

    const synced = alice.next('synced')
    expect(alice.timers.fire(RECONNECT_TIMER)).toBe(1)
    await alice.client.whenConnected()
    await synced // the reconnect sends the offline queue at once
    await alice.client.syncNow()
    expect(await alice.replica.pendingEdits()).toBe(0)
    expect(crm.liveRecords().find((r) => r.kind === 'contact' && r.fields.givenName === 'Given1')?.fields.jobTitle).toBe('Edited offline')
    expect(crm.liveRecords().filter((r) => r.kind === 'task')).toHaveLength(1)
    expect(await alice.replica.listItems('contact')).toHaveLength(2)
    await expectConverged('alice', alice)
  })

  test('a socket dropped in the middle of a push: after reconnecting, nothing is lost or duplicated', async () => {
    const alice = await client('tok-alice', 'alice-laptop')
    await alice.client.start()
    const crm = server.crm.remoteFor('alice')
    for (let i = 0; i < 5; i++) crm.create('contact', sampleFields('contact', i), undefined, { ownerId: 'alice' })
    const push = alice.replica.push.bind(alice.replica)
    let drops = 1
    alice.replica.push = async (ops) => {
      const result = await push(ops) // applied locally…
      if (drops-- > 0) server.dropAll() // …but the answer never reaches the server
      return result
    }
    await expect(alice.client.syncNow()).rejects.toBeInstanceOf(OutlookProtocolError)
    expect(await alice.replica.listItems('contact')).toHaveLength(5)

    alice.timers.fire(RECONNECT_TIMER)
    await alice.client.whenConnected()
    await alice.client.syncNow()
    const quiet = await alice.client.syncNow()
    expect(quiet.pushed).toEqual({ crm: 0, mailbox: 0 })
    const contacts = await alice.replica.listItems('contact')
    expect(contacts).toHaveLength(5)
    expect(new Set(contacts.map((c) => c.concordId)).size).toBe(5)
    expect(crm.liveRecords()).toHaveLength(5)
    expect(crm.pushWrites).toBe(0)
    await expectConverged('alice', alice)
  })

  test('a socket dropped in the middle of a pull: the offline queue survives and syncs once', async () => {
    const alice = await client('tok-alice', 'alice-laptop')
    await alice.client.start()
    await alice.client.syncNow()
    for (let i = 0; i < 3; i++) await alice.replica.createItem('task', sampleFields('task', i), { tracked: true })
    const pull = alice.replica.pull.bind(alice.replica)
    let drops = 1
    alice.replica.pull = async (cursor, options) => {
      const page = await pull(cursor, options)
      if (drops-- > 0) server.dropAll()
      return page
    }
    await expect(alice.client.syncNow()).rejects.toBeInstanceOf(OutlookProtocolError)
    expect(server.crm.remoteFor('alice').liveRecords()).toHaveLength(0)
    const synced = alice.next('synced')
    alice.timers.fire(RECONNECT_TIMER)
    await synced
    await alice.client.syncNow()
    expect(server.crm.remoteFor('alice').liveRecords().filter((r) => r.kind === 'task')).toHaveLength(3)
    await expectConverged('alice', alice)
  })

  test('two clients of one user: only the designated one is synced; the other still tracks e-mail', async () => {
    const laptop = await client('tok-alice', 'alice-laptop')
    const desktop = await client('tok-alice', 'alice-desktop')
    expect((await laptop.client.start()).designated).toBe(true)
    expect(await desktop.client.start()).toMatchObject({ designated: false, fencingToken: null })
    let desktopServed = 0
    for (const method of ['pull', 'push'] as const) {
      const original = desktop.replica[method].bind(desktop.replica) as (...args: unknown[]) => Promise<never>
      ;(desktop.replica as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        desktopServed++
        return original(...args)
      }
    }
    server.crm.remoteFor('alice').create('contact', sampleFields('contact', 1), undefined, { ownerId: 'alice' })
    await desktop.replica.createItem('task', sampleFields('task', 1), { tracked: true })
    await expect(desktop.client.syncNow()).rejects.toMatchObject({ code: 'not_designated' })
    await laptop.client.syncNow()
    expect(await laptop.replica.listItems()).toHaveLength(1)
    expect(await desktop.replica.listItems('contact')).toHaveLength(0)
    expect(desktopServed).toBe(0)
    expect(desktop.timers.delays().filter(SYNC_TIMER)).toEqual([])
    expect(laptop.timers.delays().filter(SYNC_TIMER)).toEqual([15 * 60_000])
    // the non-designated client still tracks e-mail
    const email = sampleFields('email', 1)
    const tracked = await desktop.client.trackRecord({ kind: 'email', fields: email })
    expect(server.crm.remoteFor('alice').get(tracked.crmId as NativeId)?.fields.subject).toBe(email.subject)
    expect(server.host.sessionsOf('alice').map((s) => [s.clientId, s.designated]).sort()).toEqual([
      ['alice-desktop', false],
      ['alice-laptop', true],
    ])
  })

  test('switching the designated client fences the old one off', async () => {
    const laptop = await client('tok-alice', 'alice-laptop')
    const desktop = await client('tok-alice', 'alice-desktop')
    await laptop.client.start()
    await desktop.client.start()
    server.crm.remoteFor('alice').create('contact', sampleFields('contact', 1), undefined, { ownerId: 'alice' })
    await laptop.client.syncNow()
    const lostDesignation = laptop.next('designation')
    const token = await desktop.client.designate()
    expect(token).toBe(2)
    expect(await lostDesignation).toMatchObject({ designated: false, fencingToken: null })
    expect(laptop.timers.delays().filter(SYNC_TIMER)).toEqual([])
    await expect(laptop.client.syncNow()).rejects.toMatchObject({ code: 'not_designated' })
    // the server refuses to pull from the old client even through its own replica handle
    expect(server.host.designatedClient('alice')?.clientId).toBe('alice-desktop')
    const summary = await desktop.client.syncNow()
    expect(summary.pushed.mailbox).toBe(1)
    expect(await desktop.replica.listItems('contact')).toHaveLength(1)
    // the old client re-designating itself is explicit again, and gets a newer token
    expect(await laptop.client.designate()).toBe(3)
    await expect(desktop.client.syncNow()).rejects.toMatchObject({ code: 'not_designated' })
  })

  test('designation switched while the old client is mid-sync: the old sync is fenced off, the two never sync at once', async () => {
    const laptop = await client('tok-alice', 'alice-laptop')
    const desktop = await client('tok-alice', 'alice-desktop')
    await laptop.client.start()
    await desktop.client.start()
    const crm = server.crm.remoteFor('alice')
    crm.create('contact', sampleFields('contact', 1), undefined, { ownerId: 'alice' })
    crm.create('contact', sampleFields('contact', 2), undefined, { ownerId: 'alice' })
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    let entered!: () => void
    const inPush = new Promise<void>((resolve) => (entered = resolve))
    const push = laptop.replica.push.bind(laptop.replica)
    laptop.replica.push = async (ops) => {
      entered()
      await gate
      return push(ops)
    }
    const oldSync = laptop.client.syncNow().catch((e: unknown) => e)
    await inPush
    await desktop.client.designate()
    const newSync = desktop.client.syncNow() // waits for the user's sync lock
    release()
    await oldSync
    const newResult = await newSync
    expect(newResult.cycles).toBeGreaterThan(0)
    expect(await desktop.replica.listItems('contact')).toHaveLength(2)
    // whatever the old client got before the switch, it is no longer pulled from or pushed to
    const laptopCount = (await laptop.replica.listItems()).length
    crm.create('contact', sampleFields('contact', 3), undefined, { ownerId: 'alice' })
    await desktop.client.syncNow()
    expect(await laptop.replica.listItems()).toHaveLength(laptopCount)
    expect(await desktop.replica.listItems('contact')).toHaveLength(3)
    expect(await convergence(server, 'alice', 'alice-desktop', desktop.replica)).toEqual([])
  })

  test('a client cannot read another user’s items', async () => {
    const alice = await client('tok-alice', 'alice-laptop')
    const bob = await client('tok-bob', 'bob-laptop')
    await alice.client.start()
    await bob.client.start()
    const bobsContact = server.crm.remoteFor('bob').create('contact', sampleFields('contact', 9), undefined, { ownerId: 'bob' })
    const alicesContact = server.crm.remoteFor('alice').create('contact', sampleFields('contact', 1), undefined, { ownerId: 'alice' })
    await expect(alice.client.lookupIds('contact', 'bob')).rejects.toMatchObject({ code: 'forbidden' })
    await expect(alice.client.lookupDetails([bobsContact])).rejects.toMatchObject({ code: 'forbidden' })
    await expect(alice.client.setRegarding(bobsContact, { table: 'account', id: 'a1' })).rejects.toMatchObject({ code: 'forbidden' })
    await expect(alice.client.stopTracking(bobsContact)).rejects.toMatchObject({ code: 'forbidden' })
    expect(await alice.client.lookupIds('contact')).toEqual([alicesContact])
    expect(await alice.client.lookupIds('contact', 'alice')).toEqual([alicesContact])
    await alice.client.syncNow()
    await bob.client.syncNow()
    expect((await alice.replica.listItems()).map((i) => i.fields.givenName)).toEqual(['Given1'])
    expect((await bob.replica.listItems()).map((i) => i.fields.givenName)).toEqual(['Given9'])
    expect(server.crm.remoteFor('bob').get(bobsContact)).toBeDefined()
  })
})

test('the user’s sync filters apply on the server: a client only receives the records its user’s filters select', async () => {
  const filtered = await startServer({}, { context: (userId) => ({ user: { id: userId }, filters: DEFAULT_SYNC_FILTERS }) })
  const alice = await makeClient(filtered.url, 'tok-alice', 'alice-laptop')
  try {
    await alice.client.start()
    const crm = filtered.crm.remoteFor('alice')
    crm.create('contact', sampleFields('contact', 1), undefined, { ownerId: 'alice' })
    crm.create('contact', sampleFields('contact', 2), undefined, { ownerId: 'carol' }) // in the CRM scope, not in "My Contacts"
    await alice.client.syncNow()
    expect((await alice.replica.listItems()).map((i) => i.fields.givenName)).toEqual(['Given1'])
  } finally {
    await alice.client.stop()
    await filtered.close()
  }
})
