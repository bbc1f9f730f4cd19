import { expect, test } from 'vitest'
import { Stats } from './faults.js'

test('the request log keeps the newest entries, oldest first', () => {
  const s = new Stats(10)
  for (let i = 0; i < 25; i++) {
    s.record({ at: String(i), method: 'GET', path: `p${i}`, status: i % 2 ? 200 : 429, mailbox: 'a@x.test', inBatch: false }, i % 2 === 0, 1)
  }
  expect(s.entries().map((e) => e.path)).toEqual(Array.from({ length: 10 }, (_, i) => `p${i + 15}`))
  expect(s.total).toBe(25)
  expect(s.byMailbox.get('a@x.test')).toMatchObject({ requests: 25, throttled: 13, byStatus: { '200': 12, '429': 13 } })
})
