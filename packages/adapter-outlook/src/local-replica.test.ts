import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CursorExpiredError, ItemKinds, type NativeId, asCursor, asOpId, asConcordId, ValidationError } from '@concord/engine'
import { runReplicaAdapterContract } from '@concord/engine/contract-suite'
import { pullAll, sampleFields } from '@concord/engine/testing'
import { expect, test } from 'vitest'
import type { OutlookLocalReplica } from './local-replica.js'
import { openClassicLocalReplica, openMemoryLocalReplica } from './open.js'

function harnessFor(replica: OutlookLocalReplica, teardown: () => Promise<void>) {
  return {
    adapter: replica,
    kinds: ItemKinds,
    sampleFields,
    remote: {
      create: async (kind: (typeof ItemKinds)[number], fields: Record<string, unknown>) => (await replica.createItem(kind, fields)).nativeId,
      update: async (nativeId: NativeId, _kind: unknown, patch: Record<string, unknown>) => void (await replica.updateItem(nativeId, patch)),
      remove: async (nativeId: NativeId) => replica.deleteItem(nativeId),
      expireCursors: () => replica.expireCursors(),
    },
    teardown,
  }
}

runReplicaAdapterContract('OutlookLocalReplica on memory-level', async () => {
  const replica = await openMemoryLocalReplica()
  return harnessFor(replica, () => replica.close())
})

runReplicaAdapterContract('OutlookLocalReplica on classic-level (tmp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'outlook-replica-'))
  const replica = await openClassicLocalReplica(dir)
  return harnessFor(replica, async () => {
    await replica.close()
    await rm(dir, { recursive: true, force: true })
  })
})

test('local edits form the offline queue until the server pulls past them', async () => {
  const replica = await openMemoryLocalReplica()
  const first = await pullAll(replica, null)
  await replica.createItem('task', sampleFields('task', 1), { tracked: true })
  const contact = await replica.createItem('contact', sampleFields('contact', 2))
  await replica.updateItem(contact.nativeId, { jobTitle: 'CEO' })
  expect(await replica.pendingEdits()).toBe(3)
  const second = await pullAll(replica, first.cursor)
  expect(second.changes.map((c) => c.nativeId).sort()).toEqual([contact.nativeId, 'ol-1'].sort())
  // the server confirms by pulling again from the cursor it stored
  await pullAll(replica, second.cursor)
  expect(await replica.pendingEdits()).toBe(0)
})

test('a classic-level replica keeps items, log and cursors across a reopen', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'outlook-replica-'))
  try {
    const replica = await openClassicLocalReplica(dir)
    const item = await replica.createItem('contact', sampleFields('contact', 1))
    const { cursor } = await pullAll(replica, null)
    await replica.close()
    const reopened = await openClassicLocalReplica(dir)
    expect((await reopened.getItem(item.nativeId))?.fields).toEqual(sampleFields('contact', 1))
    const edited = await reopened.updateItem(item.nativeId, { surname: 'Changed' })
    expect(edited.nativeId).toBe(item.nativeId)
    const next = await pullAll(reopened, cursor)
    expect(next.changes).toHaveLength(1)
    const created = await reopened.createItem('task', sampleFields('task', 1))
    expect(created.nativeId).not.toBe(item.nativeId)
    await reopened.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a cursor of another client database is expired, an unreadable one too', async () => {
  const a = await openMemoryLocalReplica()
  const b = await openMemoryLocalReplica()
  const { cursor } = await pullAll(a, null)
  await expect(b.pull(cursor, { limit: 10 })).rejects.toBeInstanceOf(CursorExpiredError)
  await expect(b.pull(asCursor('{"x":1}'), { limit: 10 })).rejects.toBeInstanceOf(CursorExpiredError)
  await expect(b.pull(asCursor('not json'), { limit: 10 })).rejects.toBeInstanceOf(CursorExpiredError)
})

test('invalid fields are refused: a local edit throws, a pushed op is rejected, nothing is written', async () => {
  const replica = await openMemoryLocalReplica()
  await expect(replica.createItem('contact', { givenName: 42 })).rejects.toBeInstanceOf(ValidationError)
  const result = await replica.push([{ opId: asOpId('op-1'), type: 'create', concordId: asConcordId('c-1'), kind: 'task', fields: { status: 'sleeping' } }])
  expect(result.applied).toEqual([])
  expect(result.rejected[0]?.error.code).toBe('Validation')
  expect(result.rejected[0]?.error.message).toContain('status')
  expect(await replica.listItems()).toEqual([])
  expect(replica.headSeq).toBe(0)
})

test('a scoped pull (kinds) lists only those kinds, full or incremental, never as empty pages', async () => {
  const replica = await openMemoryLocalReplica()
  const contacts: string[] = []
  for (let i = 0; i < 12; i++) {
    await replica.createItem('email', sampleFields('email', i))
    if (i % 4 === 0) contacts.push((await replica.createItem('contact', sampleFields('contact', i))).nativeId)
  }
  // Full listing, one item per page: only contacts, each page carries one.
  const pages: string[][] = []
  let cursor = null
  for (let more = true; more; ) {
    const page = await replica.pull(cursor, { limit: 1, kinds: ['contact'] })
    pages.push(page.changes.map((c) => c.nativeId))
    cursor = page.nextCursor
    more = page.hasMore
    expect(page.fullListing).toBe(true)
  }
  expect(pages.flat().sort()).toEqual([...contacts].sort())
  expect(pages.every((p) => p.length === 1)).toBe(true)
  // Incremental: an e-mail edit and a deleted e-mail are skipped, a contact edit is listed; the cursor moves past all of them.
  const [email] = await replica.listItems('email')
  await replica.updateItem(email!.nativeId, { subject: 'edited' })
  await replica.deleteItem(email!.nativeId)
  await replica.updateItem(contacts[1]!, { jobTitle: 'Buyer' })
  for (let i = 0; i < 5; i++) await replica.createItem('email', sampleFields('email', 20 + i))
  const page = await replica.pull(cursor, { limit: 1, kinds: ['contact'] })
  expect(page.changes.map((c) => c.nativeId)).toEqual([contacts[1]])
  expect(page.hasMore).toBe(true) // the e-mails written after it
  const rest = await replica.pull(page.nextCursor, { limit: 10, kinds: ['contact'] })
  expect(rest).toMatchObject({ changes: [], hasMore: false })
  // Unscoped, the same log still has every kind.
  const all = await pullAll(replica, null)
  expect(new Set(all.changes.map((c) => (c.type === 'upsert' ? c.kind : 'delete')))).toEqual(new Set(['email', 'contact']))
  await replica.close()
})
