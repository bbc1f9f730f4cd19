import fc from 'fast-check'
import { expect, test } from 'vitest'
import { IndexedMinHeap } from './heap.js'

test('pops handles in key order with deterministic ties, supports re-key and delete', () => {
  const h = new IndexedMinHeap(2)
  h.set(3, 30)
  h.set(1, 10)
  h.set(2, 10)
  h.set(7, 5)
  h.set(7, 40) // re-key up
  h.set(3, 1) // re-key down
  h.delete(2)
  expect(h.size).toBe(3)
  expect(h.keyOf(7)).toBe(40)
  expect([h.pop(), h.pop(), h.pop(), h.pop()]).toEqual([3, 1, 7, -1])
})

test('matches a sorted model under random operations', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('set', 'delete', 'pop'), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 50 })), { maxLength: 300 }),
      (ops) => {
        const heap = new IndexedMinHeap(1)
        const model = new Map<number, number>()
        for (const [op, handle, key] of ops) {
          if (op === 'set') {
            heap.set(handle, key)
            model.set(handle, key)
          } else if (op === 'delete') {
            heap.delete(handle)
            model.delete(handle)
          } else {
            const best = [...model].sort((a, b) => a[1] - b[1] || a[0] - b[0])[0]
            expect(heap.pop()).toBe(best ? best[0] : -1)
            if (best) model.delete(best[0])
          }
          expect(heap.size).toBe(model.size)
        }
      },
    ),
    { seed: 7 },
  )
})
