import fc from 'fast-check'
import { expect, test } from 'vitest'
import { DiurnalProfile, lowerBoundFrom } from './estimator.js'

const MIN = 60_000
const opts = { profileSlotMs: 30 * MIN, profilePeriodMs: 24 * 60 * MIN, profileOriginMs: 0, profileDecay: 0.5 }

/** One day of 20 mailboxes observed every 5 minutes: 10 changes per poll 12:00–13:00, 1 otherwise. */
function learn(profileShrinkSlots: number): DiurnalProfile {
  const p = new DiurnalProfile({ ...opts, profileShrinkSlots })
  for (let t = 5 * MIN; t <= 24 * 60 * MIN; t += 5 * MIN) {
    for (let m = 0; m < 20; m++) p.observe(t, t > 12 * 60 * MIN && t <= 13 * 60 * MIN ? 10 : 1, 5 * MIN)
  }
  p.recompute()
  return p
}

test('the learned profile keeps its shape with little shrinkage and flattens with a lot', () => {
  const sharp = learn(2)
  const flat = learn(200)
  const peak = 12.5 * 60 * MIN
  const night = 3 * 60 * MIN
  // true ratio peak/night is 10; 20 mailboxes × 30 min of exposure per slot against 2 mailbox-slots of prior
  expect(sharp.at(peak) / sharp.at(night)).toBeGreaterThan(8)
  expect(flat.at(peak) / flat.at(night)).toBeLessThan(sharp.at(peak) / sharp.at(night))
  // mean 1 over the period either way
  const mean = (p: DiurnalProfile) => p.values().reduce((a, b) => a + b, 0) / p.slots
  expect(mean(sharp)).toBeCloseTo(1, 9)
  expect(mean(flat)).toBeCloseTo(1, 9)
})

test('the shrinkage is a config option with a default of 2 mailbox-slots', async () => {
  const { AdaptiveOptionsSchema } = await import('./config.js')
  expect(AdaptiveOptionsSchema.parse({}).profileShrinkSlots).toBe(2)
  expect(AdaptiveOptionsSchema.safeParse({ profileShrinkSlots: -1 }).success).toBe(false)
})

test('lowerBoundFrom finds the first index not below x from any hint (sorted arrays with ties)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 60 }), fc.integer({ min: -1, max: 21 }), fc.nat(70), (values, x, hint) => {
      const a = Float64Array.from(values).sort()
      const expected = a.findIndex((v) => !(v < x))
      expect(lowerBoundFrom(a, x, Math.min(hint, a.length))).toBe(expected < 0 ? a.length : expected)
    }),
    { seed: 11 },
  )
})
