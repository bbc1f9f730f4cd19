import { expect, test } from 'vitest'
import { settlesWithin } from './deadline.js'

test('settlesWithin: true when the work resolves or rejects in time, false when it hangs', async () => {
  expect(await settlesWithin(Promise.resolve(1), 1_000)).toBe(true)
  expect(await settlesWithin(Promise.reject(new Error('refused')), 1_000)).toBe(true)
  expect(await settlesWithin(new Promise(() => {}), 20)).toBe(false)
})
