import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import type { Fields } from '../model/item.js'
import type { MergeDecision, MergeInput, Side, SideChange } from '../sync/merge-strategy.js'
import { propConfig } from '../testing/prop-config.js'
import { jsonEqual } from '../util/canonical-json.js'
import type { ConflictPolicy } from './config.js'
import type { FieldAccess, SecurityMask } from './context.js'
import { type Direction, flowsToCrm, flowsToMailbox } from './directions.js'
import { PolicyMerge, effectiveDirection } from './policy-merge.js'
import { mergeSetsAutomerge, mergeSetsPlain } from './set-merge.js'
import { type SideState, applyDecision, mergeInput, upsert } from './test-helpers.js'
import { applyEdits, diffText } from './text-diff.js'
import { mergeText } from './text-merge.js'

const FIELDS = ['subject', 'description', 'categories', 'priority'] as const
type FieldName = (typeof FIELDS)[number]
const ABSENT = '<absent>'

const word = fc.constantFrom('alpha', 'beta', 'gamma', 'delta', 'eps')
const valueArb: Record<FieldName, fc.Arbitrary<unknown>> = {
  subject: fc.constantFrom('a', 'b', 'c', null),
  description: fc.oneof({ weight: 5, arbitrary: fc.array(word, { maxLength: 5 }).map((w) => w.join(' ')) }, { weight: 1, arbitrary: fc.constant(null) }),
  categories: fc.oneof({ weight: 5, arbitrary: fc.uniqueArray(fc.constantFrom('R', 'G', 'B', 'Y'), { maxLength: 4 }) }, { weight: 1, arbitrary: fc.constant(null) }),
  priority: fc.constantFrom('low', 'normal', 'high', null),
}
const fieldsArb: fc.Arbitrary<Fields> = fc.record(valueArb, { requiredKeys: [] }) as fc.Arbitrary<Fields>
const POLICY_CHOICES: Record<FieldName, ConflictPolicy[]> = {
  subject: ['crm-wins', 'exchange-wins', 'lww', 'keep-both'],
  description: ['crm-wins', 'exchange-wins', 'lww', 'text-merge', 'keep-both'],
  categories: ['crm-wins', 'exchange-wins', 'lww', 'set-merge', 'keep-both'],
  priority: ['crm-wins', 'exchange-wins', 'lww', 'keep-both'],
}
const SYMMETRIC: Record<FieldName, ConflictPolicy[]> = { subject: ['lww'], description: ['lww', 'text-merge'], categories: ['lww', 'set-merge'], priority: ['lww'] }
const accessArb = fc.constantFrom<FieldAccess>({ read: true, update: true }, { read: true, update: true }, { read: false, update: false }, { read: true, update: false })
const directionArb = fc.constantFrom<Direction>('both', 'both', 'toCrm', 'toExchange', 'none')

type Edit = { type: 'none' } | { type: 'edit'; patch: Fields; at: number } | { type: 'delete' }
const editArb: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ type: 'none' as const }) },
  { weight: 6, arbitrary: fc.record({ type: fc.constant('edit' as const), patch: fieldsArb, at: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.constant({ type: 'delete' as const }) },
)

interface Scenario {
  base: Fields
  crm: Edit
  mailbox: Edit
  directions: Record<FieldName, Direction>
  policies: Record<FieldName, ConflictPolicy>
  access: Record<FieldName, FieldAccess>
}

const scenarioArb = (symmetric: boolean): fc.Arbitrary<Scenario> =>
  fc.record({
    base: fieldsArb,
    crm: editArb,
    mailbox: editArb,
    directions: symmetric ? fc.constant({ subject: 'both', description: 'both', categories: 'both', priority: 'both' } as Record<FieldName, Direction>) : fc.record({ subject: directionArb, description: directionArb, categories: directionArb, priority: directionArb }),
    policies: fc.record(Object.fromEntries(FIELDS.map((f) => [f, fc.constantFrom(...(symmetric ? SYMMETRIC : POLICY_CHOICES)[f])])) as Record<FieldName, fc.Arbitrary<ConflictPolicy>>),
    access: symmetric ? fc.constant(Object.fromEntries(FIELDS.map((f) => [f, { read: true, update: true }])) as Record<FieldName, FieldAccess>) : fc.record({ subject: accessArb, description: accessArb, categories: accessArb, priority: accessArb }),
  })

// percentComplete is always two-way and readable, so a re-created copy is never empty.
const ANCHOR = { percentComplete: 10 }

function setup(s: Scenario) {
  const merge = new PolicyMerge({ directions: { task: s.directions }, policies: { default: 'crm-wins', task: s.policies } })
  const mask: SecurityMask = { canSync: true, canSendFromCrm: true, canReadRecord: true, fields: s.access }
  const base = { ...ANCHOR, ...s.base }
  const states: Record<Side, SideState> = { crm: { ...base }, mailbox: { ...base } }
  const change = (side: Side, edit: Edit): SideChange | undefined => {
    if (edit.type === 'delete') {
      states[side] = null
      return { type: 'delete', provenance: 'user-deleted' }
    }
    if (edit.type === 'none') return undefined
    states[side] = { ...base, ...edit.patch }
    return upsert({ ...states[side] }, edit.at)
  }
  const crm = change('crm', s.crm)
  const mailbox = change('mailbox', s.mailbox)
  const input = mergeInput({ base, crm, mailbox, exists: { crm: states.crm !== null, mailbox: states.mailbox !== null }, context: { mask } })
  return { merge, mask, base, states, input }
}

const at = (state: SideState, f: string): unknown => (state === null ? undefined : f in state ? state[f] : ABSENT)

function effective(s: Scenario, f: FieldName): Direction {
  return effectiveDirection(s.directions[f], s.access[f])
}

function swap(input: MergeInput): MergeInput {
  return { ...input, changes: { crm: input.changes.mailbox, mailbox: input.changes.crm }, exists: { crm: input.exists.mailbox, mailbox: input.exists.crm } }
}

describe('merge properties', () => {
  test('convergence, idempotence, unreadable fields never written, forbidden directions never propagated', () => {
    fc.assert(
      fc.property(scenarioArb(false), (s) => {
        const { merge, mask, base, states, input } = setup(s)
        const decision: MergeDecision = merge.merge(input)
        const after = applyDecision(decision, states)

        // Forbidden directions and unreadable fields.
        for (const side of ['crm', 'mailbox'] as const) {
          const write = decision.writes[side]
          if (!write || write.type === 'delete') continue
          for (const f of FIELDS) {
            if (!(f in write.fields)) continue
            const e = effective(s, f)
            expect(s.access[f].read).toBe(true)
            expect(side === 'crm' ? flowsToCrm(e) : flowsToMailbox(e)).toBe(true)
          }
        }
        // Convergence: both copies live or both gone, and every field free to flow both ways agrees.
        expect(after.crm === null).toBe(after.mailbox === null)
        if (after.crm === null || after.mailbox === null) return
        for (const f of FIELDS) {
          const e = effective(s, f)
          if (e === 'both' && s.policies[f] !== 'keep-both') expect(at(after.crm, f)).toEqual(at(after.mailbox, f))
          if (s.policies[f] === 'keep-both' && !jsonEqual(at(after.crm, f), at(after.mailbox, f))) {
            // Only a real both-sides conflict may stay apart, and then it is listed.
            if (e === 'both') expect(decision.conflicts?.map((c) => c.field)).toContain(f)
          }
        }
        // Idempotence: base = what both now agree on (a re-created copy starts fresh); merging both states again writes nothing.
        const recreated = Object.values(decision.writes).some((w) => w?.type === 'create')
        const nextBase: Fields = recreated ? {} : { ...base }
        for (const f of Object.keys({ ...after.crm, ...after.mailbox })) if (jsonEqual(at(after.crm, f), at(after.mailbox, f))) nextBase[f] = after.crm[f]
        const again = merge.merge(mergeInput({ base: nextBase, crm: upsert(after.crm, 4), mailbox: upsert(after.mailbox, 4), exists: { crm: true, mailbox: true }, context: { mask } }))
        expect(again.writes).toEqual({})
      }),
      propConfig(250),
    )
  })

  test('commutativity: with symmetric policies (lww, text-merge, set-merge) swapping the sides swaps the result', () => {
    fc.assert(
      fc.property(scenarioArb(true), (s) => {
        const { merge, states, input } = setup(s)
        const after = applyDecision(merge.merge(input), states)
        const swapped = applyDecision(merge.merge(swap(input)), { crm: states.mailbox, mailbox: states.crm })
        expect({ crm: swapped.mailbox, mailbox: swapped.crm }).toEqual(after)
      }),
      propConfig(150),
    )
  })
})

describe('building-block properties', () => {
  const textArb = fc.array(fc.constantFrom('a', 'bb', ' ', '\n', '.', 'Ünï', 'x y'), { maxLength: 12 }).map((parts) => parts.join(''))
  test('the word diff always reproduces the target', () => {
    fc.assert(
      fc.property(textArb, textArb, (a, b) => {
        expect(applyEdits(a, diffText(a, b))).toBe(b)
      }),
      propConfig(300),
    )
  })

  test('text merge: a one-sided edit is taken as is, and the result is symmetric', () => {
    fc.assert(
      fc.property(textArb, textArb, textArb, (base, a, b) => {
        expect(mergeText(base, a, base)).toBe(a)
        expect(mergeText(base, a, b)).toBe(mergeText(base, b, a))
      }),
      propConfig(100),
    )
  })

  test('the Automerge set merge and the plain set merge agree (attendees with names)', () => {
    const attendee = fc.record({ address: fc.constantFrom('a@x', 'A@x', 'b@x', 'c@x'), name: fc.constantFrom('Ann', 'Bob') }, { requiredKeys: ['address'] })
    const list = fc.option(fc.array(attendee, { maxLength: 4 }), { nil: null })
    fc.assert(
      fc.property(list, list, list, (base, crm, mailbox) => {
        const plain = mergeSetsPlain(base, crm, mailbox)
        expect(mergeSetsAutomerge(base, crm, mailbox)).toEqual(plain)
        expect(mergeSetsPlain(base, mailbox, crm)).toEqual(plain)
      }),
      propConfig(25),
    )
  })
})
