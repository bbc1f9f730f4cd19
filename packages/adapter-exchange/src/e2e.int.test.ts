/** End to end: SyncPair with a memory CRM and the Exchange adapter as the mailbox, both ways, until quiet. */
import { SyncPair, asPairId, asReplicaId, openMemoryStore } from '@concord/engine'
import type { CycleReport, Fields, ItemKind } from '@concord/engine'
import { MemoryRemote, MemoryReplicaAdapter, pullAll } from '@concord/engine/testing'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { exchangeSampleFields, startEmulatorEnv, UPN, type EmulatorEnv } from './test/emulator-env.js'

let env: EmulatorEnv
beforeAll(async () => {
  env = await startEmulatorEnv()
})
afterAll(async () => {
  await env.close()
})

async function untilQuiet(pair: SyncPair, maxCycles = 20): Promise<CycleReport[]> {
  const reports: CycleReport[] = []
  for (let i = 0; i < maxCycles; i++) {
    const r = await pair.runCycle()
    reports.push(r)
    const busy = r.logged.crm + r.logged.mailbox + r.merged + r.pushed.crm + r.pushed.mailbox
    if (busy === 0 && r.throttledMs === undefined && !r.mergeDeferred && r.rejected.crm + r.rejected.mailbox === 0) return reports
  }
  throw new Error(`not quiet after ${maxCycles} cycles`)
}

const KINDS: ItemKind[] = ['contact', 'task', 'appointment', 'email']
const EM = { email: 'message', appointment: 'event', contact: 'contact', task: 'task' } as const

function mailboxCount(kind: ItemKind): number {
  return env.em.control.count(UPN, EM[kind])
}

test('contacts, tasks, events and messages sync both ways until quiet, with no duplicates after a replayed cycle', async () => {
  const { store } = await openMemoryStore()
  const crmRemote = new MemoryRemote('crm')
  const crm = new MemoryReplicaAdapter(asReplicaId('crm'), crmRemote)
  const mailbox = env.adapter({ replicaId: 'alice' })
  const pair = new SyncPair({ pairId: asPairId('crm~alice'), store, crm, mailbox })

  // CRM side: one of each kind (the task is regarding a CRM contact).
  const crmIds = new Map<ItemKind, ReturnType<MemoryRemote['create']>>()
  for (const kind of KINDS) {
    const fields: Fields = kind === 'task' ? { ...exchangeSampleFields(kind, 1), regarding: { table: 'contacts', id: 'c-42', name: 'Ann Lee' } } : exchangeSampleFields(kind, 1)
    crmIds.set(kind, crmRemote.create(kind, fields))
  }
  // Mailbox side: one of each kind, made in Outlook.
  for (const kind of KINDS) await env.remote.create(kind, exchangeSampleFields(kind, 2))

  await untilQuiet(pair)
  for (const kind of KINDS) expect(mailboxCount(kind), `${kind} in the mailbox`).toBe(2)
  expect(crmRemote.liveRecords()).toHaveLength(8)
  expect(env.em.control.count(UPN, 'message', 'sentitems')).toBe(1) // the CRM's outgoing e-mail
  // Mailbox-made records arrived in the CRM with their fields.
  for (const kind of KINDS) {
    const fromOutlook = crmRemote.liveRecords().find((r) => r.kind === kind && r.fields['subject' in exchangeSampleFields(kind, 2) ? 'subject' : 'givenName'] === exchangeSampleFields(kind, 2)['subject' in exchangeSampleFields(kind, 2) ? 'subject' : 'givenName'])
    expect(fromOutlook, `${kind} from Outlook in the CRM`).toBeDefined()
    for (const [key, value] of Object.entries(exchangeSampleFields(kind, 2))) expect(fromOutlook!.fields[key], `${kind}.${key}`).toEqual(value)
  }

  // CRM-made records arrived with their fields and the Concord stamp.
  const round = await pullAll(mailbox, null)
  const stamped = round.changes.filter((c) => c.type === 'upsert' && c.concordId !== undefined)
  expect(stamped.length).toBeGreaterThanOrEqual(4)
  const task = round.changes.find((c) => c.type === 'upsert' && c.kind === 'task' && c.fields['subject'] === 'Follow up 1')
  expect(task?.type === 'upsert' && task.fields['regarding']).toEqual({ table: 'contacts', id: 'c-42', name: 'Ann Lee' })

  // Edits on both sides.
  crmRemote.update(crmIds.get('contact')!, { jobTitle: 'Head of Purchasing' })
  const mailboxTask = round.changes.find((c) => c.type === 'upsert' && c.kind === 'task' && c.fields['subject'] === 'Follow up 2')!
  await env.remote.update(mailboxTask.nativeId, 'task', { subject: 'Follow up 2 (edited in Outlook)' })
  await untilQuiet(pair)
  const contacts = env.em.control.count(UPN, 'contact')
  expect(contacts).toBe(2)
  const crmTask = crmRemote.liveRecords().find((r) => r.kind === 'task' && String(r.fields['subject']).startsWith('Follow up 2'))
  expect(crmTask?.fields['subject']).toBe('Follow up 2 (edited in Outlook)')
  const pulled = await pullAll(mailbox, null)
  const mbContact = pulled.changes.find((c) => c.type === 'upsert' && c.kind === 'contact' && c.fields['givenName'] === 'Given1')
  expect(mbContact?.type === 'upsert' && mbContact.fields['jobTitle']).toBe('Head of Purchasing')

  // A replayed cycle: the mailbox cursor is lost, so the next cycle re-lists everything.
  await store.resetCursor(mailbox.replicaId)
  await untilQuiet(pair)
  for (const kind of KINDS) expect(mailboxCount(kind), `${kind} after replay`).toBe(2)
  expect(crmRemote.liveRecords()).toHaveLength(8)
})

test('a 429 storm in the middle of syncing ends the cycle early (throttledMs) and loses nothing', async () => {
  env.em.control.reset()
  const { store } = await openMemoryStore()
  const crmRemote = new MemoryRemote('crm')
  const pair = new SyncPair({ pairId: asPairId('crm~alice'), store, crm: new MemoryReplicaAdapter(asReplicaId('crm'), crmRemote), mailbox: env.adapter({ replicaId: 'alice' }) })
  for (let n = 0; n < 5; n++) crmRemote.create('contact', exchangeSampleFields('contact', n))
  for (let n = 5; n < 8; n++) await env.remote.create('task', exchangeSampleFields('task', n))
  env.em.control.failNext({ status: 429, count: 3, retryAfterSeconds: 4 })
  const reports = await untilQuiet(pair, 30)
  expect(reports.some((r) => r.throttledMs === 4000)).toBe(true)
  expect(mailboxCount('contact')).toBe(5)
  expect(mailboxCount('task')).toBe(3)
  expect(crmRemote.liveRecords()).toHaveLength(8)
})
