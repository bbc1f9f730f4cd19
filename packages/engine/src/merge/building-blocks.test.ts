import { describe, expect, test } from 'vitest'
import { ValidationError } from '../errors.js'
import { evaluateDeletionGuard } from './deletion-guard.js'
import { evaluateFilter, parseSyncFilters } from './filters.js'
import { HybridLogicalClock, compareHlc, decodeHlc, encodeHlc } from './hlc.js'
import { mergeSetsAutomerge, mergeSetsPlain } from './set-merge.js'
import { applyEdits, diffText } from './text-diff.js'
import { mergeText, mergeTexts } from './text-merge.js'

describe('hybrid logical clock', () => {
  test('monotonic under a clock that stands still or goes back, and after receiving a remote stamp', () => {
    let wall = 100
    const clock = new HybridLogicalClock('a', () => wall)
    const t1 = clock.now()
    const t2 = clock.now()
    wall = 50
    const t3 = clock.now()
    expect(compareHlc(t1, t2)).toBe(-1)
    expect(compareHlc(t2, t3)).toBe(-1)
    const remote = { wall: 500, logical: 7, node: 'b' }
    const t4 = clock.receive(remote)
    expect(compareHlc(remote, t4)).toBe(-1)
    expect(compareHlc(t4, clock.now())).toBe(-1)
  })
  test('encoding sorts like the clock and round-trips; a bad stamp is a ValidationError', () => {
    const a = { wall: 9, logical: 10, node: 'x' }
    const b = { wall: 10, logical: 0, node: 'a' }
    expect(encodeHlc(a) < encodeHlc(b)).toBe(true)
    expect(decodeHlc(encodeHlc(a))).toEqual(a)
    expect(() => decodeHlc('yesterday')).toThrow(ValidationError)
  })
})

describe('text merge', () => {
  test('the word diff reproduces the target', () => {
    for (const [a, b] of [['', 'x'], ['x', ''], ['a b c', 'a c d'], ['Hello, world!', 'Hello brave new world?']]) expect(applyEdits(a!, diffText(a!, b!))).toBe(b)
  })
  test('concurrent edits in different places are both kept; a batch equals single merges', () => {
    const base = 'Line one.\nLine two.\nLine three.'
    const jobs = [
      { base, crm: base.replace('one', 'ONE'), mailbox: base.replace('three', 'THREE') },
      { base: 'abc', crm: 'abc', mailbox: 'abd' },
      { base: 'x y', crm: 'x y z', mailbox: 'w x y' },
    ]
    expect(mergeTexts(jobs)).toEqual(['Line ONE.\nLine two.\nLine THREE.', 'abd', 'w x y z'])
    expect(jobs.map((j) => mergeText(j.base, j.crm, j.mailbox))).toEqual(mergeTexts(jobs))
  })
  test('deterministic and symmetric for overlapping inserts', () => {
    expect(mergeText('a', 'a left', 'a right')).toBe(mergeText('a', 'a right', 'a left'))
  })
})

describe('set merge', () => {
  test('adds from both, removals win over unchanged, an update wins over a removal', () => {
    expect(mergeSetsPlain(['a', 'b', 'c'], ['a', 'b', 'x'], ['b', 'c', 'y'])).toEqual(['b', 'x', 'y'])
    expect(mergeSetsPlain([{ address: 'a@x', name: 'A' }], [], [{ address: 'A@x', name: 'Ann' }])).toEqual([{ address: 'A@x', name: 'Ann' }])
  })
  test('Automerge and the plain merge agree', () => {
    const cases: Array<[unknown[] | null, unknown[] | null, unknown[] | null]> = [
      [['a', 'b', 'c'], ['a', 'b', 'x'], ['b', 'c', 'y']],
      [null, ['a'], ['b']],
      [[{ address: 'a@x', name: '1' }], [{ address: 'a@x', name: '2' }], [{ address: 'a@x', name: '3' }]],
      [['a'], [], null],
    ]
    for (const [b, c, m] of cases) expect(mergeSetsAutomerge(b, c, m)).toEqual(mergeSetsPlain(b, c, m))
  })
})

describe('filters', () => {
  test('conditions compose and compare', () => {
    const subject = { kind: 'contact' as const, fields: { jobTitle: 'Buyer', categories: ['VIP'] }, meta: { ownerId: 'u1', state: 'active' }, user: { id: 'u1' } }
    expect(evaluateFilter({ all: [{ owner: 'me' }, { field: 'jobTitle', op: 'in', value: ['Buyer', 'CEO'] }] }, subject)).toBe(true)
    expect(evaluateFilter({ any: [{ field: 'categories', op: 'contains', value: 'VIP' }, { state: { in: ['inactive'] } }] }, subject)).toBe(true)
    expect(evaluateFilter({ not: { field: 'surname', op: 'empty' } }, subject)).toBe(false)
  })
  test('parse errors name the path', () => {
    expect(() => parseSyncFilters({ task: { all: [{ field: 'subject', op: 'like', value: 'x' }] } })).toThrow(/task/)
    expect(() => parseSyncFilters({ email: { owner: 'me' } })).toThrow(/email/)
  })
})

describe('mass-deletion guard', () => {
  test.each([
    [1000, 49, 'allow'],
    [1000, 200, 'allow'],
    [1000, 201, 'hold'],
    [100, 50, 'hold'],
    [0, 50, 'hold'],
    [10, 10, 'allow'],
  ] as const)('%i items, %i deletes → %s', (replicaItemCount, deletes, action) => {
    expect(evaluateDeletionGuard({ replicaItemCount, deletes, threshold: { share: 0.2, min: 50 } }).action).toBe(action)
  })
  test('breaks the deletes down by provenance; a bad threshold names the key', () => {
    const result = evaluateDeletionGuard({ replicaItemCount: 60, deletes: [...Array(55).fill({ provenance: 'left-filter' }), { provenance: 'user-deleted' }] })
    expect(result).toMatchObject({ action: 'hold', deletes: 56, byProvenance: { 'left-filter': 55, 'user-deleted': 1 } })
    expect(result.reason).toMatch(/held/)
    expect(() => evaluateDeletionGuard({ replicaItemCount: 1, deletes: 1, threshold: { share: 2, min: 1 } })).toThrow(/share/)
  })
})
