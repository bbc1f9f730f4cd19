import { expect, test } from 'vitest'
import { createScheduler, mulberry32, SchedulerConfigError, SchedulerError, solveSqrtAllocation, type DueSync, type Scheduler } from './index.js'

const S = 1000
const MIN = 60 * S
const DAY = 24 * 60 * MIN

/** Drive `s` until `until` with instant syncs; `changes(id, t)` says what each sync finds. Returns dispatch times per mailbox. */
function drive(s: Scheduler, until: number, changes: (id: string, t: number) => number = () => 0): Map<string, number[]> {
  const seen = new Map<string, number[]>()
  let t = s.nextWakeAt()
  while (t !== null && t <= until) {
    for (const d of s.due(t)) {
      const list = seen.get(d.mailboxId) ?? []
      list.push(t)
      seen.set(d.mailboxId, list)
      s.recordPoll(d.mailboxId, { at: t, changes: changes(d.mailboxId, t) })
    }
    t = s.nextWakeAt()
  }
  return seen
}

const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - (xs[i] as number))

/**
 * Drive `s` until `until` with instant syncs while each of `changing` changes every `everyMs`, notified unless
 * `lost()`; every sync reports the changes of its mailbox since its previous sync, and `onSync` sees it first.
 */
function driveNotified(s: Scheduler, o: { changing: readonly string[]; everyMs: number; until: number; lost: () => boolean; onSync?: (d: DueSync, t: number) => void }): void {
  const pending = new Map<string, number>()
  let nextChange = o.everyMs
  let t = 0
  while (t <= o.until) {
    const wake = s.nextWakeAt() ?? Infinity
    if (nextChange <= wake) {
      t = nextChange
      for (const id of o.changing) {
        pending.set(id, (pending.get(id) ?? 0) + 1)
        if (!o.lost()) s.recordNotification(id, t)
      }
      nextChange += o.everyMs
      continue
    }
    t = wake
    for (const d of s.due(t)) {
      o.onSync?.(d, t)
      s.recordPoll(d.mailboxId, { at: t, changes: pending.get(d.mailboxId) ?? 0 })
      pending.set(d.mailboxId, 0)
    }
  }
}

test('fixed:15 polls every 15 minutes and ignores notifications', () => {
  const s = createScheduler({ policy: 'fixed:15' })
  s.addMailbox('alice', 0, { firstSyncAt: 0 })
  s.recordNotification('alice', 0)
  const times = drive(s, 2 * 60 * MIN).get('alice') ?? []
  expect(times).toEqual([0, 15, 30, 45, 60, 75, 90, 105, 120].map((m) => m * MIN))
  expect(s.explain('alice').some((e) => e.event === 'ignored' && e.reason === 'notification')).toBe(true)
  const fresh = createScheduler({ policy: 'fixed:15' })
  fresh.addMailbox('bob', 0)
  fresh.recordNotification('bob', 1)
  expect(fresh.explain('bob').at(-1)).toMatchObject({ event: 'ignored', reason: 'notification' })
  expect(fresh.mailbox('bob').dueAt).toBeLessThanOrEqual(15 * MIN)
})

test('fixed cadence counts from the start of a sync, even when the sync is slow', () => {
  const s = createScheduler({ policy: 'fixed:5' })
  s.addMailbox('alice', 0, { firstSyncAt: 0 })
  expect(s.due(0).map((d) => d.reason)).toEqual(['initial'])
  s.recordPoll('alice', { at: 40 * S, changes: 3 })
  expect(s.nextWakeAt()).toBe(5 * MIN)
  expect(s.due(5 * MIN)).toEqual([{ mailboxId: 'alice', at: 5 * MIN, reason: 'fixed-interval', requests: 1, pullCrm: true, slot: 0 }])
})

test('sss: 5 min typical, 2 min when busy, 12 min once idle, computed when the cycle ends', () => {
  const s = createScheduler({ policy: 'sss' })
  s.addMailbox('alice', 0, { firstSyncAt: 0 })
  const cycle = (changes: number) => {
    const t = s.nextWakeAt() as number
    const [d] = s.due(t)
    expect(d?.mailboxId).toBe('alice')
    const end = t + 20 * S // a 20 s cycle
    s.recordPoll('alice', { at: end, changes })
    return { reason: s.mailbox('alice').reason, wait: (s.nextWakeAt() as number) - end }
  }
  expect(cycle(3)).toEqual({ reason: 'sss-typical', wait: 5 * MIN })
  expect(cycle(25)).toEqual({ reason: 'sss-busy', wait: 2 * MIN })
  expect(cycle(0)).toEqual({ reason: 'sss-typical', wait: 5 * MIN })
  expect(cycle(0)).toEqual({ reason: 'sss-typical', wait: 5 * MIN })
  expect(cycle(0)).toEqual({ reason: 'sss-idle', wait: 12 * MIN })
  expect(cycle(0)).toEqual({ reason: 'sss-idle', wait: 12 * MIN })
  expect(cycle(12)).toEqual({ reason: 'sss-busy', wait: 2 * MIN })
  // never more than 12 minutes, and transient errors retry at 5 minutes
  const t = s.nextWakeAt() as number
  s.due(t)
  s.recordPoll('alice', { at: t, error: true })
  expect(s.nextWakeAt()).toBe(t + 5 * MIN)
  expect(s.mailbox('alice').reason).toBe('error-backoff')
})

test('solveSqrtAllocation spends the budget in proportion to √rate, clamped to [1/max, 1/min]', () => {
  const w = Float64Array.from([Math.sqrt(16), Math.sqrt(1), Math.sqrt(4)])
  const cost = Float64Array.from([1, 1, 1])
  const budget = 70 // polls over a horizon of 10 time units
  const y = solveSqrtAllocation([{ dur: 10, weights: w }], cost, budget, 0, Infinity)
  const f = Array.from(w, (x) => x * y)
  expect(f[0]! / f[1]!).toBeCloseTo(4, 6)
  expect(f[2]! / f[1]!).toBeCloseTo(2, 6)
  expect(10 * (f[0]! + f[1]! + f[2]!)).toBeCloseTo(budget, 6)
  // a floor of 1 poll per unit lifts the slow mailbox; the rest share what is left
  const y2 = solveSqrtAllocation([{ dur: 10, weights: w }], cost, budget, 1, Infinity)
  const f2 = Array.from(w, (x) => Math.max(1, x * y2))
  expect(10 * f2.reduce((a, b) => a + b, 0)).toBeCloseTo(budget, 6)
  expect(f2[1]).toBe(1)
  expect(f2[0]! / f2[2]!).toBeCloseTo(2, 6)
  // a floor above the budget → 0 (everyone at the floor; the hard limiter decides)
  expect(solveSqrtAllocation([{ dur: 10, weights: w }], cost, 20, 1, Infinity)).toBe(0)
})

test('adaptive allocates polls ∝ √rate under the budget', () => {
  // alice changes 16× as often as bob → ~4× the polls; 3 days, measured on the last
  const budget = { requestsPerWindow: 300, windowMs: DAY }
  const s = createScheduler({ policy: 'adaptive', budget, maxIntervalMs: 6 * 60 * MIN, random: mulberry32(3) })
  s.addMailbox('alice', 0)
  s.addMailbox('bob', 0)
  const rnd = mulberry32(11)
  const perMin: Record<string, number> = { alice: 400 / (24 * 60), bob: 25 / (24 * 60) }
  const last: Record<string, number> = { alice: 0, bob: 0 }
  const poisson = (mean: number) => {
    let k = 0
    let p = rnd()
    const l = Math.exp(-mean)
    while (p > l) {
      k++
      p *= rnd()
    }
    return k
  }
  const seen = drive(s, 3 * DAY, (id, t) => {
    const n = poisson((perMin[id] as number) * ((t - (last[id] as number)) / MIN))
    last[id] = t
    return n
  })
  const day3 = (id: string) => (seen.get(id) ?? []).filter((t) => t >= 2 * DAY).length
  const ratio = day3('alice') / day3('bob')
  expect(ratio).toBeGreaterThan(3)
  expect(ratio).toBeLessThan(5.5)
  expect(day3('alice') + day3('bob')).toBeLessThanOrEqual(300)
  expect(day3('alice') + day3('bob')).toBeGreaterThan(250) // the budget is actually used
  expect(s.stats().byReason['rate-allocation']).toBeGreaterThan(0)
})

test('adaptive keeps every mailbox at least once per 12 minutes, even with no changes and a tiny budget', () => {
  const s = createScheduler({ policy: 'adaptive', budget: { perMailboxRequestsPerWindow: 130, windowMs: DAY } })
  for (let i = 0; i < 20; i++) s.addMailbox(`m${i}`, 0)
  const seen = drive(s, DAY)
  for (const [, times] of seen) expect(Math.max(...gaps(times))).toBeLessThanOrEqual(12 * MIN)
  expect(s.stats().maxIntervalViolations).toBe(0)
  const st = s.stats()
  expect(st.budget?.usedInWindow).toBeLessThanOrEqual(st.budget?.limit ?? 0)
  expect(st.budget?.limit).toBe(20 * 130)
})

test('a change notification is synced after the debounce, and bursts coalesce', () => {
  const s = createScheduler({ policy: 'adaptive', debounceMs: 3 * S, notificationSpacingMs: 0 })
  s.addMailbox('alice', 0, { firstSyncAt: 0 })
  s.due(0)
  s.recordPoll('alice', { at: 1 * S, changes: 0 })
  s.recordNotification('alice', 100 * S)
  s.recordNotification('alice', 101 * S)
  s.recordNotification('alice', 102 * S)
  expect(s.nextWakeAt()).toBe(103 * S)
  expect(s.due(102.5 * S)).toEqual([])
  expect(s.due(103 * S)).toEqual([{ mailboxId: 'alice', at: 103 * S, reason: 'notification', requests: 1, pullCrm: true, slot: 0 }])
  // a notification while the sync is in flight → a follow-up sync right after it ends
  s.recordNotification('alice', 104 * S)
  s.recordPoll('alice', { at: 110 * S, changes: 1 })
  expect(s.nextWakeAt()).toBe(110 * S)
  expect(s.due(110 * S)[0]?.reason).toBe('notification-follow-up')
  expect(s.explain('alice').filter((e) => e.event === 'notified')).toHaveLength(4)
})

test('a notification soon after a sync waits until notificationSpacingMs after that sync started', () => {
  const s = createScheduler({ policy: 'adaptive', debounceMs: 3 * S, notificationSpacingMs: 90 * S })
  s.addMailbox('alice', 0, { firstSyncAt: 0 })
  s.due(0)
  s.recordPoll('alice', { at: 1 * S, changes: 0 })
  s.recordNotification('alice', 10 * S)
  expect(s.nextWakeAt()).toBe(90 * S)
  expect(s.due(90 * S)).toEqual([{ mailboxId: 'alice', at: 90 * S, reason: 'notification', requests: 1, pullCrm: true, slot: 0 }])
  // in flight: the follow-up is spaced from the start of the sync in flight
  s.recordNotification('alice', 95 * S)
  s.recordPoll('alice', { at: 100 * S, changes: 1 })
  expect(s.nextWakeAt()).toBe(180 * S)
  s.due(180 * S)
  s.recordPoll('alice', { at: 181 * S, changes: 1 })
  // long after the last sync only the debounce applies
  s.recordNotification('alice', 400 * S)
  expect(s.nextWakeAt()).toBe(403 * S)
})

test('429 with Retry-After is honoured (jittered, never earlier), without it the backoff grows', () => {
  const s = createScheduler({ policy: 'adaptive', jitter: 0.2, random: mulberry32(5) })
  s.addMailbox('alice', 0, { firstSyncAt: 0 })
  s.due(0)
  s.recordPoll('alice', { at: 2 * S, throttled: true, retryAfterMs: 30 * S })
  const next = s.nextWakeAt() as number
  expect(next).toBeGreaterThanOrEqual(32 * S)
  expect(next).toBeLessThanOrEqual(32 * S + 6 * S)
  // a notification cannot pull the sync before Retry-After
  s.recordNotification('alice', 3 * S)
  expect(s.nextWakeAt()).toBe(next)
  expect(s.explain('alice').find((e) => e.event === 'throttled')).toMatchObject({ reason: 'retry-after', dueAt: next })
  // no Retry-After: exponential (the 2nd consecutive 429 waits 4 s, then 8 s … with jitter in [0.5, 1])
  const waits: number[] = []
  let t = next
  for (let i = 0; i < 5; i++) {
    expect(s.due(t)).toHaveLength(1)
    s.recordPoll('alice', { at: t, throttled: true })
    const n = s.nextWakeAt() as number
    waits.push(n - t)
    t = n
  }
  waits.forEach((w, i) => {
    expect(w).toBeGreaterThanOrEqual(2 * S * 2 ** (i + 1) * 0.5)
    expect(w).toBeLessThanOrEqual(2 * S * 2 ** (i + 1))
  })
  expect(s.stats().throttled).toBe(6)
})

test('per-mailbox request window, global budget and CRM concurrency are never exceeded', () => {
  // per mailbox: 250 requests / 10 min, 100 per sync → the third sync in a window is deferred
  const s = createScheduler({ policy: 'fixed:1', limits: { mailbox: { requestsPerWindow: 250 } } })
  s.addMailbox('alice', 0, { firstSyncAt: 0, requestsPerSync: 100 })
  const seen = drive(s, 30 * MIN).get('alice') ?? []
  const inWindow = (end: number) => seen.filter((t) => t > end - 10 * MIN && t <= end).length * 100
  for (const t of seen) expect(inWindow(t)).toBeLessThanOrEqual(250)
  expect(s.stats().deferred.mailboxRate).toBeGreaterThan(0)
  expect(s.explain('alice').some((e) => e.event === 'deferred' && e.reason === 'limit-mailbox-rate')).toBe(true)

  // CRM: at most 2 syncs in flight at once
  const c = createScheduler({ policy: 'fixed:5', limits: { crm: { concurrency: 2 } } })
  for (const id of ['a', 'b', 'c', 'd']) c.addMailbox(id, 0, { firstSyncAt: 0 })
  const first = c.due(0)
  expect(first).toHaveLength(2)
  expect(c.stats().crmInFlight).toBe(2)
  expect(c.due(1 * S)).toEqual([])
  c.recordPoll(first[0]!.mailboxId, { at: 2 * S })
  expect(c.due(2 * S)).toHaveLength(1)
  expect(c.stats().deferred.concurrency).toBeGreaterThan(0)

  // global budget: 3 requests per 10 minutes across all mailboxes
  const b = createScheduler({ policy: 'fixed:1', budget: { requestsPerWindow: 3, windowMs: 10 * MIN } })
  b.addMailbox('x', 0, { firstSyncAt: 0 })
  b.addMailbox('y', 0, { firstSyncAt: 0 })
  const all = [...drive(b, 60 * MIN).values()].flat().sort((p, q) => p - q)
  for (const t of all) expect(all.filter((u) => u > t - 10 * MIN && u <= t).length).toBeLessThanOrEqual(3)
  expect(b.stats().deferred.budget).toBeGreaterThan(0)
})

test('mailboxes with pending CRM writes are synced promptly and go first when slots are scarce', () => {
  const s = createScheduler({ policy: 'adaptive', debounceMs: 2 * S, limits: { crm: { concurrency: 1 } } })
  s.addMailbox('alice', 0, { firstSyncAt: 10 * MIN })
  s.addMailbox('bob', 0, { firstSyncAt: 10 * MIN })
  s.setPendingCrmWrites('bob', 3, 60 * S)
  expect(s.nextWakeAt()).toBe(62 * S)
  expect(s.due(62 * S)[0]).toMatchObject({ mailboxId: 'bob', reason: 'pending-crm-writes' })
  s.recordPoll('bob', { at: 63 * S, changes: 0 })
  // both due at the same time, one slot: the one with pending writes wins
  s.setPendingCrmWrites('bob', 0, 64 * S)
  s.setPendingCrmWrites('alice', 2, 64 * S)
  const t = 10 * MIN
  const got = s.due(t)
  expect(got.map((d) => d.mailboxId)).toEqual(['alice'])
  expect(s.explain('bob').at(-1)).toMatchObject({ event: 'deferred', reason: 'limit-concurrency' })
})

test('the explanation log is a bounded ring, newest last', () => {
  const s = createScheduler({ policy: 'fixed:1', explainCapacity: 8 })
  s.addMailbox('alice', 0, { firstSyncAt: 0 })
  drive(s, 100 * MIN, () => 2)
  const log = s.explain('alice')
  expect(log).toHaveLength(8)
  expect(log.at(-1)).toMatchObject({ event: 'scheduled', reason: 'fixed-interval', dueAt: 101 * MIN })
  expect(log.filter((e) => e.event === 'completed').every((e) => e.value === 2)).toBe(true)
  const times = log.map((e) => e.at)
  expect([...times].sort((a, b) => a - b)).toEqual(times)
})

test('bad input gives clear errors and leaves the state intact', () => {
  expect(() => createScheduler({ policy: 'fixed:x' as never })).toThrow(SchedulerConfigError)
  expect(() => createScheduler({ policy: 'oracle' })).toThrow(/oracle/)
  try {
    createScheduler({ debounceMs: -5 })
  } catch (e) {
    expect(e).toBeInstanceOf(SchedulerConfigError)
    expect(String((e as Error).message)).toMatch(/debounceMs.*-5/)
  }
  const s = createScheduler()
  s.addMailbox('alice', 10)
  expect(() => s.addMailbox('alice', 10)).toThrow(expect.objectContaining({ code: 'DuplicateMailbox' }))
  expect(() => s.recordPoll('nobody', { at: 10 })).toThrow(expect.objectContaining({ code: 'UnknownMailbox' }))
  expect(() => s.due(5)).toThrow(expect.objectContaining({ code: 'TimeWentBackwards' }))
  expect(() => s.recordPoll('alice', { at: 20, changes: -1 })).toThrow(/changes.*-1/)
  expect(() => s.setPendingCrmWrites('alice', 1.5, 20)).toThrow(SchedulerError)
  expect(() => s.addMailbox('bob', 20, { parallelRequests: 9 })).toThrow(/parallelRequests 9/)
  expect(s.hasMailbox('bob')).toBe(false)
  expect(s.stats().mailboxes).toBe(1)
  s.removeMailbox('alice')
  expect(() => s.explain('alice')).toThrow(expect.objectContaining({ code: 'UnknownMailbox' }))
})

test('the 12-minute floor holds without a budget, even when syncs cost more than they reserve', () => {
  // no budget: the default is 288 syncs per mailbox per day; each sync reserves 2 requests but makes 5 (pages,
  // pushes), so the requests of the floor alone (120 syncs a day) exceed 288 × 2 — the floor still wins
  const s = createScheduler({ policy: 'adaptive', random: mulberry32(7) })
  for (let i = 0; i < 10; i++) s.addMailbox(`m${i}`, 0, { requestsPerSync: 2 })
  expect(s.stats().budget?.limit).toBe(10 * 288 * 2)
  const seen = new Map<string, number[]>()
  let t = s.nextWakeAt()
  while (t !== null && t <= 2 * DAY) {
    for (const d of s.due(t)) {
      seen.set(d.mailboxId, [...(seen.get(d.mailboxId) ?? []), t])
      s.recordPoll(d.mailboxId, { at: t, changes: 3, requests: 5 })
    }
    t = s.nextWakeAt()
  }
  for (const [, times] of seen) expect(Math.max(...gaps(times))).toBeLessThanOrEqual(12 * MIN + 1)
  expect(s.stats().maxIntervalViolations).toBe(0)
  expect(s.stats().budgetOverrun).toBeGreaterThan(0) // the floor went over the (too small) budget, and says so
})

test('notification syncs in the first hours cannot starve the floor later in the budget window', () => {
  // a budget that covers the floor with little to spare; a storm of notifications in the first 8 hours used to
  // spend the whole first window, so the floor stopped for the rest of the day (max staleness 44 min)
  const budget = { perMailboxRequestsPerWindow: 160, windowMs: DAY }
  const s = createScheduler({ policy: 'adaptive', budget, random: mulberry32(9) })
  const ids = ['a', 'b', 'c', 'd']
  for (const id of ids) s.addMailbox(id, 0)
  const dispatches: Array<{ id: string; at: number }> = []
  let nextNote = 0
  let t = 0
  while (t <= 2 * DAY) {
    const wake = s.nextWakeAt() ?? Infinity
    if (nextNote <= wake && nextNote < 8 * 60 * MIN) {
      for (const id of ids) s.recordNotification(id, nextNote)
      t = nextNote
      nextNote += 20 * S
      continue
    }
    t = wake
    if (t > 2 * DAY) break
    for (const d of s.due(t)) {
      dispatches.push({ id: d.mailboxId, at: t })
      s.recordPoll(d.mailboxId, { at: t, changes: 1 })
    }
  }
  for (const id of ids) {
    const times = dispatches.filter((d) => d.id === id).map((d) => d.at)
    expect(Math.max(...gaps(times))).toBeLessThanOrEqual(12 * MIN + 1)
  }
  expect(s.stats().maxIntervalViolations).toBe(0)
  // the reserve kept room for the floor: at most one floor round was dispatched over the (conservatively counted,
  // whole-bucket) window, and the exact windows below never exceed the budget
  expect(s.stats().budgetOverrun).toBeLessThanOrEqual(ids.length)
  // no window of a day holds more than the budget
  const limit = 160 * ids.length
  for (const d of dispatches) expect(dispatches.filter((x) => x.at > d.at - DAY && x.at <= d.at).length).toBeLessThanOrEqual(limit)
  expect(s.stats().byReason.notification ?? 0).toBeGreaterThan(0)
})

test('with notifications, polls go where changes are lost: fewer polls when notifications announce every change', () => {
  // one mailbox changing every 2 minutes; its notifications arrive for every change (loss 0) or for 70 % (loss 0.3)
  const pollsWithLoss = (loss: number) => {
    const s = createScheduler({ policy: 'adaptive', budget: { requestsPerWindow: 2000, windowMs: DAY }, random: mulberry32(3) })
    s.addMailbox('busy', 0)
    s.addMailbox('quiet', 0)
    const rnd = mulberry32(5)
    driveNotified(s, { changing: ['busy'], everyMs: 2 * MIN, until: 2 * DAY, lost: () => rnd() < loss })
    const by = s.stats().byReason
    return (by['rate-allocation'] ?? 0) + (by['max-interval'] ?? 0) + (by['min-interval'] ?? 0)
  }
  const none = pollsWithLoss(0)
  const some = pollsWithLoss(0.3)
  expect(some).toBeGreaterThan(none) // lost notifications → more safety-net polls
  expect(none).toBeGreaterThan(0) // …and polls never stop (the floor)
})

test('slot calls (dueSlots, recordPollSlot, recordNotificationSlot, setPendingCrmWritesSlot) make the same decisions as the id calls', () => {
  const make = () => {
    const s = createScheduler({ policy: 'adaptive', random: mulberry32(4) })
    for (let i = 0; i < 5; i++) s.addMailbox(`m${i}`, 0)
    return s
  }
  const a = make()
  const b = make()
  const log: string[][] = [[], []]
  const buf = new Int32Array(5)
  const ids = ['m0', 'm1', 'm2', 'm3', 'm4']
  for (let step = 0; step < 400; step++) {
    const t = Math.min(a.nextWakeAt() ?? Infinity, (step + 1) * 37 * S)
    if (step % 7 === 0) {
      a.recordNotification('m1', t)
      b.recordNotificationSlot(b.slotOf('m1'), t)
      a.setPendingCrmWrites('m2', step, t)
      b.setPendingCrmWritesSlot(b.slotOf('m2'), step, t)
    }
    for (const d of a.due(t)) {
      log[0]!.push(`${t} ${d.mailboxId}`)
      a.recordPoll(d.mailboxId, { at: t, changes: step % 3, requests: 2 })
    }
    const n = b.dueSlots(t, buf)
    for (let i = 0; i < n; i++) {
      log[1]!.push(`${t} ${ids[buf[i]!]}`)
      b.recordPollSlot(buf[i]!, t, step % 3, 2)
    }
  }
  expect(log[1]).toEqual(log[0])
  expect(log[0]!.length).toBeGreaterThan(20)
  expect(() => b.recordPollSlot(99, 1e9, 0, 1)).toThrow(expect.objectContaining({ code: 'UnknownMailbox' }))
})

test('the floor leaves time for the sync itself: a change is applied within 12 minutes', () => {
  const s = createScheduler({ policy: 'adaptive', random: mulberry32(2) })
  s.addMailbox('slow', 0, { firstSyncAt: 0 })
  const starts: number[] = []
  let t = s.nextWakeAt()
  while (t !== null && t <= 6 * 60 * MIN) {
    for (const d of s.due(t)) {
      starts.push(t)
      s.recordPoll(d.mailboxId, { at: t + 20 * S, changes: 0 }) // every sync takes 20 s
    }
    t = s.nextWakeAt()
  }
  // a change just after a sync started is picked up by the next sync, which ends 20 s after it starts
  for (const g of gaps(starts)) expect(g + 20 * S).toBeLessThanOrEqual(12 * MIN + 1)
  expect(s.stats().maxIntervalViolations).toBe(0)
})

test('the CRM side of a split mailbox is pulled on its own schedule: by its change rate, on pending writes, at least every 12 minutes', () => {
  const s = createScheduler({ policy: 'adaptive', random: mulberry32(3) })
  // one delta call for the mailbox, one change-tracking query for the CRM side
  for (const id of ['quiet-crm', 'busy-crm']) s.addMailbox(id, 0, { requestsPerSync: 2, crmPullRequests: 1 })
  expect(() => s.addMailbox('bad', 0, { requestsPerSync: 1, crmPullRequests: 1 })).toThrow(/crmPullRequests 1 must be less than requestsPerSync 1/)
  const last = new Map<string, { sync: number; crm: number }>()
  const syncs = new Map<string, number>()
  const crmPulls = new Map<string, number[]>()
  let t = s.nextWakeAt()
  while (t !== null && t <= 2 * DAY) {
    for (const d of s.due(t)) {
      const prev = last.get(d.mailboxId) ?? { sync: 0, crm: 0 }
      expect(d.requests).toBe(d.pullCrm ? 2 : 1)
      // the mailbox side changes once a minute in both; the CRM side of busy-crm too, of quiet-crm never
      const mailboxChanges = Math.floor((t - prev.sync) / MIN)
      const crmChanges = d.pullCrm && d.mailboxId === 'busy-crm' ? Math.floor((t - prev.crm) / MIN) : 0
      s.recordPoll(d.mailboxId, { at: t, changes: mailboxChanges + crmChanges, crmChanges })
      last.set(d.mailboxId, { sync: t, crm: d.pullCrm ? t : prev.crm })
      syncs.set(d.mailboxId, (syncs.get(d.mailboxId) ?? 0) + 1)
      if (d.pullCrm) crmPulls.set(d.mailboxId, [...(crmPulls.get(d.mailboxId) ?? []), t])
    }
    t = s.nextWakeAt()
  }
  const quiet = crmPulls.get('quiet-crm') ?? []
  const busy = crmPulls.get('busy-crm') ?? []
  for (const pulls of [quiet, busy]) expect(Math.max(...gaps(pulls))).toBeLessThanOrEqual(12 * MIN + 1)
  // the quiet CRM side is pulled at about the floor's pace, far less often than its mailbox side is synced
  expect(quiet.length).toBeLessThan(0.5 * syncs.get('quiet-crm')!)
  expect(busy.length).toBeGreaterThan(1.5 * quiet.length)
  // new pending CRM writes bring a CRM pull within the debounce
  s.setPendingCrmWrites('quiet-crm', 1, t!)
  const next = s.nextWakeAt()!
  expect(next).toBeLessThanOrEqual(t! + 3 * S)
  expect(s.due(next).find((d) => d.mailboxId === 'quiet-crm')?.pullCrm).toBe(true)
  expect(s.mailbox('busy-crm').crmPullDueAt).not.toBeNull()
})

test('with notifications, the budget buys polls within notificationTailMs for the mailbox losing the most uncovered changes (a tail rule, not √-rate)', () => {
  // two mailboxes whose notifications are lost 30 % of the time: one changes every 4 min, the other every hour.
  // The budget pays for the floor, the notified syncs (at most one per 90 s), 3-minute polls of the busy mailbox and a little more.
  const s = createScheduler({ policy: 'adaptive', budget: { requestsPerWindow: 800, windowMs: DAY }, notificationSpacingMs: 90 * S, random: mulberry32(7) })
  const every = { busy: 4 * MIN, slow: 60 * MIN }
  const ids = ['busy', 'slow'] as const
  for (const id of ids) s.addMailbox(id, 0)
  const rnd = mulberry32(11)
  const pending = { busy: 0, slow: 0 }
  const nextChange = { busy: every.busy, slow: every.slow }
  const polls = { busy: [] as Array<{ at: number; gap: number; reason: string }>, slow: [] as Array<{ at: number; gap: number; reason: string }> }
  const last = { busy: 0, slow: 0 }
  let t = 0
  while (t <= 2 * DAY) {
    const wake = s.nextWakeAt() ?? Infinity
    const id = nextChange.busy <= nextChange.slow ? 'busy' : 'slow'
    if (nextChange[id] <= wake) {
      t = nextChange[id]
      pending[id]++
      if (rnd() >= 0.3) s.recordNotification(id, t)
      nextChange[id] += every[id]
      continue
    }
    t = wake
    for (const d of s.due(t)) {
      const m = d.mailboxId as 'busy' | 'slow'
      if (d.reason === 'rate-allocation' || d.reason === 'max-interval') polls[m].push({ at: t, gap: t - last[m], reason: d.reason })
      last[m] = t
      s.recordPoll(m, { at: t, changes: pending[m] })
      pending[m] = 0
    }
  }
  const day2 = (m: 'busy' | 'slow') => polls[m].filter((p) => p.at >= DAY)
  // the busy mailbox: its polls come within 3 minutes of its previous sync, so a lost change waits at most that long
  // (√-rate spreads the budget over both: the busy mailbox's polls came every ~4 minutes, 8 % of them within 3)
  const busy = day2('busy')
  expect(busy.length).toBeGreaterThan(200)
  expect(busy.filter((p) => p.gap <= 3 * MIN).length).toBeGreaterThan(0.8 * busy.length)
  // the rest of the budget goes to the quiet mailbox, which is never polled more often than the tail interval either
  expect(day2('slow').every((p) => p.gap >= 3 * MIN - 1)).toBe(true)
  expect(s.stats().maxIntervalViolations).toBe(0)
})

test('a split mailbox\'s CRM side keeps the 12-minute floor while notification syncs use the budget', () => {
  // notified changes every 2 minutes (10 % of notifications lost) and a budget the notification syncs mostly use up:
  // a CRM pull held back by the budget must still come within 12 minutes of the previous one (it once waited for the
  // mailbox side's floor instead: gaps of 21–23 minutes)
  const s = createScheduler({ policy: 'adaptive', budget: { requestsPerWindow: 1000, windowMs: DAY }, random: mulberry32(5) })
  const ids = ['a', 'b', 'c']
  for (const id of ids) s.addMailbox(id, 0, { requestsPerSync: 2, crmPullRequests: 1 })
  const crmPulls = new Map<string, number[]>()
  const rnd = mulberry32(9)
  driveNotified(s, {
    changing: ids,
    everyMs: 2 * MIN,
    until: 2 * DAY,
    lost: () => rnd() <= 0.1,
    onSync: (d, t) => void (d.pullCrm && crmPulls.set(d.mailboxId, [...(crmPulls.get(d.mailboxId) ?? []), t])),
  })
  expect(crmPulls.size).toBe(3)
  for (const [, pulls] of crmPulls) expect(Math.max(...gaps(pulls))).toBeLessThanOrEqual(12 * MIN + 1)
  expect(s.stats().maxIntervalViolations).toBe(0)
})

test('oracle.rateStepMs: the same schedule, with the rate functions asked once per mailbox and step', () => {
  const HOUR = 60 * MIN
  // hourly rates: alice busy in even hours, bob always quiet; a twentieth of them on the CRM side
  const hourly = (id: string, t: number) => (id === 'alice' && Math.floor(t / HOUR) % 2 === 0 ? 40 : 2) / HOUR
  const run = (rateStepMs?: number) => {
    let calls = 0
    const counted = (share: number) => (id: string, t: number) => {
      calls++
      return share * hourly(id, t)
    }
    const s = createScheduler({
      policy: 'oracle',
      budget: { requestsPerWindow: 3 * 2 * 150, windowMs: DAY },
      oracle: { rate: counted(1), crmRate: counted(0.05), ...(rateStepMs ? { rateStepMs } : {}) },
      random: mulberry32(7),
    })
    for (const id of ['alice', 'bob', 'carol']) s.addMailbox(id, 0, { requestsPerSync: 2, crmPullRequests: 1 })
    const due: string[] = []
    let t = s.nextWakeAt()
    while (t !== null && t <= 6 * HOUR) {
      for (const d of s.due(t)) {
        due.push(`${t} ${d.mailboxId} ${d.reason} ${d.pullCrm}`)
        s.recordPoll(d.mailboxId, { at: t + 240, changes: 1, crmChanges: d.pullCrm ? 1 : 0 })
      }
      t = s.nextWakeAt()
    }
    return { due, calls, allocationScale: s.stats().allocationScale }
  }
  const plain = run()
  const stepped = run(HOUR)
  expect(stepped.due).toEqual(plain.due)
  expect(stepped.allocationScale).toBe(plain.allocationScale)
  expect(plain.due.length).toBeGreaterThan(50)
  expect(stepped.calls).toBeLessThan(plain.calls / 3)
})

test('mailbox state survives the rows growing, and a removed mailbox\'s handle starts clean when reused', () => {
  const s = createScheduler({ policy: 'adaptive', staggerInitial: false })
  const info = { requestsPerSync: 3, crmPullRequests: 1 }
  s.addMailbox('first', 0, info)
  s.setPendingCrmWrites('first', 4, 0)
  drive(s, 0)
  s.setPendingCrmWrites('first', 2, 10)
  const before = s.mailbox('first')
  // far past the initial capacity of the rows: they are reallocated, every mailbox keeps its state
  for (let i = 0; i < 500; i++) s.addMailbox(`m${i}`, 10, info)
  expect(s.mailbox('first')).toEqual(before)
  expect(s.mailbox('first')).toMatchObject({ pendingCrmWrites: 2, lastDispatchAt: 0 })
  s.removeMailbox('first')
  s.addMailbox('again', 10, info)
  expect(s.mailbox('again')).toMatchObject({ pendingCrmWrites: 0, lastDispatchAt: null, inFlight: false, reason: 'initial' })
  drive(s, 20 * MIN)
  expect(s.stats().maxIntervalViolations).toBe(0)
  expect(s.mailbox('again').lastDispatchAt).not.toBeNull()
})

test('with randomFor, a mailbox draws from its own stream: its schedule does not depend on the other mailboxes', () => {
  const seedOf = (id: string) => [...id].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 0x01000193), 0x811c9dc5)
  // throttles and failures draw backoff jitter, the first sync its stagger: alice's draws interleave with the others'
  const outcome = (id: string, t: number) => (id === 'alice' ? (Math.floor(t / MIN) % 7 === 0 ? { throttled: true } : Math.floor(t / MIN) % 5 === 0 ? { error: true } : {}) : Math.floor(t / MIN) % 3 === 0 ? { error: true } : { throttled: true })
  const schedule = (policy: 'fixed:5' | 'sss', ids: readonly string[], shared: boolean): number[] => {
    const s = createScheduler({ policy, ...(shared ? { random: mulberry32(7) } : { randomFor: (id: string) => mulberry32(seedOf(id)) }) })
    for (const id of ids) s.addMailbox(id, 0)
    const times: number[] = []
    let t = s.nextWakeAt()
    while (t !== null && t <= 6 * 60 * MIN) {
      for (const d of s.due(t)) {
        if (d.mailboxId === 'alice') times.push(t)
        s.recordPoll(d.mailboxId, { at: t, ...outcome(d.mailboxId, t) })
      }
      t = s.nextWakeAt()
    }
    return times
  }
  for (const policy of ['fixed:5', 'sss'] as const) {
    const alone = schedule(policy, ['alice'], false)
    expect(alone.length).toBeGreaterThan(20)
    expect(schedule(policy, ['bob', 'alice', 'carol', 'dave'], false)).toEqual(alone)
    expect(schedule(policy, ['alice', 'erin'], false)).toEqual(alone)
    // the shared stream: alice's draws depend on who else drew before her
    expect(schedule(policy, ['bob', 'alice', 'carol', 'dave'], true)).not.toEqual(schedule(policy, ['alice'], true))
  }
})

test('randomFor must be a function', () => {
  expect(() => createScheduler({ policy: 'fixed:5', randomFor: 42 as never })).toThrow(SchedulerConfigError)
})

test('stats report how close the CRM limits came: the peak window count and the peak in flight', () => {
  const s = createScheduler({ policy: 'fixed:5', staggerInitial: false })
  for (const id of ['a', 'b', 'c']) s.addMailbox(id, 0, { crmRequestsPerSync: 2 })
  const first = s.due(0)
  expect(first.length).toBe(3)
  expect(s.stats().crmInFlightPeak).toBe(3)
  expect(s.stats().crmWindowPeak).toBe(6)
  for (const d of first) s.recordPoll(d.mailboxId, { at: 1 * S, crmRequests: 3 }) // one more than reserved, each
  expect(s.stats()).toMatchObject({ crmInFlight: 0, crmInFlightPeak: 3, crmWindowPeak: 9 })
})
