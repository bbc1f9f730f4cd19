import { describe, expect, it } from 'vitest'
import { deepFreeze, sharedIfSame, sharedOrCopy } from './deep-freeze.js'

describe('deepFreeze', () => {
  it('freezes a value and everything in it, in place, and returns it', () => {
    const value = { subject: 's', to: [{ address: 'a@b.test', name: 'A' }], nested: { deeper: { n: 1 } } }
    expect(deepFreeze(value)).toBe(value)
    expect(Object.isFrozen(value)).toBe(true)
    expect(Object.isFrozen(value.to)).toBe(true)
    expect(Object.isFrozen(value.to[0])).toBe(true)
    expect(Object.isFrozen(value.nested.deeper)).toBe(true)
    expect(() => {
      ;(value.to[0] as { address: string }).address = 'x'
    }).toThrow(TypeError)
  })

  it('takes primitives, null and undefined as they are', () => {
    expect(deepFreeze(1)).toBe(1)
    expect(deepFreeze('s')).toBe('s')
    expect(deepFreeze(null)).toBe(null)
    expect(deepFreeze(undefined)).toBe(undefined)
  })

  it('stops at a frozen object: Concord freezes only through here, so it is frozen all the way down', () => {
    const shared = deepFreeze({ to: [{ address: 'a@b.test' }] })
    const holder = { shared, own: [{ n: 1 }] }
    deepFreeze(holder)
    expect(holder.shared).toBe(shared)
    expect(Object.isFrozen(holder.own[0])).toBe(true)
  })
})

describe('sharedIfSame', () => {
  const to = deepFreeze([{ address: 'a@b.test' }])
  const source = deepFreeze({ subject: 's', to })

  it('gives the frozen source when the built record holds exactly its members, in its order', () => {
    expect(sharedIfSame({ subject: 's', to }, source)).toBe(source)
  })

  it('gives the built record when anything differs: a value (even an equal copy), a member, the order, an unfrozen source', () => {
    const copy = { subject: 's', to: [{ address: 'a@b.test' }] }
    expect(sharedIfSame(copy, source)).toBe(copy)
    const more = { subject: 's', to, body: 'b' }
    expect(sharedIfSame(more, source)).toBe(more)
    const fewer = { subject: 's' }
    expect(sharedIfSame(fewer as typeof source, source)).toBe(fewer)
    const reordered = { to, subject: 's' }
    expect(sharedIfSame(reordered, source)).toBe(reordered)
    const built = { subject: 's', to }
    expect(sharedIfSame(built, { subject: 's', to })).toBe(built)
    expect(sharedIfSame(built, undefined)).toBe(built)
  })
})

describe('sharedOrCopy', () => {
  it('gives a frozen record itself and an unfrozen one a shallow copy the caller owns', () => {
    const frozen = deepFreeze({ subject: 's' })
    expect(sharedOrCopy(frozen)).toBe(frozen)
    const mine: Record<string, unknown> = { subject: 's', to: [] }
    const copy = sharedOrCopy(mine)
    expect(copy).not.toBe(mine)
    expect(copy).toEqual(mine)
    expect(copy.to).toBe(mine.to)
  })
})
