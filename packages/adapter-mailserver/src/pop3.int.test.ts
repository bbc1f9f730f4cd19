import { asConcordId, asOpId, type RemoteUpsert } from '@concord/engine'
import { pullAll } from '@concord/engine/testing'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { MailServerError } from './errors.js'
import type { MessageProblem } from './adapter.js'
import { rawMail, startMailEnv, type MailEnv } from './test/env.js'

let env: MailEnv
beforeAll(async () => {
  env = await startMailEnv()
})
afterAll(async () => {
  await env?.close()
})

describe('POP3 incoming against Dovecot (UIDL)', () => {
  test('initial sync, new mail, delete; messages stay on the server by default', async () => {
    const box = await env.mailbox()
    const c = await env.client(box)
    await c.append('INBOX', rawMail({ messageId: '<p1@fabrikam.test>', subject: 'Pop 1' }))
    await c.append('INBOX', rawMail({ messageId: '<p2@fabrikam.test>', subject: 'RE: Pop 1', inReplyTo: '<p1@fabrikam.test>', references: '<p1@fabrikam.test>' }))
    await c.append('INBOX', Buffer.from('\x00garbage without headers\r\n'))
    const problems: MessageProblem[] = []
    const adapter = env.adapter(env.pop3Options(box), { onMessageProblem: (p) => problems.push(p) })
    const first = await pullAll(adapter, null, 2)
    expect(first.pages[0]!.fullListing).toBe(true)
    const ups = first.changes.filter((ch): ch is RemoteUpsert => ch.type === 'upsert')
    expect(ups).toHaveLength(3)
    const reply = ups.find((u) => u.nativeId === 'mid:<p2@fabrikam.test>')!
    expect(reply.fields).toMatchObject({ subject: 'RE: Pop 1', inReplyTo: '<p1@fabrikam.test>', conversationId: '<p1@fabrikam.test>', direction: 'incoming' })
    expect(reply.fields.categories).toBeUndefined() // POP3 has no categories: unknown, not empty
    expect(problems).toHaveLength(1)
    expect(problems[0]!.error.reason).toBe('malformed-message')

    expect((await pullAll(adapter, first.cursor)).changes).toEqual([])
    await c.append('INBOX', rawMail({ messageId: '<p3@fabrikam.test>', subject: 'Pop 3' }))
    const second = await pullAll(adapter, first.cursor)
    expect(second.changes.map((ch) => ch.nativeId)).toEqual(['mid:<p3@fabrikam.test>'])

    await c.mailboxOpen('INBOX')
    const [uid] = (await c.search({ header: { 'message-id': '<p1@fabrikam.test>' } }, { uid: true })) || []
    await c.messageDelete(String(uid), { uid: true })
    const third = await pullAll(adapter, second.cursor)
    expect(third.changes).toEqual([{ type: 'delete', nativeId: 'mid:<p1@fabrikam.test>', provenance: 'user-deleted' }])
    expect(await adapter.confirmMissing(['mid:<p1@fabrikam.test>' as never, 'mid:<p2@fabrikam.test>' as never])).toEqual(['mid:<p1@fabrikam.test>'])

    // left on the server: 3 messages remain (p2, garbage, p3)
    expect((await c.mailboxOpen('INBOX')).exists).toBe(3)
  })

  test('leaveOnServer=false removes a message only after a completed round that contained it came back', async () => {
    const box = await env.mailbox()
    const c = await env.client(box)
    await c.append('INBOX', rawMail({ messageId: '<d1@fabrikam.test>', subject: 'Del 1' }))
    await c.append('INBOX', rawMail({ messageId: '<d2@fabrikam.test>', subject: 'Del 2' }))
    const adapter = env.adapter(env.pop3Options(box, { leaveOnServer: false }))
    const first = await pullAll(adapter, null)
    expect(first.changes).toHaveLength(2)
    expect((await c.mailboxOpen('INBOX')).exists).toBe(2) // not yet acknowledged
    const second = await pullAll(adapter, first.cursor)
    expect(second.changes).toEqual([]) // removed by us: not reported as a user delete
    await c.noop()
    expect((await c.mailboxOpen('INBOX')).exists).toBe(0)
  })

  test('only e-mail, and no editing over POP3', async () => {
    const box = await env.mailbox()
    const adapter = env.adapter(env.pop3Options(box))
    const res = await adapter.push([
      { opId: asOpId('t1'), type: 'create', concordId: asConcordId('t'), kind: 'task', fields: { subject: 'x' } },
      { opId: asOpId('t2'), type: 'update', concordId: asConcordId('e'), kind: 'email', nativeId: 'mid:<x@y>' as never, fields: { subject: 'new' } },
    ])
    expect(res.rejected.map((r) => (r.error as MailServerError).reason)).toEqual(['unsupported-kind', 'unsupported-operation'])
  })
})
