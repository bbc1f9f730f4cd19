import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'
import { SimulatorError } from './errors.js'
import { decodeEncodedWords, importMailbox, splitMbox } from './mail-import.js'
import { DAY, HOUR, MIN } from './workload.js'

const fixture = (name: string) => fileURLToPath(new URL(`../test/fixtures/${name}`, import.meta.url))

test('mbox: messages become mailbox-side email creates at their Date header', async () => {
  const result = await importMailbox(fixture('small.mbox'), 'alice')
  expect(result.imported).toBe(2)
  expect(result.skipped).toEqual([{ where: `${fixture('small.mbox')}#3`, reason: 'no Date header' }])
  const [first, second] = result.workload.events
  expect(first).toMatchObject({ t: 9 * HOUR + 15 * MIN, mailbox: 'alice', side: 'mailbox', op: 'create', kind: 'email' })
  expect(first!.fields).toMatchObject({ subject: 'Quarterly numbers', from: { name: 'Alice Adams', address: 'alice@contoso.test' }, to: [{ name: 'Bob Brown', address: 'bob@fabrikam.test' }, { address: 'carol@fabrikam.test' }], internetMessageId: '<q1@contoso.test>', receivedAt: '2026-11-23T09:15:00.000Z' })
  // 11:02 +01:00 is 10:02 UTC; the encoded subject is decoded
  expect(second).toMatchObject({ t: 10 * HOUR + 2 * MIN })
  expect(second!.fields).toMatchObject({ subject: 'RE: Quartalszahlen €', inReplyTo: '<q1@contoso.test>' })
  expect(result.workload.durationMs).toBe(DAY)
})

test('mbox: a "From " line inside a paragraph does not split a message', () => {
  expect(splitMbox('From a\nSubject: x\n\nline\nFrom the start\n\nFrom b\nSubject: y\n\nz\n')).toHaveLength(2)
})

test('Maildir: cur, new and Maildir++ sub-folders; Sent is outgoing', async () => {
  const result = await importMailbox(fixture('maildir'))
  expect(result.workload.mailboxes).toEqual(['maildir'])
  expect(result.imported).toBe(3)
  const subjects = result.workload.events.map((e) => [e.t, e.fields!.subject, e.fields!.direction])
  expect(subjects).toEqual([
    [8 * HOUR, 'Grüße', 'incoming'],
    [12 * HOUR + 30 * MIN, 'Lunch', 'incoming'],
    [12 * HOUR + 45 * MIN, 'Re: Lunch', 'outgoing'],
  ])
})

test('a mailbox path that does not exist is an Import error', async () => {
  await expect(importMailbox(fixture('nope.mbox'))).rejects.toThrow(SimulatorError)
})

test('encoded words: B and Q', () => {
  expect(decodeEncodedWords('=?utf-8?B?w6Q=?= und =?iso-8859-1?Q?=F6_x?=')).toBe('ä und ö x')
})
