import { ValidationError } from '@concord/engine'
import { expect, test } from 'vitest'
import { SendBudget } from './send-budget.js'

test('30 messages per rolling minute: the 31st waits until the oldest leaves the window', () => {
  let now = 0
  const b = new SendBudget({}, () => now)
  for (let i = 0; i < 30; i++) {
    expect(b.reserve(1).ok).toBe(true)
    now += 1000
  }
  const r = b.reserve(1)
  expect(r).toEqual({ ok: false, reason: 'messagesPerMinute', retryAfterMs: 30_000 })
  now = 60_001
  expect(b.reserve(1).ok).toBe(true)
  expect(b.usage().messagesLastMinute).toBe(30)
})

test('10,000 recipients per rolling day; release gives a reservation back', () => {
  let now = 0
  const b = new SendBudget({ messagesPerMinute: 1000 }, () => now)
  const first = b.reserve(6000)
  expect(first.ok).toBe(true)
  now = 3_600_000
  expect(b.reserve(4000).ok).toBe(true)
  now = 7_200_000
  const over = b.reserve(1)
  expect(over).toEqual({ ok: false, reason: 'recipientsPerDay', retryAfterMs: 86_400_000 - 7_200_000 })
  const r = b.reserve(1)
  expect(r.ok).toBe(false)
  now = 86_400_001
  const after = b.reserve(5000)
  expect(after.ok).toBe(true)
  if (after.ok) after.release()
  expect(b.usage()).toEqual({ messagesLastMinute: 0, recipientsLastDay: 4000 })
})

test('bad limits and impossible messages are ValidationErrors', () => {
  expect(() => new SendBudget({ messagesPerMinute: 0 })).toThrow(ValidationError)
  const b = new SendBudget({ recipientsPerDay: 10 })
  expect(() => b.reserve(11)).toThrow(/exceeds the daily limit/)
  expect(() => b.reserve(0)).toThrow(/positive integer/)
})
