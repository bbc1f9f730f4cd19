import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson, cloneJson, jsonEqual } from './canonical-json.js'
import { deepFreeze } from './deep-freeze.js'

describe('jsonEqual', () => {
  it('agrees with comparing canonical JSON for JSON values', () => {
    const value = fc.jsonValue({ maxDepth: 3 })
    fc.assert(fc.property(value, value, (a, b) => jsonEqual(a, b) === (canonicalJson(a) === canonicalJson(b))))
    fc.assert(fc.property(value, (a) => jsonEqual(a, JSON.parse(JSON.stringify(a)) as unknown)))
  })

  it('ignores key order and undefined members, and tells arrays from objects', () => {
    expect(jsonEqual({ a: 1, b: [1, { c: 'x' }] }, { b: [1, { c: 'x' }], a: 1 })).toBe(true)
    expect(jsonEqual({ a: 1, b: undefined }, { a: 1 })).toBe(true)
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false)
    expect(jsonEqual([], {})).toBe(false)
    expect(jsonEqual([1, 2], [2, 1])).toBe(false)
    expect(jsonEqual('1', 1)).toBe(false)
  })
})

describe('cloneJson', () => {
  it('copies deeply', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 3 }), (a) => canonicalJson(cloneJson(a)) === canonicalJson(a)))
    const original = { to: [{ address: 'a@b.test' }], n: 1 }
    const copy = cloneJson(original)
    copy.to[0]!.address = 'changed'
    expect(original.to[0]!.address).toBe('a@b.test')
  })

  it('hands a frozen value out as it is: frozen means frozen all the way down, so nobody can change it', () => {
    const frozen = deepFreeze({ to: [{ address: 'a@b.test' }], n: 1 })
    expect(cloneJson(frozen)).toBe(frozen)
    const holder = { kept: frozen, own: [1] }
    const copy = cloneJson(holder)
    expect(copy).not.toBe(holder)
    expect(copy.kept).toBe(frozen)
    expect(copy.own).not.toBe(holder.own)
  })

  it('keeps a "__proto__" member as data, as JSON.parse made it (a hostile payload sets no prototype)', () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>
    const copy = cloneJson(parsed)
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype)
    expect(Object.prototype.hasOwnProperty.call(copy, '__proto__')).toBe(true)
    expect((copy as { polluted?: unknown }).polluted).toBeUndefined()
    expect(canonicalJson(copy)).toBe(canonicalJson(parsed))
    expect(jsonEqual(copy, parsed)).toBe(true)
  })
})
