import { expect, test } from 'vitest'
import { assignShards, shardOf, shardsFor } from './shards.js'

test('a mailbox always lands in the same shard, and shards spread the mailboxes', () => {
  expect(shardOf('mailbox-1', 64)).toBe(shardOf('mailbox-1', 64))
  const counts = new Array<number>(16).fill(0)
  for (let i = 0; i < 16_000; i++) counts[shardOf(`mailbox-${i}`, 16)]!++
  for (const c of counts) expect(c).toBeGreaterThan(800) // 1,000 each on average
})

test('every instance computes the same balanced assignment from the member list', () => {
  const members = ['i-1', 'i-2', 'i-3']
  const a = assignShards(members, 64)
  expect(assignShards([...members].reverse().sort(), 64)).toEqual(a)
  const load = new Map<string, number>()
  for (const owner of a.values()) load.set(owner, (load.get(owner) ?? 0) + 1)
  expect([...load.values()].every((n) => n <= Math.ceil(64 / 3))).toBe(true)
  expect(members.flatMap((m) => shardsFor(m, members, 64)).sort((x, y) => x - y)).toEqual([...Array(64).keys()])
})

test('a join or a leave moves few shards, not the whole map', () => {
  const before = assignShards(['i-1', 'i-2', 'i-3'], 64)
  const joined = assignShards(['i-1', 'i-2', 'i-3', 'i-4'], 64)
  const movedOnJoin = [...before].filter(([s, m]) => joined.get(s) !== m).length
  expect(movedOnJoin).toBeLessThanOrEqual(32) // the newcomer's fair share is 16; bounded load adds some churn
  const left = assignShards(['i-1', 'i-3'], 64)
  const movedOnLeave = [...before].filter(([s, m]) => m !== 'i-2' && left.get(s) !== m).length
  expect(movedOnLeave).toBeLessThanOrEqual(16) // survivors keep most of what they had
  expect(assignShards([], 8).size).toBe(0)
})
