/** Push-path correlation: replies to e-mails of the same push chunk, and batched look-ups. */
import { asConcordId, asOpId, asReplicaId, type PushOp } from '@concord/engine'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { CrmAdapter, correlateEmail } from './index.js'
import { startCrmWorld, type CrmWorld } from '../test/harness.js'

let w: CrmWorld
beforeEach(async () => {
  w = await startCrmWorld({ kinds: ['email'] })
})
afterEach(async () => {
  await w.close()
})

const guid = (nativeId: string) => nativeId.slice(nativeId.indexOf('(') + 1, -1)
const mail = (n: number, extra: Record<string, unknown> = {}) => ({
  subject: `Topic ${n}`,
  body: 'hello',
  from: { address: 'ann@customer.test' },
  to: [{ address: 'alice@contoso.test' }],
  internetMessageId: `<m-${n}@customer.test>`,
  direction: 'incoming',
  ...extra,
})
const create = (id: string, fields: Record<string, unknown>): PushOp => ({ opId: asOpId(id), type: 'create', concordId: asConcordId(id), kind: 'email', fields })

/** An adapter whose fetch counts the requests it sends, by kind. */
function countingAdapter(): { adapter: CrmAdapter; counts: { batch: number; emailLookups: number; other: number } } {
  const counts = { batch: 0, emailLookups: 0, other: 0 }
  const fetchFn: typeof fetch = (input, init) => {
    const url = String(input)
    if (url.endsWith('/$batch')) counts.batch++
    else if (/\/emails\?\$select=.*\$filter=/.test(url)) counts.emailLookups++
    else counts.other++
    return fetch(input, init)
  }
  const adapter = new CrmAdapter(
    { orgUrl: w.emu.url, tokenUrl: w.emu.tokenUrl, clientId: w.emu.clientId, clientSecret: w.emu.clientSecret, impersonate: { callerObjectId: w.alice.azureactivedirectoryobjectid }, kinds: ['email'] },
    { replicaId: asReplicaId('crm~alice-counting'), fetch: fetchFn },
  )
  return { adapter, counts }
}

test('a reply pushed in the same chunk as the e-mail it answers correlates to its regarding record (In-Reply-To and conversation)', async () => {
  const account = w.emu.admin.createRecord('accounts', { name: 'Customer Inc' }, w.alice.systemuserid).id
  const regarding = { table: 'account', id: account }
  const res = await w.adapter.push([
    create('parent', mail(1, { conversationId: 'conv-A', regarding })),
    create('unrelated', mail(2, { subject: 'Something else' })),
    create('reply', mail(3, { subject: 'RE: Topic 1', inReplyTo: '<m-1@customer.test>', conversationId: 'conv-A' })),
    create('same-thread', mail(4, { subject: 'Fwd: other words', conversationId: 'conv-A' })),
    create('reply-to-reply', mail(5, { subject: 'RE: RE: Topic 1', inReplyTo: '<M-3@customer.test>' })),
  ])
  expect(res.rejected).toEqual([])
  const ids = new Map(res.applied.map((a) => [String(a.opId), guid(String(a.nativeId))]))
  expect(ids.size).toBe(5)
  const row = async (op: string) => (await w.api('GET', `emails(${ids.get(op)})?$select=correlationmethod,_regardingobjectid_value,_parentactivityid_value,_correlatedactivityid_value`)).json
  expect(await row('reply')).toMatchObject({ correlationmethod: 3, _regardingobjectid_value: account, _parentactivityid_value: ids.get('parent'), _correlatedactivityid_value: ids.get('parent') })
  expect(await row('same-thread')).toMatchObject({ correlationmethod: 5, _regardingobjectid_value: account, _correlatedactivityid_value: ids.get('parent') })
  // a reply to the reply (itself correlated in this push) inherits the regarding record through it
  expect(await row('reply-to-reply')).toMatchObject({ correlationmethod: 3, _regardingobjectid_value: account, _parentactivityid_value: ids.get('reply') })
  expect(await row('unrelated')).toMatchObject({ correlationmethod: 0, _regardingobjectid_value: null })
})

test('the same replies pushed in a later chunk correlate the same way (batchSize 1)', async () => {
  const account = w.emu.admin.createRecord('accounts', { name: 'Customer Inc' }, w.alice.systemuserid).id
  const one = w.adapterFor(w.alice, { kinds: ['email'], batchSize: 1 })
  const res = await one.push([
    create('p', mail(11, { conversationId: 'conv-B', regarding: { table: 'account', id: account } })),
    create('r', mail(12, { subject: 'RE: Topic 11', inReplyTo: '<m-11@customer.test>' })),
  ])
  expect(res.rejected).toEqual([])
  const r = (await w.api('GET', `emails(${guid(String(res.applied[1]?.nativeId))})?$select=correlationmethod,_regardingobjectid_value`)).json
  expect(r).toMatchObject({ correlationmethod: 3, _regardingobjectid_value: account })
})

test('correlation look-ups are batched: 200 uncorrelated creates cost at most 4 look-ups per 20 e-mails, and the result equals one-by-one correlation', async () => {
  const account = w.emu.admin.createRecord('accounts', { name: 'Tracked' }, w.alice.systemuserid).id
  // tracked e-mails some of the new ones correlate with, by each method
  const seed = await w.adapter.push([
    create('t-1', mail(9001, { subject: 'Budget', conversationId: 'conv-T', regarding: { table: 'account', id: account } })),
  ])
  expect(seed.rejected).toEqual([])
  const ops: PushOp[] = []
  for (let i = 0; i < 200; i++) {
    const extra =
      i % 50 === 0 ? { inReplyTo: '<m-9001@customer.test>' } : i % 50 === 1 ? { conversationId: 'conv-T' } : i % 50 === 2 ? { subject: 'RE: Budget' } : { inReplyTo: `<unknown-${i}@x>`, conversationId: `conv-${i}`, subject: `Topic ${i} CRM:0009${String(i).padStart(3, '0')}` }
    ops.push(create(`bulk-${i}`, mail(20_000 + i, extra)))
  }
  // what one-by-one correlation (the former push path) answers, and what it costs
  const { adapter: single, counts: singleCounts } = countingAdapter()
  const expected: number[] = []
  for (const op of ops) {
    const f = (op as { fields: Record<string, unknown> }).fields as { subject: string; inReplyTo?: string; conversationId?: string }
    expected.push((await correlateEmail(single, { subject: f.subject, from: 'ann@customer.test', to: ['alice@contoso.test'], inReplyTo: f.inReplyTo ?? null, conversationId: f.conversationId ?? null })).code)
  }
  const { adapter, counts } = countingAdapter()
  const res = await adapter.push(ops)
  expect(res.rejected).toEqual([])
  expect(res.applied).toHaveLength(200)
  const all = (await w.api('GET', 'emails?$select=activityid,correlationmethod', undefined, { Prefer: 'odata.maxpagesize=500' })).json.value as Array<{ activityid: string; correlationmethod: number }>
  const byId = new Map(all.map((r) => [r.activityid, r.correlationmethod]))
  const codes = new Map(res.applied.map((a) => [String(a.opId), byId.get(guid(String(a.nativeId)))]))
  expect(ops.map((op) => codes.get(String(op.opId)))).toEqual(expected)
  expect(expected.filter((c) => c === 3)).toHaveLength(4)
  expect(expected.filter((c) => c === 5)).toHaveLength(4)
  expect(expected.filter((c) => c === 6)).toHaveLength(4)
  // 2 chunks of 100: ≤ 4 rounds × 5 queries of 20 values each per chunk
  expect(counts.emailLookups).toBeLessThanOrEqual(2 * 4 * 5)
  expect(counts.batch).toBe(2)
  expect(singleCounts.emailLookups).toBeGreaterThan(600)
})
