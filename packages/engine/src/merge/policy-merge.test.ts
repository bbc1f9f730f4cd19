import { describe, expect, test } from 'vitest'
import { ValidationError } from '../errors.js'
import { CrmWinsMerge } from '../sync/merge-strategy.js'
import { DYNAMICS_DEFAULT_DIRECTIONS, resolveDirections } from './directions.js'
import { explainField, renderExplain, serializeExplain } from './explain.js'
import { computeSecurityMask } from './masks.js'
import { PolicyMerge } from './policy-merge.js'
import { applyDecision, mergeInput, upsert } from './test-helpers.js'
import { fieldNames, ItemKinds } from '../model/item.js'
import { encodeHlc } from './hlc.js'
import { deepFreeze } from '../util/deep-freeze.js'

const alice = { id: 'u-alice', addresses: ['alice@contoso.test'] }
const full = { canSync: true, canSendFromCrm: true, canReadRecord: true }

describe('directions and config', () => {
  test('the Dynamics defaults cover every field of every kind', () => {
    for (const kind of ItemKinds) expect(Object.keys(DYNAMICS_DEFAULT_DIRECTIONS[kind]).sort()).toEqual([...fieldNames(kind)].sort())
  })

  test('an admin override replaces a default and keeps the others', () => {
    const table = resolveDirections({ contact: { jobTitle: 'toExchange' } })
    expect(table.contact.jobTitle).toBe('toExchange')
    expect(table.contact.surname).toBe('both')
  })

  test('bad config is rejected with the key named', () => {
    expect(() => new PolicyMerge({ directions: { contact: { shoeSize: 'both' } } })).toThrow(/shoeSize/)
    expect(() => new PolicyMerge({ directions: { contact: { jobTitle: 'sideways' } } })).toThrow(/directions\.contact\.jobTitle/)
    expect(() => new PolicyMerge({ directions: { appointment: { start: 'toCrm' } } })).toThrow(/directions\.appointment\.start.*fixed two-way/)
    expect(() => new PolicyMerge({ policies: { task: { priority: 'text-merge' } } })).toThrow(/policies\.task\.priority.*text field/)
    expect(() => new PolicyMerge({ policies: { contact: { notes: 'set-merge' } } })).toThrow(/set field/)
    expect(() => new PolicyMerge({ policies: { default: 'coin-flip' } })).toThrow(ValidationError)
    expect(() => new PolicyMerge({ filters: { contact: { field: 'shoeSize', op: 'exists' } } })).toThrow(/filters\.contact\.field.*shoeSize/)
  })

  test('a new item is created with the pulled record\'s own frozen fields when they all flow, not a copy (both merges)', () => {
    const pulled = deepFreeze({ subject: 'Call back', status: 'notStarted' })
    for (const merge of [new CrmWinsMerge(), new PolicyMerge()]) {
      const d = merge.merge(mergeInput({ kind: 'task', crm: upsert(pulled), exists: { crm: true, mailbox: false } }))
      expect(d.writes.mailbox).toEqual({ type: 'create', fields: pulled })
      expect(d.writes.mailbox?.type === 'create' && d.writes.mailbox.fields).toBe(pulled)
    }
  })

  test('CrmWinsMerge still works with the extended input', () => {
    const d = new CrmWinsMerge().merge(mergeInput({ base: { subject: 'a' }, crm: upsert({ subject: 'b' }), exists: { crm: true, mailbox: true }, context: { mask: { ...full, canSync: false } } }))
    expect(d.writes.mailbox).toEqual({ type: 'update', fields: { subject: 'b' } })
  })
})

describe('one-way directions', () => {
  const merge = new PolicyMerge({ directions: { task: { subject: 'toExchange' } } })
  test('a mailbox edit of a CRM → mailbox field is blocked, recorded, not written', () => {
    const d = merge.merge(mergeInput({ base: { subject: 'crm' }, mailbox: upsert({ subject: 'local' }), exists: { crm: true, mailbox: true } }))
    expect(d.writes).toEqual({})
    expect(explainField(d, 'subject')).toMatchObject({ outcome: 'blocked', direction: 'toExchange', winner: 'none' })
  })
  test('… and is overwritten the next time the CRM value changes', () => {
    const d = merge.merge(mergeInput({ base: { subject: 'crm' }, crm: upsert({ subject: 'crm2' }), exists: { crm: true, mailbox: true } }))
    expect(d.writes.mailbox).toEqual({ type: 'update', fields: { subject: 'crm2' } })
  })
  test('tracked e-mail content flows mailbox → CRM only by default', () => {
    const d = new PolicyMerge().merge(mergeInput({ kind: 'email', base: { subject: 's' }, crm: upsert({ subject: 'crm edit' }), exists: { crm: true, mailbox: true } }))
    expect(d.writes).toEqual({})
    expect(explainField(d, 'subject')?.outcome).toBe('blocked')
  })
})

describe('security masks', () => {
  test('a user without the sync privilege syncs nothing', () => {
    const d = new PolicyMerge().merge(mergeInput({ base: { subject: 'a' }, crm: upsert({ subject: 'b' }), mailbox: { type: 'delete', provenance: 'user-deleted' }, exists: { crm: true, mailbox: false }, context: { mask: { ...full, canSync: false } } }))
    expect(d).toMatchObject({ writes: {}, agreedNow: {}, forget: false })
    expect(d.notes?.[0]).toMatch(/no sync privilege/)
  })
  test('lost access to the record removes the mailbox copy only', () => {
    const d = new PolicyMerge().merge(mergeInput({ base: { subject: 'a' }, crm: upsert({ subject: 'b' }), exists: { crm: true, mailbox: true }, context: { mask: { ...full, canReadRecord: false } } }))
    expect(d.writes).toEqual({ mailbox: { type: 'delete', provenance: 'lost-access' } })
  })
  test('an unreadable field reported as null is unknown: the mailbox keeps its value', () => {
    const mask = computeSecurityMask({ hasSyncPrivilege: true, canSendFromCrm: true, securedFields: { jobTitle: { canRead: false, canUpdate: false } } })
    const d = new PolicyMerge().merge(mergeInput({ kind: 'contact', base: { givenName: 'Ann', jobTitle: 'Buyer' }, crm: upsert({ givenName: 'Anna', jobTitle: null }), exists: { crm: true, mailbox: true }, context: { mask } }))
    expect(d.writes).toEqual({ mailbox: { type: 'update', fields: { givenName: 'Anna' } } })
  })
  test('a field the user cannot update is not pushed to the CRM; the mailbox copy is brought back', () => {
    const mask = computeSecurityMask({ hasSyncPrivilege: true, canSendFromCrm: true, securedFields: { jobTitle: { canRead: true, canUpdate: false } } })
    const d = new PolicyMerge().merge(mergeInput({ kind: 'contact', base: { jobTitle: 'Buyer' }, mailbox: upsert({ jobTitle: 'CEO' }), exists: { crm: true, mailbox: true }, context: { mask } }))
    expect(d.writes).toEqual({ mailbox: { type: 'update', fields: { jobTitle: 'Buyer' } } })
    expect(explainField(d, 'jobTitle')).toMatchObject({ outcome: 'blocked', access: { read: true, update: false }, winner: 'crm' })
  })
  test('a bad privilege report names the key', () => {
    expect(() => computeSecurityMask({ hasSyncPrivilege: 'yes', canSendFromCrm: true })).toThrow(/hasSyncPrivilege/)
  })
  test('without send privilege, a CRM e-mail or a meeting with attendees is not created in the mailbox', () => {
    const merge = new PolicyMerge()
    const context = { mask: { ...full, canSendFromCrm: false } }
    const email = merge.merge(mergeInput({ kind: 'email', crm: upsert({ subject: 'Offer', to: [{ address: 'x@y.test' }] }), exists: { crm: true, mailbox: false }, context }))
    expect(email.writes).toEqual({})
    const meeting = merge.merge(mergeInput({ kind: 'appointment', crm: upsert({ subject: 'Kickoff', requiredAttendees: [{ address: 'x@y.test' }] }), exists: { crm: true, mailbox: false }, context }))
    expect(meeting.writes).toEqual({})
    const solo = merge.merge(mergeInput({ kind: 'appointment', crm: upsert({ subject: 'Focus time' }), exists: { crm: true, mailbox: false }, context }))
    expect(solo.writes.mailbox).toEqual({ type: 'create', fields: { subject: 'Focus time' } })
    const sent = merge.merge(mergeInput({ kind: 'email', crm: upsert({ subject: 'Offer', categories: ['x'] }), exists: { crm: true, mailbox: false }, context: { mask: full } }))
    expect(sent.writes.mailbox).toEqual({ type: 'create', fields: { subject: 'Offer' } })
  })
})

describe('sync filters and tracking', () => {
  const merge = new PolicyMerge()
  test('"my contacts": a contact owned by someone else is not created in the mailbox', () => {
    const d = merge.merge(mergeInput({ kind: 'contact', crm: upsert({ givenName: 'Ann' }), exists: { crm: true, mailbox: false }, context: { user: alice, crmMeta: { ownerId: 'u-bob' } } }))
    expect(d.writes).toEqual({})
    const mine = merge.merge(mergeInput({ kind: 'contact', crm: upsert({ givenName: 'Ann' }), exists: { crm: true, mailbox: false }, context: { user: alice, crmMeta: { ownerId: 'u-alice' } } }))
    expect(mine.writes.mailbox?.type).toBe('create')
  })
  test('"my appointments" include those the user attends (by id or address)', () => {
    const byAddress = merge.merge(mergeInput({ kind: 'appointment', crm: upsert({ subject: 'x', requiredAttendees: [{ address: 'ALICE@contoso.test' }] }), exists: { crm: true, mailbox: false }, context: { user: alice, crmMeta: { ownerId: 'u-bob' } } }))
    expect(byAddress.writes.mailbox?.type).toBe('create')
    const byId = merge.merge(mergeInput({ kind: 'appointment', crm: upsert({ subject: 'x' }), exists: { crm: true, mailbox: false }, context: { user: alice, crmMeta: { ownerId: 'u-bob', attendeeIds: ['u-alice'] } } }))
    expect(byId.writes.mailbox?.type).toBe('create')
  })
  test('a record that leaves the filter is deleted from the mailbox only, with provenance left-filter', () => {
    const d = merge.merge(mergeInput({ kind: 'task', base: { subject: 'a' }, crm: upsert({ subject: 'a' }), mailbox: upsert({ subject: 'edited' }), exists: { crm: true, mailbox: true }, context: { user: alice, crmMeta: { ownerId: 'u-bob' } } }))
    expect(d.writes.mailbox).toEqual({ type: 'delete', provenance: 'left-filter' })
    // The concurrent mailbox edit is not lost: it still reaches the CRM.
    expect(d.writes.crm).toEqual({ type: 'update', fields: { subject: 'edited' } })
  })
  test('a per-user declarative filter (state and field conditions)', () => {
    const filters = { task: { all: [{ owner: 'me' as const }, { state: { in: ['open'] } }, { field: 'priority', op: 'ne' as const, value: 'low' }] } }
    const run = (state: string, priority: string) => merge.merge(mergeInput({ kind: 'task', crm: upsert({ subject: 's', priority }), exists: { crm: true, mailbox: false }, context: { user: alice, filters, crmMeta: { ownerId: 'u-alice', state } } })).writes.mailbox?.type
    expect(run('open', 'high')).toBe('create')
    expect(run('completed', 'high')).toBeUndefined()
    expect(run('open', 'low')).toBeUndefined()
  })
  test('an untracked mailbox item is not created in the CRM; a tracked one is', () => {
    expect(merge.merge(mergeInput({ kind: 'task', mailbox: upsert({ subject: 'private' }), exists: { crm: false, mailbox: true } })).writes).toEqual({})
    expect(merge.merge(mergeInput({ kind: 'task', mailbox: upsert({ subject: 't', categories: ['Tracked to Dynamics 365'] }), exists: { crm: false, mailbox: true } })).writes.crm).toEqual({ type: 'create', fields: { subject: 't' } })
    expect(merge.merge(mergeInput({ kind: 'appointment', mailbox: upsert({ subject: 't', regarding: { table: 'accounts', id: 'a1' } }), exists: { crm: false, mailbox: true } })).writes.crm?.type).toBe('create')
    // Category tracking does not work for contacts; the explicit Track flag does.
    expect(merge.merge(mergeInput({ kind: 'contact', mailbox: upsert({ givenName: 'A', categories: ['Tracked to Dynamics 365'] }), exists: { crm: false, mailbox: true } })).writes).toEqual({})
    expect(merge.merge(mergeInput({ kind: 'contact', mailbox: upsert({ givenName: 'A' }), exists: { crm: false, mailbox: true }, context: { tracked: true } })).writes.crm?.type).toBe('create')
  })
})

describe('deletes carry provenance', () => {
  const merge = new PolicyMerge()
  const linked = { crm: true, mailbox: false }
  test.each([
    ['user-deleted', 'u-bob', { crm: { type: 'delete', provenance: 'user-deleted' } }, false],
    ['resync', 'u-bob', { crm: { type: 'delete', provenance: 'resync' } }, false],
    ['left-filter', 'u-alice', {}, true],
    ['lost-access', 'u-alice', {}, true],
    ['stopped-tracking', 'u-alice', { crm: { type: 'delete', provenance: 'stopped-tracking' } }, false],
    ['stopped-tracking', 'u-bob', {}, true],
  ] as const)('a mailbox delete (%s, CRM owner %s)', (provenance, ownerId, writes, forget) => {
    const d = merge.merge(mergeInput({ base: { subject: 'a' }, mailbox: { type: 'delete', provenance }, exists: linked, context: { user: alice, crmMeta: { ownerId } } }))
    expect(d.writes).toEqual(writes)
    expect(d.forget).toBe(forget)
  })
  test.each(['user-deleted', 'left-filter', 'lost-access', 'resync'] as const)('a CRM delete (%s) removes the mailbox copy with that provenance', (provenance) => {
    const d = merge.merge(mergeInput({ base: { subject: 'a' }, crm: { type: 'delete', provenance }, exists: { crm: false, mailbox: true } }))
    expect(d.writes).toEqual({ mailbox: { type: 'delete', provenance } })
  })
  test('left-filter from the CRM wins over a mailbox edit (the CRM record stays, the copy goes)', () => {
    const d = merge.merge(mergeInput({ base: { subject: 'a' }, crm: { type: 'delete', provenance: 'left-filter' }, mailbox: upsert({ subject: 'b' }), exists: { crm: false, mailbox: true } }))
    expect(d.writes).toEqual({ mailbox: { type: 'delete', provenance: 'left-filter' } })
  })
})

describe('conflict policies', () => {
  test('keep-both on an appointment lists the conflict and writes nothing (no duplicate invitation)', () => {
    const merge = new PolicyMerge({ policies: { default: 'keep-both' } })
    const d = merge.merge(mergeInput({ kind: 'appointment', base: { subject: 'a', location: 'x' }, crm: upsert({ subject: 'b', location: 'x' }), mailbox: upsert({ subject: 'c', location: 'y' }), exists: { crm: true, mailbox: true } }))
    expect(d.conflicts).toEqual([{ field: 'subject', base: 'a', crm: 'b', mailbox: 'c' }])
    expect(d.writes).toEqual({ crm: { type: 'update', fields: { location: 'y' } } })
  })
  test('lww uses per-field HLCs from the context, else modifiedAt', () => {
    const merge = new PolicyMerge({ policies: { default: 'lww' } })
    const clocks = { crm: { subject: encodeHlc({ wall: 5, logical: 2, node: 'crm' }) }, mailbox: { subject: encodeHlc({ wall: 5, logical: 1, node: 'mbx' }) } }
    const d = merge.merge(mergeInput({ base: { subject: 'a' }, crm: upsert({ subject: 'b' }, 1), mailbox: upsert({ subject: 'c' }, 9), exists: { crm: true, mailbox: true }, context: { fieldClocks: clocks } }))
    expect(d.writes).toEqual({ mailbox: { type: 'update', fields: { subject: 'b' } } })
    expect(d.fieldClocks?.subject).toBe(clocks.crm.subject)
    const byTime = merge.merge(mergeInput({ base: { subject: 'a' }, crm: upsert({ subject: 'b' }, 1), mailbox: upsert({ subject: 'c' }, 9), exists: { crm: true, mailbox: true } }))
    expect(byTime.writes).toEqual({ crm: { type: 'update', fields: { subject: 'c' } } })
  })
  test('text-merge keeps both concurrent body edits; set-merge both category edits', () => {
    const merge = new PolicyMerge({ directions: { task: { categories: 'both' } }, policies: { task: { description: 'text-merge', categories: 'set-merge' } } })
    const d = merge.merge(
      mergeInput({
        base: { description: 'Call Bob. Send the offer.', categories: ['Red'] },
        crm: upsert({ description: 'Call Bob on Monday. Send the offer.', categories: ['Red', 'Blue'] }),
        mailbox: upsert({ description: 'Call Bob. Send the revised offer.', categories: ['Green'] }),
        exists: { crm: true, mailbox: true },
      }),
    )
    const after = applyDecision(d, { crm: {}, mailbox: {} })
    expect(after.crm).toEqual({ description: 'Call Bob on Monday. Send the revised offer.', categories: ['Blue', 'Green'] })
    expect(after.mailbox).toEqual(after.crm)
  })
  test('mergeBatch equals merging one by one', () => {
    const merge = new PolicyMerge({ policies: { default: 'crm-wins', task: { description: 'text-merge' } } })
    const inputs = [0, 1, 2].map((i) => mergeInput({ base: { description: `base ${i} text` }, crm: upsert({ description: `crm base ${i} text` }), mailbox: upsert({ description: `base ${i} text mbx` }), exists: { crm: true, mailbox: true } }))
    expect(merge.mergeBatch(inputs).map((d) => d.writes)).toEqual(inputs.map((i) => merge.merge(i).writes))
  })
})

describe('explain', () => {
  test('every field decision carries base, both values and versions, direction, mask, policy and winner; render and serialize are pure', () => {
    const merge = new PolicyMerge()
    const crm = upsert({ subject: 'b' })
    const mailbox = upsert({ subject: 'c' })
    const d = merge.merge(mergeInput({ base: { subject: 'a' }, crm, mailbox, exists: { crm: true, mailbox: true } }))
    const fd = explainField(d, 'subject')!
    expect(fd).toMatchObject({ base: 'a', crm: 'b', mailbox: 'c', direction: 'both', access: { read: true, update: true }, policy: 'crm-wins', winner: 'crm', outcome: 'conflict-crm-wins', value: 'b', baseVersion: 1 })
    expect(fd.versions?.crm).toBe((crm as { version: string }).version)
    expect(fd.versions?.mailbox).toBe((mailbox as { version: string }).version)
    const text = renderExplain(d)
    expect(text).toContain('write mailbox: update subject')
    expect(text).toMatch(/subject: conflict-crm-wins → crm \[both, crm-wins, read\+update\] base="a"#1 crm="b"@v\d+ mailbox="c"@v\d+ ⇒ "b": both changed: crm-wins/)
    expect(renderExplain(d)).toBe(text)
    expect(JSON.parse(serializeExplain(d)).fields[0].winner).toBe('crm')
  })
})
