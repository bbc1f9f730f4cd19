import type { SyncError} from '@concord/engine';
import { CursorExpiredError, asConcordId, asNativeId, asOpId, type RemoteChange, type RemoteUpsert } from '@concord/engine'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { MailServerError } from './errors.js'
import type { MessageProblem } from './adapter.js'
import { startDropProxy } from './test/drop-proxy.js'
import { bulkAppend, rawMail, startMailEnv, type MailEnv } from './test/env.js'
import { latestByNativeId, pullAll } from '@concord/engine/testing'

let env: MailEnv
beforeAll(async () => {
  env = await startMailEnv()
})
afterAll(async () => {
  await env?.close()
})

const upserts = (changes: readonly RemoteChange[]) => changes.filter((c): c is RemoteUpsert => c.type === 'upsert')

for (const useCondstore of [true, false]) {
  describe(`IMAP incoming against Dovecot (${useCondstore ? 'CONDSTORE/QRESYNC' : 'plain UID scans'})`, () => {
    test('the server offers CONDSTORE and the profile uses it only when asked', async () => {
      const box = await env.mailbox()
      const probe = await env.client(box)
      expect(probe.capabilities.has('CONDSTORE')).toBe(true)
      expect(probe.capabilities.has('QRESYNC')).toBe(true)
      const adapter = env.adapter(env.imapOptions(box, { useCondstore }))
      expect(await adapter.usesCondstore()).toBe(useCondstore)
    })

    test('initial sync, new mail, flags, move and delete', async () => {
      const box = await env.mailbox()
      const c = await env.client(box)
      await c.mailboxCreate('Archive')
      await c.append('INBOX', rawMail({ messageId: '<root@fabrikam.test>', subject: 'Offer' }))
      await c.append('INBOX', rawMail({ messageId: '<reply@fabrikam.test>', subject: 'RE: Offer', inReplyTo: '<root@fabrikam.test>', references: '<root@fabrikam.test>' }))
      await c.append('INBOX', rawMail({ messageId: '<third@fabrikam.test>', subject: 'Other' }))
      const adapter = env.adapter(env.imapOptions(box, { useCondstore, folders: ['INBOX', 'Archive'] }))

      // initial sync, in pages of 2
      const first = await pullAll(adapter, null, 2)
      expect(first.pages.length).toBeGreaterThanOrEqual(2)
      expect(first.pages[0]!.fullListing).toBe(true)
      const listed = upserts(first.changes)
      expect(listed.map((c) => c.nativeId).sort()).toEqual(['mid:<reply@fabrikam.test>', 'mid:<root@fabrikam.test>', 'mid:<third@fabrikam.test>'])
      const reply = listed.find((c) => c.nativeId === 'mid:<reply@fabrikam.test>')!
      expect(reply.kind).toBe('email')
      expect(reply.fields).toMatchObject({
        subject: 'RE: Offer',
        internetMessageId: '<reply@fabrikam.test>',
        inReplyTo: '<root@fabrikam.test>',
        conversationId: '<root@fabrikam.test>',
        from: { name: 'Carol Client', address: 'carol@fabrikam.test' },
        to: [{ name: 'Alice Adams', address: 'alice@contoso.test' }],
        direction: 'incoming',
        categories: [],
      })
      expect(reply.fields.body).toContain('Hello from the test.')

      // nothing changed: nothing reported
      const idle = await pullAll(adapter, first.cursor)
      expect(idle.changes).toEqual([])

      // new mail
      await c.append('INBOX', rawMail({ messageId: '<new@fabrikam.test>', subject: 'New' }))
      const second = await pullAll(adapter, idle.cursor)
      expect(second.changes.map((ch) => ch.nativeId)).toEqual(['mid:<new@fabrikam.test>'])
      expect(second.pages[0]!.fullListing).toBe(false)

      // flags: the tracking category (a keyword) and \Seen
      await c.mailboxOpen('INBOX')
      const [rootUid] = (await c.search({ header: { 'message-id': '<root@fabrikam.test>' } }, { uid: true })) || []
      await c.messageFlagsAdd(String(rootUid), ['Tracked+20to+20Dynamics+20365', '\\Seen'], { uid: true })
      const third = await pullAll(adapter, second.cursor)
      expect(third.changes).toHaveLength(1)
      const flagged = third.changes[0] as RemoteUpsert
      expect(flagged.nativeId).toBe('mid:<root@fabrikam.test>')
      expect(flagged.fields).toEqual({ categories: ['Tracked to Dynamics 365'] })
      expect(flagged.meta?.tracked).toBe(true)
      const rootBefore = listed.find((l) => l.nativeId === 'mid:<root@fabrikam.test>')!
      expect(flagged.version).not.toBe(rootBefore.version)

      // move INBOX → Archive: the same e-mail, no delete
      await c.mailboxOpen('INBOX')
      const [thirdUid] = (await c.search({ header: { 'message-id': '<third@fabrikam.test>' } }, { uid: true })) || []
      await c.messageMove(String(thirdUid), 'Archive', { uid: true })
      const fourth = await pullAll(adapter, third.cursor)
      expect(fourth.changes.map((ch) => [ch.type, ch.nativeId])).toEqual([['upsert', 'mid:<third@fabrikam.test>']])
      expect((fourth.changes[0] as RemoteUpsert).fields.subject).toBe('Other')

      // delete
      await c.mailboxOpen('INBOX')
      const [newUid] = (await c.search({ header: { 'message-id': '<new@fabrikam.test>' } }, { uid: true })) || []
      await c.messageDelete(String(newUid), { uid: true })
      const fifth = await pullAll(adapter, fourth.cursor)
      expect(fifth.changes).toEqual([{ type: 'delete', nativeId: 'mid:<new@fabrikam.test>', provenance: 'user-deleted' }])
      expect(await adapter.confirmMissing([asNativeId('mid:<new@fabrikam.test>'), asNativeId('mid:<root@fabrikam.test>')])).toEqual(['mid:<new@fabrikam.test>'])

      // a replayed cursor diffs against the same base
      const replay = await pullAll(adapter, fourth.cursor)
      expect(replay.changes).toEqual(fifth.changes)
    })

    test('a UIDVALIDITY reset raises CursorExpiredError and the resync brings the same ids (no duplicates)', async () => {
      const box = await env.mailbox()
      const c = await env.client(box)
      await c.mailboxCreate('Work')
      for (let i = 0; i < 4; i++) await c.append('Work', rawMail({ messageId: `<w${i}@fabrikam.test>`, subject: `Work ${i}` }))
      const adapter = env.adapter(env.imapOptions(box, { useCondstore, folders: ['Work'] }))
      const first = await pullAll(adapter, null)
      const before = upserts(first.changes).map((u) => u.nativeId).sort()
      const uvBefore = (await c.mailboxOpen('Work')).uidValidity

      // the folder is deleted and re-created with the same mail (a restore): a new UIDVALIDITY
      await c.mailboxCreate('Hold')
      await c.messageCopy('1:*', 'Hold')
      await c.mailboxOpen('INBOX')
      await c.mailboxDelete('Work')
      await c.mailboxCreate('Work')
      await c.mailboxOpen('Hold')
      await c.messageCopy('1:*', 'Work')
      const uvAfter = (await c.mailboxOpen('Work')).uidValidity
      expect(uvAfter).not.toBe(uvBefore)

      await expect(pullAll(adapter, first.cursor)).rejects.toBeInstanceOf(CursorExpiredError)
      const again = await pullAll(adapter, null)
      expect(again.pages[0]!.fullListing).toBe(true)
      expect(upserts(again.changes).map((u) => u.nativeId).sort()).toEqual(before)
      expect(again.changes.some((ch) => ch.type === 'delete')).toBe(false)
    })

    test('a server dropping the connection mid-fetch: a retryable error, then the same cursor delivers everything', async () => {
      const box = await env.mailbox()
      const c = await env.client(box)
      const body = 'x'.repeat(4000)
      for (let i = 0; i < 20; i++) await c.append('INBOX', rawMail({ messageId: `<drop${i}@fabrikam.test>`, subject: `Drop ${i}`, body }))
      const proxy = await startDropProxy(env.dovecot.imapPort, 40_000)
      try {
        const options = env.imapOptions(box, { useCondstore })
        const adapter = env.adapter({ ...options, incoming: { ...(options.incoming as object), port: proxy.port } as typeof options.incoming })
        const failure = await adapter.pull(null, { limit: 50 }).catch((e: unknown) => e)
        expect(proxy.cuts).toBe(1)
        expect(failure).toBeInstanceOf(MailServerError)
        expect((failure as MailServerError).reason).toBe('connection-lost')
        expect((failure as SyncError).retryable).toBe(true)
        const retry = await pullAll(adapter, null, 50)
        expect(new Set(upserts(retry.changes).map((u) => u.nativeId)).size).toBe(20)
      } finally {
        await proxy.close()
      }
    })
  })
}

describe('IMAP incoming: volume and bad input', () => {
  test('a 1,000-message mailbox is listed completely, in pages, without duplicates', async () => {
    const box = await env.mailbox()
    const c = await env.client(box)
    await bulkAppend(env.dovecot.host, env.dovecot.imapPort, box, 'INBOX', Array.from({ length: 1000 }, (_, i) => rawMail({ messageId: `<bulk${i}@fabrikam.test>`, subject: `Bulk ${i}` })))
    const adapter = env.adapter(env.imapOptions(box))
    const { changes, pages, cursor } = await pullAll(adapter, null, 250)
    expect(pages).toHaveLength(4)
    const ids = upserts(changes).map((u) => u.nativeId)
    expect(ids).toHaveLength(1000)
    expect(new Set(ids).size).toBe(1000)
    await c.append('INBOX', rawMail({ messageId: '<bulk-late@fabrikam.test>', subject: 'Late' }))
    const next = await pullAll(adapter, cursor, 250)
    expect(next.changes.map((ch) => ch.nativeId)).toEqual(['mid:<bulk-late@fabrikam.test>'])
  })

  test('malformed, oversized and Message-ID-less messages: a clear error for each, the others flow, nothing lost', async () => {
    const box = await env.mailbox()
    const c = await env.client(box)
    await c.append('INBOX', rawMail({ messageId: '<good1@fabrikam.test>', subject: 'Good 1' }))
    // broken MIME: a multipart whose boundary never appears, and a header block that is garbage
    await c.append(
      'INBOX',
      Buffer.from('From: Broken <broken@fabrikam.test>\r\nSubject: Broken MIME\r\nMessage-ID: <broken@fabrikam.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="nope"\r\n\r\n--other\r\nContent-Type: text/plain\r\n\r\nhalf a part'),
    )
    await c.append('INBOX', Buffer.from('\x00\x01\x02 this is not a mail message at all \xff\xfe\r\n'))
    // huge attachment (above the adapter's maxMessageBytes)
    const attachment = Buffer.alloc(300_000, 7).toString('base64').replace(/.{76}/g, '$&\r\n')
    await c.append(
      'INBOX',
      Buffer.from(
        'From: Big <big@fabrikam.test>\r\nTo: alice@contoso.test\r\nSubject: Big file\r\nMessage-ID: <big@fabrikam.test>\r\nMIME-Version: 1.0\r\n' +
          'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
          attachment +
          '\r\n--b1--\r\n',
      ),
    )
    await c.append('INBOX', rawMail({ messageId: null, subject: 'No id' }))
    await c.append('INBOX', rawMail({ messageId: '<good2@fabrikam.test>', subject: 'Good 2' }))
    const problems: MessageProblem[] = []
    const adapter = env.adapter({ ...env.imapOptions(box), maxMessageBytes: 100_000 }, { onMessageProblem: (p) => problems.push(p) })
    const { changes } = await pullAll(adapter, null)
    const byId = latestByNativeId(changes)
    expect(byId.size).toBe(6)
    expect((byId.get(asNativeId('mid:<good1@fabrikam.test>')) as RemoteUpsert).fields.subject).toBe('Good 1')
    expect((byId.get(asNativeId('mid:<good2@fabrikam.test>')) as RemoteUpsert).fields.subject).toBe('Good 2')
    const big = byId.get(asNativeId('mid:<big@fabrikam.test>')) as RemoteUpsert
    expect(big.fields.subject).toBe('Big file')
    expect(big.fields.body).toBeUndefined()
    expect(problems.find((p) => p.nativeId === 'mid:<big@fabrikam.test>')?.error.reason).toBe('message-too-large')
    const broken = byId.get(asNativeId('mid:<broken@fabrikam.test>')) as RemoteUpsert
    expect(broken.fields.subject).toBe('Broken MIME')
    const noId = [...byId.values()].filter((ch) => ch.nativeId.startsWith('sha:'))
    expect(noId.length).toBe(2)
    expect(problems.some((p) => p.error.reason === 'malformed-message')).toBe(true)
    for (const p of problems) expect(p.error.message).toMatch(/INBOX\/\d+/)
  })

  test('spoofing: a forged X-Concord-Id is ignored outside Sent, and a second message with a known Message-ID does not take the record over', async () => {
    const box = await env.mailbox()
    const c = await env.client(box)
    await c.append('INBOX', rawMail({ messageId: '<orig@fabrikam.test>', subject: 'Original' }))
    await c.append('INBOX', rawMail({ messageId: '<forged@evil.test>', subject: 'Forged', extraHeaders: 'X-Concord-Id: someone-elses-record' }))
    const adapter = env.adapter(env.imapOptions(box))
    const first = await pullAll(adapter, null)
    expect(upserts(first.changes).find((u) => u.nativeId === 'mid:<forged@evil.test>')!.concordId).toBeUndefined()
    await c.append('INBOX', rawMail({ messageId: '<orig@fabrikam.test>', subject: 'Hijack attempt' }))
    const next = await pullAll(adapter, first.cursor)
    expect(next.changes).toEqual([])
  })

  test('trackPulled: the tracking keyword for a page in one STORE, recorded in the round (the next round reports nothing); POP3 refuses', async () => {
    const box = await env.mailbox()
    const c = await env.client(box)
    for (let n = 0; n < 5; n++) await c.append('INBOX', rawMail({ messageId: `<t${n}@fabrikam.test>`, subject: `T ${n}` }))
    const adapter = env.adapter(env.imapOptions(box))
    const first = await pullAll(adapter, null)
    const ids = upserts(first.changes).map((u) => u.nativeId).filter((id) => id !== 'mid:<t4@fabrikam.test>')
    const marked = await adapter.trackPulled(ids)
    expect([...marked.keys()].sort()).toEqual([...ids].sort())
    for (const m of marked.values()) expect(m.categories).toEqual(['Tracked to Dynamics 365'])
    // On the server: the keyword is set on exactly those four.
    await c.mailboxOpen('INBOX')
    const flagged: string[] = []
    for await (const m of c.fetch('1:*', { envelope: true, flags: true })) if (m.flags?.has('Tracked+20to+20Dynamics+20365')) flagged.push(m.envelope!.messageId!)
    expect(flagged.sort()).toEqual(['<t0@fabrikam.test>', '<t1@fabrikam.test>', '<t2@fabrikam.test>', '<t3@fabrikam.test>'])
    // The change was recorded in the round: the next round has nothing to report…
    const quiet = await pullAll(adapter, first.cursor)
    expect(quiet.changes).toEqual([])
    // …while a later change by someone else is still seen.
    await c.messageFlagsAdd({ header: { 'message-id': '<t0@fabrikam.test>' } }, ['Work'])
    const later = await pullAll(adapter, quiet.cursor)
    expect(upserts(later.changes).map((u) => [u.nativeId, u.fields])).toEqual([['mid:<t0@fabrikam.test>', { categories: ['Tracked to Dynamics 365', 'Work'] }]])
    const again = await adapter.trackPulled(ids)
    expect(again.size).toBe(0) // already tracked: nothing to store
    const pop3 = env.adapter(env.pop3Options(box))
    await expect(pop3.trackPulled(ids)).rejects.toMatchObject({ reason: 'manual-tracking-unsupported' })
  })

  test('a configured folder that does not exist is a clear configuration error', async () => {
    const box = await env.mailbox()
    const adapter = env.adapter(env.imapOptions(box, { folders: ['INBOX', 'Nope'] }))
    const err = await adapter.pull(null, { limit: 10 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(MailServerError)
    expect((err as MailServerError).reason).toBe('invalid-options')
    expect((err as Error).message).toContain('"Nope"')
  })

  test('only e-mail: appointments, contacts and tasks are refused with a clear error', async () => {
    const box = await env.mailbox()
    const adapter = env.adapter(env.imapOptions(box))
    const result = await adapter.push([
      { opId: asOpId('a1'), type: 'create', concordId: asConcordId('c-appt'), kind: 'appointment', fields: { subject: 'Meet' } },
      { opId: asOpId('a2'), type: 'create', concordId: asConcordId('c-contact'), kind: 'contact', fields: { givenName: 'X' } },
      { opId: asOpId('a3'), type: 'delete', concordId: asConcordId('c-task'), kind: 'task', provenance: 'user-deleted' },
    ])
    expect(result.applied).toEqual([])
    expect(result.rejected.map((r) => (r.error as MailServerError).reason)).toEqual(['unsupported-kind', 'unsupported-kind', 'unsupported-kind'])
    expect(result.rejected[0]!.error.message).toMatch(/e-mail only: appointments are not supported/)
  })

  test('a foreign or corrupt cursor is refused with a clear error', async () => {
    const box = await env.mailbox()
    const adapter = env.adapter(env.imapOptions(box))
    await expect(adapter.pull('garbage' as never, { limit: 5 })).rejects.toMatchObject({ reason: 'invalid-cursor' })
    await expect(adapter.pull(`ms1.${Buffer.from('{"v":2}').toString('base64url')}` as never, { limit: 5 })).rejects.toMatchObject({ reason: 'invalid-cursor' })
  })
})
