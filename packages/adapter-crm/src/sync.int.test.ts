import { asOpId, asPairId, asReplicaId, openMemoryStore, SyncPair, type PushOp, type RemoteUpsert } from '@concord/engine'
import { MemoryRemote, MemoryReplicaAdapter, pullAll } from '@concord/engine/testing'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { crmSampleFields, startCrmWorld, type CrmWorld } from '../test/harness.js'

let w: CrmWorld
beforeEach(async () => {
  w = await startCrmWorld({ kinds: ['contact', 'appointment', 'task', 'email'] })
})
afterEach(async () => {
  await w.close()
})

async function syncUntilQuiet(pair: SyncPair, maxCycles = 12): Promise<number> {
  for (let cycle = 1; cycle <= maxCycles; cycle++) {
    const r = await pair.runCycle()
    const busy = r.logged.crm + r.logged.mailbox + r.merged + r.pushed.crm + r.pushed.mailbox + r.rejected.crm + r.rejected.mailbox
    if (busy === 0 && r.throttledMs === undefined && !r.mergeDeferred) return cycle
  }
  throw new Error(`not quiet after ${maxCycles} cycles`)
}

test('end to end: SyncPair(CrmAdapter ⇄ memory mailbox) converges, and a replayed cycle makes no duplicates', async () => {
  const { store } = await openMemoryStore()
  const mailbox = new MemoryRemote('mbx')
  const pair = new SyncPair({ pairId: asPairId('crm~alice'), store, crm: w.adapter, mailbox: new MemoryReplicaAdapter(asReplicaId('mbx-alice'), mailbox), pageLimit: 5 })

  // CRM side: 6 contacts, 2 appointments, 2 tasks, an e-mail. Mailbox side: 3 contacts, a task, an e-mail.
  for (let i = 0; i < 6; i++) await w.createRemote('contact', crmSampleFields('contact', i))
  for (let i = 0; i < 2; i++) await w.createRemote('appointment', crmSampleFields('appointment', i))
  for (let i = 0; i < 2; i++) await w.createRemote('task', crmSampleFields('task', i))
  await w.createRemote('email', crmSampleFields('email', 1))
  mailbox.create('email', { ...crmSampleFields('email', 2), from: { address: 'alice@contoso.test' }, direction: 'outgoing' })
  for (let i = 10; i < 13; i++) mailbox.create('contact', crmSampleFields('contact', i))
  mailbox.create('task', { subject: 'From Outlook', due: { dateTime: '2026-06-01T09:00:00', timeZone: 'Europe/Berlin' }, status: 'notStarted', priority: 'normal' })

  await syncUntilQuiet(pair)
  const rows = () => w.emu.admin.stats().rows
  expect(rows()).toMatchObject({ contacts: 9, appointments: 2, tasks: 3, emails: 2 })
  expect(mailbox.liveRecords()).toHaveLength(16)
  // Every CRM row Concord created carries its Concord id; the mailbox task's Berlin 09:00 is 07:00 UTC in CRM.
  const crm = (await pullAll(w.adapter, null)).changes.filter((c): c is RemoteUpsert => c.type === 'upsert')
  const outlookTask = crm.find((c) => c.fields.subject === 'From Outlook')!
  expect(outlookTask.concordId).toBeTruthy()
  expect(outlookTask.fields.due).toEqual({ dateTime: '2026-06-01T07:00:00', timeZone: 'UTC' })

  // Edits on both sides flow across.
  const ann = crm.find((c) => c.kind === 'contact' && c.fields.givenName === 'Given1')!
  await w.updateRemote(ann.nativeId, 'contact', { jobTitle: 'Head of Sales' })
  const mbxContact = mailbox.liveRecords().find((r) => r.fields.givenName === 'Given11')!
  mailbox.update(mbxContact.nativeId, { department: 'Purchasing' })
  await syncUntilQuiet(pair)
  expect(mailbox.liveRecords().find((r) => r.fields.givenName === 'Given1')?.fields.jobTitle).toBe('Head of Sales')
  const refreshed = (await pullAll(w.adapter, null)).changes.filter((c): c is RemoteUpsert => c.type === 'upsert')
  expect(refreshed.find((c) => c.fields.givenName === 'Given11')?.fields.department).toBe('Purchasing')

  // Replayed cycle: the CRM cursor is lost (full listing again) and every create is pushed again.
  await store.resetCursor(w.adapter.replicaId)
  await syncUntilQuiet(pair)
  const replay: PushOp[] = refreshed.filter((c) => c.concordId).map((c, i) => ({ opId: asOpId(`replay-${i}`), type: 'create', concordId: c.concordId!, kind: c.kind, fields: c.fields }))
  const res = await w.adapter.push(replay)
  expect(res.rejected).toEqual([])
  expect(res.applied.map((a) => a.nativeId)).toEqual(refreshed.filter((c) => c.concordId).map((c) => c.nativeId))
  expect(rows()).toMatchObject({ contacts: 9, appointments: 2, tasks: 3, emails: 2 })
  expect(mailbox.liveRecords()).toHaveLength(16)
  // And a further cycle is quiet at once.
  expect(await syncUntilQuiet(pair)).toBe(1)
})
