import { MailServerAdapter, MailServerError } from '@concord/adapter-mailserver'
import { type Cursor, CursorExpiredError, type Fields, type NativeId, type PullPage, asCursor, asNativeId, asVersion } from '@concord/engine'
import { expect, test } from 'vitest'
import { AutoTrackingSource } from './tracking-source.js'

/** A POP3 replica whose pages are given by the test (nothing is contacted). */
class ScriptedAdapter extends MailServerAdapter {
  constructor(private readonly page: (cursor: Cursor | null) => PullPage) {
    super({ replicaId: 'mbx:test', incoming: { protocol: 'pop3', host: '127.0.0.1', port: 1, user: 'u', password: 'p' } })
  }
  override async pull(cursor: Cursor | null): Promise<PullPage> {
    return this.page(cursor)
  }
}

const mail = (id: string, fields: Fields) => ({ type: 'upsert' as const, nativeId: asNativeId(id), kind: 'email' as const, version: asVersion(`v-${id}`), fields, meta: { tracked: false } })

test('incoming mail with a sender is decided per page; outgoing and sender-less mail is not asked about', async () => {
  const inner = new ScriptedAdapter(() => ({
    changes: [
      mail('mid:<a@x>', { subject: 'Track me', from: { address: 'carol@fabrikam.test' }, direction: 'incoming' }),
      mail('mid:<b@x>', { subject: 'Sent copy', from: { address: 'ina@contoso.test' }, direction: 'outgoing' }),
      mail('sha:c', { direction: 'incoming' }),
      mail('mid:<d@x>', { subject: 'Not this one', from: { address: 'friend@example.test' }, direction: 'incoming' }),
      { type: 'delete', nativeId: asNativeId('mid:<e@x>'), provenance: 'user-deleted' },
    ],
    nextCursor: asCursor('c1'),
    hasMore: false,
  }))
  const asked: Fields[][] = []
  const marked: NativeId[] = []
  const source = new AutoTrackingSource(
    inner,
    async (page) => {
      asked.push([...page])
      return page.map((f) => f.subject === 'Track me')
    },
    async (ids) => {
      marked.push(...ids)
      return new Map([[asNativeId('mid:<a@x>'), { version: asVersion('v-a-tracked'), categories: ['Tracked to Dynamics 365'] }]])
    },
  )
  const page = await source.pull(null, { limit: 10 })
  expect(asked).toHaveLength(1)
  expect(asked[0]!.map((f) => f.subject)).toEqual(['Track me', 'Not this one'])
  expect(page.changes.map((c) => (c.type === 'upsert' ? [c.nativeId, c.meta?.tracked] : [c.nativeId, c.type]))).toEqual([
    ['mid:<a@x>', true],
    ['mid:<b@x>', false],
    ['sha:c', false],
    ['mid:<d@x>', false],
    ['mid:<e@x>', 'delete'],
  ])
  expect(marked).toEqual(['mid:<a@x>'])
  // The tracked message carries the keyword's new version and categories (the next round has nothing to report).
  expect(page.changes[0]).toMatchObject({ version: 'v-a-tracked', fields: { subject: 'Track me', categories: ['Tracked to Dynamics 365'] } })
  expect(page.nextCursor).toBe('c1')
})

test('a cursor of another profile becomes CursorExpired (the engine lists again); other errors pass through', async () => {
  const source = new AutoTrackingSource(
    new ScriptedAdapter((cursor) => {
      if (cursor === 'exchange-cursor') throw new MailServerError('invalid-cursor', 'The cursor belongs to an imap profile, this one is pop3')
      throw new MailServerError('connection-lost', 'gone')
    }),
    async () => [],
  )
  await expect(source.pull(asCursor('exchange-cursor'), { limit: 10 })).rejects.toBeInstanceOf(CursorExpiredError)
  await expect(source.pull(null, { limit: 10 })).rejects.toMatchObject({ reason: 'connection-lost' })
})
