import { describe, expect, test } from 'vitest'
import { ValidationError } from '../errors.js'
import type { Fields } from '../model/item.js'
import type { BaseRecord } from '../store/records.js'
import type { MergeInput } from '../sync/merge-strategy.js'
import type { MergeContext } from './context.js'
import { evaluateDeletionRule, instantOf } from './deletion-rules.js'
import { renderExplain } from './explain.js'
import { explainField } from './explain.js'
import { DELETE_EXPLAIN_FIELD, PolicyMerge } from './policy-merge.js'
import { mergeInput, upsert } from './test-helpers.js'

const alice = { id: 'u-alice', addresses: ['Alice@Contoso.test'] }
const NOW = Date.UTC(2026, 5, 1, 12) // 2026-06-01T12:00Z
const future = { dateTime: '2026-07-01T09:00:00', timeZone: 'UTC' }
const past = { dateTime: '2026-05-01T09:00:00', timeZone: 'UTC' }
const byAlice = { address: 'alice@contoso.test' }
const byBob = { address: 'bob@contoso.test' }
const crmDelete = { type: 'delete', provenance: 'user-deleted' } as const
const mailboxDelete = crmDelete
const ctx = (extra: MergeContext = {}): MergeContext => ({ user: alice, now: NOW, ...extra })

describe('instantOf (wall clock in an IANA zone → instant)', () => {
  test('UTC, summer and winter time, fractions', () => {
    expect(instantOf({ dateTime: '2026-07-01T09:00:00', timeZone: 'UTC' })).toBe(Date.UTC(2026, 6, 1, 9))
    expect(instantOf({ dateTime: '2026-07-01T10:00:00', timeZone: 'Europe/Berlin' })).toBe(Date.UTC(2026, 6, 1, 8))
    expect(instantOf({ dateTime: '2026-01-15T10:00', timeZone: 'Europe/Berlin' })).toBe(Date.UTC(2026, 0, 15, 9))
    expect(instantOf({ dateTime: '2026-01-15T10:00:00', timeZone: 'America/New_York' })).toBe(Date.UTC(2026, 0, 15, 15))
    expect(instantOf({ dateTime: '2026-01-15T10:00:00.5', timeZone: 'UTC' })).toBe(Date.UTC(2026, 0, 15, 10, 0, 0, 500))
  })
  test('unreadable values and zones are unknown, never a crash', () => {
    expect(instantOf({ dateTime: '2026-07-01T09:00:00', timeZone: 'Pacific Standard Time' })).toBeUndefined()
    expect(instantOf({ dateTime: 'tomorrow', timeZone: 'UTC' })).toBeUndefined()
    expect(instantOf(null)).toBeUndefined()
    expect(instantOf('2026-07-01')).toBeUndefined()
  })
})

describe('evaluateDeletionRule', () => {
  const appt = (deleted: 'crm' | 'mailbox', fields: Fields, extra: Partial<Parameters<typeof evaluateDeletionRule>[0]> = {}) =>
    evaluateDeletionRule({ kind: 'appointment', deleted, provenance: 'user-deleted', fields, user: alice, now: NOW, ...extra })

  test('appointment, crm → mailbox: only an organizer’s future meeting is deleted', () => {
    expect(appt('crm', { organizer: byAlice, start: future })?.propagate).toBe(true)
    expect(appt('crm', { organizer: byAlice, start: past })).toMatchObject({ propagate: false, rule: expect.stringMatching(/not in the future/) })
    expect(appt('crm', { organizer: byBob, start: future })).toMatchObject({ propagate: false, rule: expect.stringMatching(/not the organizer/) })
    expect(appt('crm', { organizer: byAlice })).toMatchObject({ propagate: false, rule: expect.stringMatching(/start is unknown/) })
    // no organizer field: the CRM owner decides; neither known → not the organizer
    expect(appt('crm', { start: future }, { crmMeta: { ownerId: 'u-alice' } })?.propagate).toBe(true)
    expect(appt('crm', { start: future }, { crmMeta: { ownerId: 'u-bob' } })?.propagate).toBe(false)
    expect(appt('crm', { start: future })).toMatchObject({ propagate: false, rule: expect.stringMatching(/organizer unknown/) })
    // the start is compared as an instant in its own zone: 13:00 in Berlin (summer) is 11:00Z, before NOW
    expect(appt('crm', { organizer: byAlice, start: { dateTime: '2026-06-01T13:00:00', timeZone: 'Europe/Berlin' } })?.propagate).toBe(false)
    expect(appt('crm', { organizer: byAlice, start: { dateTime: '2026-06-01T15:00:00', timeZone: 'Europe/Berlin' } })?.propagate).toBe(true)
  })

  test('appointment, mailbox → crm: completed/canceled rows, past starts and non-organizers keep the crm row', () => {
    expect(appt('mailbox', { organizer: byAlice, start: future }, { crmMeta: { state: 'open' } })?.propagate).toBe(true)
    expect(appt('mailbox', { organizer: byAlice, start: future }, { crmMeta: { state: 'completed' } })).toMatchObject({ propagate: false, rule: expect.stringMatching(/is completed/) })
    expect(appt('mailbox', { organizer: byAlice, start: future }, { crmMeta: { state: 'Canceled' } })?.propagate).toBe(false)
    expect(appt('mailbox', { organizer: byAlice, start: past })).toMatchObject({ propagate: false, rule: expect.stringMatching(/in the past/) })
    expect(appt('mailbox', { organizer: byBob, start: future })).toMatchObject({ propagate: false, rule: expect.stringMatching(/not the organizer/) })
  })

  test('absent context conditions are not evaluated (no user, no clock)', () => {
    expect(appt('crm', { organizer: byBob, start: past }, { user: undefined, now: undefined })?.propagate).toBe(true)
    expect(appt('crm', { organizer: byBob, start: future }, { user: undefined })?.propagate).toBe(true)
    expect(appt('crm', { organizer: byAlice, start: past }, { now: undefined })?.propagate).toBe(true)
  })

  test('logical deletes and e-mail have no item-type rule; the switch turns the rules off', () => {
    for (const provenance of ['left-filter', 'lost-access', 'stopped-tracking'] as const) expect(appt('crm', { organizer: byBob, start: past }, { provenance })).toBeUndefined()
    expect(appt('crm', { organizer: byBob, start: past }, { provenance: 'resync' })?.propagate).toBe(false)
    expect(evaluateDeletionRule({ kind: 'email', deleted: 'crm', provenance: 'user-deleted', fields: {} })).toBeUndefined()
    expect(appt('crm', { organizer: byBob, start: past }, { rules: { itemTypeRules: false, contactCrmDelete: 'never' } })).toBeUndefined()
  })

  test('tasks: a crm delete spares a completed mailbox task; a mailbox delete always reaches the crm', () => {
    const task = (deleted: 'crm' | 'mailbox', status?: string) => evaluateDeletionRule({ kind: 'task', deleted, provenance: 'user-deleted', fields: status ? { status } : {}, user: alice, now: NOW })
    expect(task('crm', 'completed')).toMatchObject({ propagate: false, rule: expect.stringMatching(/completed/) })
    expect(task('crm', 'inProgress')?.propagate).toBe(true)
    expect(task('crm')?.propagate).toBe(true)
    expect(task('mailbox', 'completed')?.propagate).toBe(true)
  })

  test.each([
    ['non-owner-only', 'u-alice', false],
    ['non-owner-only', 'u-bob', true],
    ['non-owner-only', undefined, true],
    ['owner-only', 'u-alice', true],
    ['owner-only', 'u-bob', false],
    ['always', 'u-alice', true],
    ['never', 'u-bob', false],
  ] as const)('contacts: contactCrmDelete=%s, owner %s → propagate %s', (contactCrmDelete, ownerId, propagate) => {
    const result = evaluateDeletionRule({ kind: 'contact', deleted: 'crm', provenance: 'user-deleted', fields: {}, user: alice, crmMeta: { ownerId }, rules: { itemTypeRules: true, contactCrmDelete } })
    expect(result?.propagate).toBe(propagate)
    expect(result?.rule).toContain(`deletionRules.contactCrmDelete=${contactCrmDelete}`)
  })

  test('a contact deleted in the mailbox keeps the generic handling', () => {
    expect(evaluateDeletionRule({ kind: 'contact', deleted: 'mailbox', provenance: 'user-deleted', fields: {}, user: alice })).toBeUndefined()
  })
})

describe('PolicyMerge applies the deletion rules', () => {
  const merge = new PolicyMerge()
  const appointment = (options: Omit<Parameters<typeof mergeInput>[0], 'kind'>) => merge.merge(mergeInput({ kind: 'appointment', ...options }))

  test('an organizer’s future meeting deleted in the crm is deleted in the mailbox, and explain says why', () => {
    const d = appointment({ base: { subject: 'QBR', organizer: byAlice, start: future }, crm: crmDelete, exists: { crm: false, mailbox: true }, context: ctx() })
    expect(d.writes).toEqual({ mailbox: { type: 'delete', provenance: 'user-deleted' } })
    expect(d.unlink).toBeUndefined()
    expect(explainField(d, DELETE_EXPLAIN_FIELD)).toMatchObject({ outcome: 'take-crm', value: 'deleted', winner: 'crm', rule: expect.stringMatching(/organizer, future start/) })
  })

  test('a past meeting deleted in the crm stays in the mailbox and is unlinked (even when the mailbox copy was edited)', () => {
    for (const mailbox of [undefined, upsert({ subject: 'QBR (notes)' })]) {
      const d = appointment({ base: { subject: 'QBR', organizer: byAlice, start: past }, crm: crmDelete, mailbox, exists: { crm: false, mailbox: true }, context: ctx() })
      expect(d.writes).toEqual({})
      expect(d.forget).toBe(false)
      expect(d.unlink).toMatch(/not in the future/)
      expect(explainField(d, DELETE_EXPLAIN_FIELD)).toMatchObject({ outcome: 'blocked', value: 'unlinked', winner: 'mailbox' })
      expect(renderExplain(d)).toMatch(/@delete: blocked → mailbox .*not in the future; the mailbox item stays, unlinked/)
    }
  })

  test('left-filter / lost-access crm deletes keep removing the mailbox copy (not item-type rules)', () => {
    for (const provenance of ['left-filter', 'lost-access'] as const) {
      const d = appointment({ base: { subject: 'QBR', organizer: byBob, start: past }, crm: { type: 'delete', provenance }, exists: { crm: false, mailbox: true }, context: ctx() })
      expect(d.writes).toEqual({ mailbox: { type: 'delete', provenance } })
      expect(d.unlink).toBeUndefined()
    }
  })

  test('a mailbox delete of a non-organizer, a past or a completed meeting keeps the crm row and unlinks', () => {
    const cases: Array<[Fields, MergeContext]> = [
      [{ organizer: byBob, start: future }, ctx({ crmMeta: { ownerId: 'u-bob', attendeeIds: ['u-alice'] } })],
      [{ organizer: byAlice, start: past }, ctx()],
      [{ organizer: byAlice, start: future }, ctx({ crmMeta: { state: 'completed' } })],
    ]
    for (const [base, context] of cases) {
      const d = appointment({ base, mailbox: mailboxDelete, exists: { crm: true, mailbox: false }, context })
      expect(d.writes).toEqual({})
      expect(d.unlink).toBeDefined()
    }
    const d = appointment({ base: { organizer: byAlice, start: future }, mailbox: mailboxDelete, exists: { crm: true, mailbox: false }, context: ctx({ crmMeta: { state: 'open' } }) })
    expect(d.writes).toEqual({ crm: { type: 'delete', provenance: 'user-deleted' } })
  })

  test('the start the crm just moved counts (the surviving side’s newer fields)', () => {
    const d = appointment({ base: { organizer: byAlice, start: future }, crm: upsert({ start: past }), mailbox: mailboxDelete, exists: { crm: true, mailbox: false }, context: ctx() })
    expect(d.writes).toEqual({})
    expect(d.unlink).toMatch(/in the past/)
  })

  test('tasks: completed in the mailbox (also by a concurrent edit) survives a crm delete', () => {
    const task = (base: Fields, mailbox?: MergeInput['changes']['mailbox']) => merge.merge(mergeInput({ kind: 'task', base, crm: crmDelete, mailbox, exists: { crm: false, mailbox: true }, context: ctx() }))
    expect(task({ subject: 'Call', status: 'completed' }).unlink).toMatch(/completed/)
    expect(task({ subject: 'Call', status: 'notStarted' }, upsert({ status: 'completed' })).unlink).toMatch(/completed/)
    expect(task({ subject: 'Call', status: 'notStarted' }).writes).toEqual({ mailbox: { type: 'delete', provenance: 'user-deleted' } })
    const d = merge.merge(mergeInput({ kind: 'task', base: { subject: 'Call', status: 'completed' }, mailbox: mailboxDelete, exists: { crm: true, mailbox: false }, context: ctx() }))
    expect(d.writes).toEqual({ crm: { type: 'delete', provenance: 'user-deleted' } })
  })

  test('contacts follow deletionRules.contactCrmDelete (default non-owner-only)', () => {
    const contact = (m: PolicyMerge, ownerId: string) => m.merge(mergeInput({ kind: 'contact', base: { givenName: 'Ann' }, crm: crmDelete, exists: { crm: false, mailbox: true }, context: ctx({ crmMeta: { ownerId } }) }))
    expect(contact(merge, 'u-alice').unlink).toMatch(/non-owner-only.*stays, unlinked/)
    expect(contact(merge, 'u-bob').writes.mailbox?.type).toBe('delete')
    const inverted = new PolicyMerge({ deletionRules: { contactCrmDelete: 'owner-only' } })
    expect(contact(inverted, 'u-alice').writes.mailbox?.type).toBe('delete')
    expect(contact(inverted, 'u-bob').unlink).toMatch(/owner-only/)
  })

  test('an unlinked item: later changes on either side do nothing; once the kept copy is gone it is forgotten', () => {
    const base: BaseRecord = { kind: 'appointment', fields: { subject: 'QBR' }, fieldVersions: { subject: 1 }, versions: {}, unlinked: { at: 1, rule: 'past meeting' } }
    const input = (changes: MergeInput['changes'], exists: MergeInput['exists']): MergeInput => ({ ...mergeInput({ kind: 'appointment', exists }), base, changes, context: ctx() })
    const edited = merge.merge(input({ crm: undefined, mailbox: upsert({ subject: 'QBR v2' }) }, { crm: false, mailbox: true }))
    expect(edited).toMatchObject({ writes: {}, forget: false, fields: [], notes: [expect.stringMatching(/unlinked \(past meeting\)/)] })
    expect(merge.merge(input({ crm: upsert({ subject: 'x' }), mailbox: undefined }, { crm: true, mailbox: false })).writes).toEqual({})
    const gone = merge.merge(input({ crm: undefined, mailbox: { type: 'delete', provenance: 'user-deleted' } }, { crm: false, mailbox: false }))
    expect(gone.forget).toBe(true)
    expect(gone.writes).toEqual({})
  })

  test('the deletion rules config is validated; errors name the key', () => {
    expect(() => new PolicyMerge({ deletionRules: { contactCrmDelete: 'sometimes' } })).toThrow(ValidationError)
    expect(() => new PolicyMerge({ deletionRules: { contactCrmDelete: 'sometimes' } })).toThrow(/deletionRules\.contactCrmDelete/)
    expect(() => new PolicyMerge({ deletionRules: { itemTypeRule: true } })).toThrow(/deletionRules/)
    expect(new PolicyMerge().config.deletionRules).toEqual({ itemTypeRules: true, contactCrmDelete: 'non-owner-only' })
    const off = new PolicyMerge({ deletionRules: { itemTypeRules: false } })
    const d = off.merge(mergeInput({ kind: 'appointment', base: { organizer: byBob, start: past }, crm: crmDelete, exists: { crm: false, mailbox: true }, context: ctx() }))
    expect(d.writes).toEqual({ mailbox: { type: 'delete', provenance: 'user-deleted' } })
  })
})
