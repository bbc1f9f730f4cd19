import { describe, expect, test } from 'vitest'
import { MailServerError } from './errors.js'
import { categoriesOf, categoryToKeyword, composeMessage, keywordToCategory, nativeIdFor, normalizeMessageId, parseMessage } from './mime.js'
import { parseMailServerOptions } from './options.js'
import { decodeCursor, encodeCursor, primaryOf, workBetween, type FolderState } from './snapshot.js'
import { asNativeId } from '@concord/engine'

describe('categories as IMAP keywords', () => {
  test('round-trip, including spaces, non-ASCII and the escape character', () => {
    for (const c of ['Tracked to Dynamics 365', 'Kunde: Müller', 'a+b', 'plain', '赤']) {
      const k = categoryToKeyword(c)
      expect(k).toMatch(/^[A-Za-z0-9\-._+]+$/)
      expect(keywordToCategory(k)).toBe(c)
    }
    expect(categoryToKeyword('Tracked to Dynamics 365')).toBe('Tracked+20to+20Dynamics+20365')
  })
  test('system flags and $-keywords are not categories', () => {
    expect(categoriesOf(['\\Seen', '\\Flagged', '$Forwarded', 'Tracked+20to+20Dynamics+20365', 'Work'])).toEqual(['Tracked to Dynamics 365', 'Work'])
  })
})

describe('native ids', () => {
  test('the Message-ID, normalised; a stable hash without one', () => {
    expect(nativeIdFor(' <a@b> ', {})).toBe('mid:<a@b>')
    expect(nativeIdFor('a@b', {})).toBe('mid:<a@b>')
    expect(normalizeMessageId('')).toBeUndefined()
    const facts = { date: new Date('2026-01-01T00:00:00Z'), from: 'x@y', subject: 's', size: 10 }
    const h = nativeIdFor(undefined, facts)
    expect(h).toMatch(/^sha:[0-9a-f]{40}$/)
    expect(nativeIdFor(undefined, { ...facts })).toBe(h)
    expect(nativeIdFor(undefined, { ...facts, size: 11 })).not.toBe(h)
  })
})

describe('MIME', () => {
  test('compose → parse keeps the fields correlation needs', async () => {
    const raw = await composeMessage({
      fields: { subject: 'RE: Offer', body: 'Thanks!', from: { name: 'Bob', address: 'bob@fabrikam.test' }, to: [{ address: 'alice@contoso.test' }], inReplyTo: '<root@contoso.test>' },
      messageId: '<r1@fabrikam.test>',
      concordId: 'c-1',
      date: new Date('2026-11-20T10:00:00Z'),
      keepBcc: false,
      references: ['<root@contoso.test>'],
    })
    const p = await parseMessage(raw, { direction: 'incoming', flags: ['\\Seen'] })
    expect(p.concordId).toBe('c-1')
    expect(p.references).toEqual(['<root@contoso.test>'])
    expect(p.fields).toMatchObject({
      subject: 'RE: Offer',
      body: 'Thanks!',
      from: { name: 'Bob', address: 'bob@fabrikam.test' },
      to: [{ address: 'alice@contoso.test' }],
      internetMessageId: '<r1@fabrikam.test>',
      inReplyTo: '<root@contoso.test>',
      conversationId: '<root@contoso.test>',
      sentAt: '2026-11-20T10:00:00.000Z',
      categories: [],
    })
  })
  test('a message without any usable header is a malformed-message error', async () => {
    const err = await parseMessage(Buffer.from('\x00\x01 junk'), { direction: 'incoming', flags: [] }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(MailServerError)
    expect((err as MailServerError).reason).toBe('malformed-message')
  })
  test('composing without a sender names the field', async () => {
    await expect(composeMessage({ fields: { subject: 'x' }, messageId: '<x@y>', date: new Date(), keepBcc: false })).rejects.toThrow(/"from"/)
  })
})

describe('options and cursors', () => {
  test('bad options name the field and value', () => {
    expect(() => parseMailServerOptions({ replicaId: 'r', incoming: { protocol: 'imap', host: 'h', port: 99999, user: 'u', password: 'p' } })).toThrow(/incoming\.port/)
    expect(() => parseMailServerOptions({ replicaId: 'r', incoming: { protocol: 'smtp' } })).toThrow(/incoming/)
  })
  test('a cursor round-trips; a tampered one is refused', () => {
    const c = encodeCursor({ v: 1, p: 'imap', e: 'epoch', s: 3, o: 10, f: { INBOX: ['1', '5'] } })
    expect(decodeCursor(c)).toEqual({ v: 1, p: 'imap', e: 'epoch', s: 3, o: 10, f: { INBOX: ['1', '5'] } })
    expect(() => decodeCursor(`${c}x` as never)).toThrow(MailServerError)
  })
  test('a move between folders is an upsert, not a delete; a disappearance is a delete', () => {
    const meta = (id: string) => ({ id: asNativeId(id), flags: [], size: 1 })
    const f = (entries: Array<[number, string]>): FolderState => ({ uidValidity: '1', uidNext: 10, msgs: new Map(entries.map(([u, id]) => [u, meta(id)])) })
    const before = primaryOf(['INBOX', 'Archive'], new Map([['INBOX', f([[1, 'a'], [2, 'b']])], ['Archive', f([])]]))
    const after = primaryOf(['INBOX', 'Archive'], new Map([['INBOX', f([])], ['Archive', f([[7, 'a']])]]))
    expect(workBetween(before, after)).toEqual([
      { t: 'full', id: 'a', folder: 'Archive', uid: 7 },
      { t: 'del', id: 'b' },
    ])
  })
})

describe('problems mailparser reads leniently (the message still parses, and each is reported)', () => {
  const head = (ct: string, extra = '') => `From: Carol <carol@fabrikam.test>\r\nSubject: s\r\nMessage-ID: <p@fabrikam.test>\r\n${extra}MIME-Version: 1.0\r\nContent-Type: ${ct}\r\n\r\n`
  const DATE = 'Date: Fri, 20 Nov 2026 10:00:00 +0000\r\n'
  const issues = async (raw: string | Buffer, maxAttachmentBytes?: number) => (await parseMessage(Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'latin1'), { direction: 'incoming', flags: [], maxAttachmentBytes })).issues.map((i) => i.reason)

  test('a clean message has none', async () => {
    expect(await issues(head('text/plain; charset=utf-8', DATE) + 'Hello\r\n')).toEqual([])
    expect(await issues(head('multipart/alternative; boundary="x"', DATE) + '--x\r\nContent-Type: text/plain; charset=windows-1252\r\n\r\nCaf\xe9\r\n--x--\r\n')).toEqual([])
  })
  test('missing or unreadable Date', async () => {
    expect(await issues(head('text/plain') + 'Hi\r\n')).toEqual(['missing-date'])
    const r = await parseMessage(Buffer.from(head('text/plain', 'Date: sometime soon\r\n') + 'Hi\r\n'), { direction: 'incoming', flags: [] })
    expect(r.issues).toEqual([{ reason: 'missing-date', message: expect.stringContaining('"sometime soon"') }])
    expect(r.fields.sentAt).toBeUndefined()
  })
  test('unknown charset; bytes invalid in the declared charset', async () => {
    expect(await issues(head('text/plain; charset=x-no-such-charset', DATE) + 'H\xe9\r\n')).toEqual(['unknown-charset'])
    expect(await issues(head('text/plain; charset=utf-8', DATE) + 'Caf\xe9\r\n')).toEqual(['invalid-charset-data'])
    // A literal U+FFFD in valid UTF-8 is not a wrong charset.
    expect(await issues(Buffer.concat([Buffer.from(head('text/plain; charset=utf-8', DATE)), Buffer.from('a \uFFFD b\r\n', 'utf8')]))).toEqual([])
  })
  test('broken multipart: never closed, no boundary, invalid base64 (one issue per reason, messages joined)', async () => {
    const r = await parseMessage(Buffer.from(head('multipart/mixed; boundary="nc"', DATE) + '--nc\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!'), { direction: 'incoming', flags: [] })
    expect(r.issues).toEqual([{ reason: 'broken-mime', message: expect.stringMatching(/never closed.*; part 1 \(text\/plain\) is declared base64 but is not valid base64/) }])
    expect(await issues(head('multipart/mixed', DATE) + 'x\r\n')).toEqual(['broken-mime'])
  })
  test('an attachment above the CRM limit', async () => {
    const att = Buffer.alloc(3000, 1).toString('base64').replace(/.{76}/g, '$&\r\n')
    const raw = head('multipart/mixed; boundary="b"', DATE) + `--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\nContent-Type: application/pdf; name="q.pdf"\r\nContent-Disposition: attachment; filename="q.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${att}\r\n--b--\r\n`
    expect(await issues(raw, 2999)).toEqual(['attachment-too-large'])
    expect(await issues(raw, 3000)).toEqual([])
    expect(await issues(raw)).toEqual([])
  })
})
