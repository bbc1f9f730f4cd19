import { describe, expect, it } from 'vitest'
import { KnownKeys } from './known-keys.js'

const key = (i: number) => `v1!r!crm-mbx-${i}!snap!crm-mbx-${i * 7919}`

describe('KnownKeys', () => {
  it('never forgets a key it was given, however far it grows past its first layer', () => {
    const known = KnownKeys.empty(1000) // first layer: 4,096 keys; 100,000 keys take six layers
    for (let i = 0; i < 100_000; i++) known.add(key(i))
    for (let i = 0; i < 100_000; i++) if (!known.mayHave(key(i))) expect.fail(`forgot ${key(i)}`)
  })

  it('answers "absent" for nearly every key it was not given (false positives about 1 % at most, all layers together)', () => {
    const known = KnownKeys.empty(4096)
    for (let i = 0; i < 100_000; i++) known.add(key(i))
    let falsePositives = 0
    for (let i = 100_000; i < 200_000; i++) if (known.mayHave(key(i))) falsePositives++
    expect(falsePositives / 100_000).toBeLessThan(0.015)
  })

  it('a copy, or one rebuilt from its structured-cloned data, knows the same keys and then grows on its own', () => {
    const known = KnownKeys.empty(4096)
    for (let i = 0; i < 10_000; i++) known.add(key(i))
    for (const other of [known.copy(), KnownKeys.fromData(structuredClone(known.toData()))]) {
      for (let i = 0; i < 10_000; i++) if (!other.mayHave(key(i))) expect.fail(`the copy forgot ${key(i)}`)
      other.add('only in the copy')
      expect(other.mayHave('only in the copy')).toBe(true)
      expect(known.mayHave('only in the copy')).toBe(false)
    }
  })
})
