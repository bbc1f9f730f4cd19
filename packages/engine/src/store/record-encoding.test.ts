import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson } from '../util/canonical-json.js'
import type { ConcordId, NativeId, OpId, PairId, ReplicaId } from '../ids.js'
import { type ExplainRecord, type OutboxEntry, decodeExplain, decodeOutboxEntry, encodeExplain, encodeOutboxEntry } from './records.js'

const json = fc.jsonValue({ maxDepth: 2 })
/** Field decisions as the merge writes them: side values often the decided value itself. */
const decision = fc.record({
  value: json,
  crm: fc.option(json, { nil: undefined }),
  crmIsValue: fc.boolean(),
  mailboxIsValue: fc.boolean(),
  baseIsValue: fc.boolean(),
  outcome: fc.constantFrom('take-crm', 'take-mailbox', 'agreed', 'conflict-crm-wins'),
  rule: fc.constantFrom('only mailbox changed', 'only crm changed', 'crm wins'),
  versions: fc.option(fc.record({ crm: fc.string(), mailbox: fc.string() }), { nil: undefined }),
})
const record = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), decision, { maxKeys: 6 }).map((fields): ExplainRecord => ({
  at: 1_700_000_000_000,
  fields: Object.fromEntries(
    Object.entries(fields).map(([name, d]) => [
      name,
      {
        field: name,
        base: d.baseIsValue ? d.value : undefined,
        crm: d.crmIsValue ? d.value : d.crm,
        mailbox: d.mailboxIsValue ? d.value : undefined,
        outcome: d.outcome,
        rule: d.rule,
        value: d.value,
        versions: d.versions,
      },
    ]),
  ),
}))

/** Decisions as every merge strategy writes them, each optional member present or not. */
const fullDecision = fc.record({
  value: json,
  sides: fc.record({ base: fc.option(json, { nil: undefined }), crm: fc.option(json, { nil: undefined }), mailbox: fc.option(json, { nil: undefined }) }),
  isValue: fc.record({ base: fc.boolean(), crm: fc.boolean(), mailbox: fc.boolean() }),
  outcome: fc.constantFrom('take-crm', 'take-mailbox', 'agreed', 'conflict-crm-wins', 'blocked'),
  rule: fc.constantFrom('only mailbox changed', 'only crm changed', 'crm wins', ''),
  direction: fc.option(fc.constantFrom('both', 'toCrm', 'toExchange', 'none'), { nil: undefined }),
  access: fc.option(fc.record({ read: fc.boolean(), update: fc.boolean() }), { nil: undefined }),
  policy: fc.option(fc.constantFrom('crm-wins', 'lww', 'keep-both'), { nil: undefined }),
  winner: fc.option(fc.constantFrom('crm', 'mailbox', 'both', 'none'), { nil: undefined }),
  versions: fc.option(fc.record({ crm: fc.string(), mailbox: fc.string() }), { nil: undefined }),
  baseVersion: fc.option(fc.nat(5), { nil: undefined }),
  clocks: fc.option(fc.record({ crm: fc.string(), mailbox: fc.string() }), { nil: undefined }),
})
/** Records of such decisions, and now and then a field whose entry is not a decision (not an object). */
const fullRecord = fc
  .dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.oneof({ weight: 9, arbitrary: fullDecision }, { weight: 1, arbitrary: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 })) }), { maxKeys: 8 })
  .map((entries): ExplainRecord => {
    const fields: Record<string, unknown> = {}
    for (const [name, d] of Object.entries(entries)) {
      if (d === null || typeof d !== 'object' || !('isValue' in d)) {
        fields[name] = d
        continue
      }
      const side = (s: 'base' | 'crm' | 'mailbox') => (d.isValue[s] ? d.value : d.sides[s])
      fields[name] = { field: name, base: side('base'), crm: side('crm'), mailbox: side('mailbox'), outcome: d.outcome, rule: d.rule, value: d.value, direction: d.direction, access: d.access, policy: d.policy, winner: d.winner, versions: d.versions, baseVersion: d.baseVersion, clocks: d.clocks }
    }
    return { at: 1_700_000_000_000, fields }
  })

describe('explain record encoding', () => {
  it('round-trips every record exactly (as JSON)', () => {
    fc.assert(fc.property(record, (r) => canonicalJson(decodeExplain(encodeExplain(r))) === canonicalJson(r)))
    fc.assert(fc.property(fullRecord, (r) => canonicalJson(decodeExplain(encodeExplain(r))) === canonicalJson(r)))
  })

  it('stores each taken value once and shared members once', () => {
    const value = { name: 'Peer 0', address: 'peer0@fabrikam.test' }
    const r: ExplainRecord = {
      at: 1,
      fields: {
        from: { field: 'from', mailbox: value, outcome: 'take-mailbox', rule: 'only mailbox changed', value },
        subject: { field: 'subject', mailbox: 'Hello', outcome: 'take-mailbox', rule: 'only mailbox changed', value: 'Hello' },
      },
    }
    const stored = encodeExplain(r)
    expect(stored.split('peer0@fabrikam.test').length - 1).toBe(1)
    expect(stored.split('only mailbox changed').length - 1).toBe(1)
    expect(decodeExplain(stored)).toEqual(r)
  })

  it('reads records stored with full decisions', () => {
    const full: ExplainRecord = { at: 2, fields: { subject: { field: 'subject', crm: 'a', mailbox: 'b', outcome: 'conflict-crm-wins', rule: 'crm wins', value: 'a' } } }
    expect(decodeExplain(JSON.stringify(full))).toEqual(full)
  })
})

describe('outbox entry encoding', () => {
  const base = { pairId: 'p' as PairId, target: 'crm' as ReplicaId, attempts: 0, plannedAt: 1 }
  it('stores the fields of an op that agrees exactly what it writes once, and reads them back', () => {
    const fields = { subject: 'Hello', to: [{ address: 'a@b.test' }] }
    const entry: OutboxEntry = { ...base, op: { opId: 'op1' as OpId, type: 'create', concordId: 'c1' as ConcordId, kind: 'email', fields }, agreed: fields }
    const stored = encodeOutboxEntry(entry)
    expect(stored.split('a@b.test').length - 1).toBe(1)
    const read = decodeOutboxEntry(stored)
    expect(read).toEqual(entry)
    read.agreed.subject = 'changed'
    expect(read.op.type !== 'delete' && read.op.fields.subject).toBe('Hello') // not shared
  })

  it('keeps other entries as they are', () => {
    const entries: OutboxEntry[] = [
      { ...base, op: { opId: 'op2' as OpId, type: 'update', concordId: 'c2' as ConcordId, kind: 'contact', nativeId: 'n2' as NativeId, fields: { jobTitle: 'CFO', mobilePhone: '1' } }, agreed: { jobTitle: 'CFO' } },
      { ...base, op: { opId: 'op3' as OpId, type: 'delete', concordId: 'c3' as ConcordId, kind: 'task', nativeId: 'n3' as NativeId, provenance: 'user-deleted' }, agreed: {} },
    ]
    for (const entry of entries) expect(decodeOutboxEntry(encodeOutboxEntry(entry))).toEqual(entry)
  })
})
