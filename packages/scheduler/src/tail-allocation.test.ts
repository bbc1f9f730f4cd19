import { expect, test } from 'vitest'
import { pollRate, solveTailThreshold, tailPriority, type TailSlot } from './tail-allocation.js'

const MIN = 60_000
const iv = { tailMs: 3 * MIN, floorMs: 12 * MIN }

test('pollRate: 1/T without notifications, fewer polls the more often notified syncs pre-empt them', () => {
  expect(pollRate(0, 3 * MIN)).toBeCloseTo(1 / (3 * MIN), 15)
  const nu = 1 / (2 * MIN)
  expect(pollRate(nu, 3 * MIN)).toBeCloseTo(nu / Math.expm1(1.5), 15)
  expect(pollRate(nu, 3 * MIN)).toBeLessThan(pollRate(nu / 4, 3 * MIN))
  expect(pollRate(nu / 4, 3 * MIN)).toBeLessThan(1 / (3 * MIN))
})

test('tailPriority: uncovered changes per extra request; an upgrade costs less where notified syncs pre-empt polls', () => {
  const u = 1 / (60 * MIN)
  expect(tailPriority(0, 0, 1, iv)).toBe(0)
  expect(tailPriority(u, 0, 1, iv)).toBeCloseTo(u / (1 / (3 * MIN) - 1 / (12 * MIN)), 12)
  expect(tailPriority(u, 0, 2, iv)).toBeCloseTo(tailPriority(u, 0, 1, iv) / 2, 12)
  expect(tailPriority(u, 1 / MIN, 1, iv)).toBeGreaterThan(tailPriority(u, 0, 1, iv))
})

test('solveTailThreshold polls the mailboxes with the most uncovered changes per request at the tail interval, the rest at the floor', () => {
  // four mailboxes, no notified syncs, one slot of an hour: the floor costs 4 × 5 polls, each upgrade 15 more
  const slot: TailSlot = { dur: 60 * MIN, uncovered: Float64Array.from([4, 1, 3, 2].map((x) => x / (60 * MIN))), notified: new Float64Array(4) }
  const cost = Float64Array.from([1, 1, 1, 1])
  const selected = (theta: number) => [0, 1, 2, 3].filter((i) => tailPriority(slot.uncovered[i]!, 0, 1, iv) >= theta)
  // room for two upgrades (and a bit): the two with the most uncovered changes, not a √-rate spread over all four
  const theta = solveTailThreshold([slot], cost, 20 + 2 * 15 + 5, iv)
  expect(selected(theta)).toEqual([0, 2])
  // never more than the budget
  const spend = (th: number) => [0, 1, 2, 3].reduce((s, i) => s + 60 * (selected(th).includes(i) ? 1 / 3 : 1 / 12), 0)
  expect(spend(theta)).toBeLessThanOrEqual(20 + 2 * 15 + 5 + 1e-9)
  // not even the floor fits: nobody; everything fits: everybody with uncovered changes
  expect(solveTailThreshold([slot], cost, 19, iv)).toBe(Infinity)
  expect(selected(solveTailThreshold([slot], cost, 1e6, iv))).toEqual([0, 1, 2, 3])
})

test('solveTailThreshold ranks mailbox-slots: a mailbox is polled in the slots where it loses the most changes', () => {
  const cost = Float64Array.from([1, 1])
  const day: TailSlot = { dur: 60 * MIN, uncovered: Float64Array.from([6, 1].map((x) => x / (60 * MIN))), notified: new Float64Array(2) }
  const night: TailSlot = { dur: 60 * MIN, uncovered: Float64Array.from([0.5, 2].map((x) => x / (60 * MIN))), notified: new Float64Array(2) }
  // floor: 2 mailboxes × 2 slots × 5 polls = 20; room for two upgrades of 15
  const theta = solveTailThreshold([day, night], cost, 20 + 30 + 1, iv)
  const on = (s: TailSlot, i: number) => tailPriority(s.uncovered[i]!, 0, 1, iv) >= theta
  expect([on(day, 0), on(day, 1), on(night, 0), on(night, 1)]).toEqual([true, false, false, true])
})
