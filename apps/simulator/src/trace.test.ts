import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'
import { TraceError } from './errors.js'
import { formatTrace, parseTrace } from './trace.js'

const create = (extra: Record<string, unknown> = {}) => JSON.stringify({ t: 0, mailbox: 'a', side: 'mailbox', op: 'create', kind: 'email', item: 'm1', fields: { subject: 'Hi' }, ...extra })

test.each([
  [`${create()}\n{not json`, 2, /not valid JSON/],
  [`# comment\n\n${create({ kind: 'parcel' })}`, 3, /kind:/],
  [create({ fields: { subject: 'x', shoeSize: 44 } }), 1, /shoeSize/],
  [create({ fields: { sentAt: 'yesterday' } }), 1, /sentAt/],
  [`${create()}\n${create()}`, 2, /created twice/],
  [JSON.stringify({ t: 0, mailbox: 'a', side: 'crm', op: 'update', kind: 'email', item: 'zz', fields: { subject: 'y' } }), 1, /before its create/],
  [`${create({ t: 100 })}\n${JSON.stringify({ t: 50, mailbox: 'a', side: 'mailbox', op: 'delete', kind: 'email', item: 'm1' })}`, 2, /goes back in time/],
  [`${create()}\n${JSON.stringify({ t: 5, mailbox: 'a', side: 'crm', op: 'move', kind: 'email', item: 'm1' })}`, 2, /move is a mailbox-side operation/],
  [`${create()}\n${JSON.stringify({ t: 5, mailbox: 'a', side: 'mailbox', op: 'update', kind: 'email', item: 'm1' })}`, 2, /needs non-empty "fields"/],
  [`${create()}\n${JSON.stringify({ t: 5, mailbox: 'a', side: 'mailbox', op: 'delete', kind: 'email', item: 'm1' })}\n${JSON.stringify({ t: 6, mailbox: 'a', side: 'mailbox', op: 'delete', kind: 'email', item: 'm1' })}`, 3, /after its delete/],
  [create({ t: -1 }), 1, /t:/],
])('malformed trace %# names line %i', (text, line, message) => {
  try {
    parseTrace(text, 'x.jsonl')
    expect.unreachable()
  } catch (error) {
    expect(error).toBeInstanceOf(TraceError)
    expect((error as TraceError).line).toBe(line)
    expect((error as TraceError).message).toMatch(new RegExp(`^x\\.jsonl:${line}: `))
    expect((error as TraceError).message).toMatch(message)
  }
})

test('the shipped sample trace parses and round-trips', async () => {
  const text = await readFile(fileURLToPath(new URL('../samples/sample-trace.jsonl', import.meta.url)), 'utf8')
  const workload = parseTrace(text, 'sample-trace.jsonl')
  expect(workload.mailboxes).toEqual(['mbx-0', 'mbx-1'])
  expect(workload.events.length).toBeGreaterThan(200)
  expect(workload.events.some((e) => e.side === 'crm' && !e.initial)).toBe(true)
  expect(parseTrace(formatTrace(workload.events)).events).toEqual(workload.events)
})
