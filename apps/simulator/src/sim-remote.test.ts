import { ThrottledError, asReplicaId } from '@concord/engine'
import { expect, test } from 'vitest'
import { SimAdapter, SimRemote } from './sim-remote.js'

test('the virtual-time request window answers 429 with Retry-After until requests age out', async () => {
  let now = 0
  const remote = new SimRemote('mbx', () => now)
  const adapter = new SimAdapter(asReplicaId('m'), remote, () => now, { requestsPerWindow: 2, windowMs: 60_000 }, { seed: 1 })
  await adapter.pull(null, { limit: 10 })
  now = 10_000
  await adapter.pull(null, { limit: 10 })
  now = 20_000
  const error = await adapter.pull(null, { limit: 10 }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ThrottledError)
  expect((error as ThrottledError).retryAfterMs).toBe(40_000)
  expect(adapter.throttled).toBe(1)
  now = 60_001
  await expect(adapter.pull(null, { limit: 10 })).resolves.toMatchObject({ hasMore: false })
  expect(adapter.calls).toBe(3)
  expect(adapter.tokenRefreshes).toBe(1) // one OAuth token lasts an hour
})

test('SimRemote finds pushed records by their stamped Concord id, also after a move', () => {
  const remote = new SimRemote('mbx')
  const id = remote.create('email', { subject: 'x' }, 'c_1' as never)
  expect(remote.findByConcordId('c_1' as never)?.nativeId).toBe(id)
  const moved = remote.move(id)
  expect(moved).not.toBe(id)
  expect(remote.findByConcordId('c_1' as never)?.nativeId).toBe(moved)
  expect(remote.findByConcordId('c_2' as never)).toBeUndefined()
})
