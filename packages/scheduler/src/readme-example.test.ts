import { expect, test } from 'vitest'
// README "Embedding" snippet — keep the two in sync.
import { createScheduler, mulberry32 } from '@concord/scheduler'

test('README embedding example runs', () => {
  // --- README snippet start ---
  const MIN = 60_000
  const scheduler = createScheduler({
    policy: 'adaptive',
    budget: { perMailboxRequestsPerWindow: 288, windowMs: 24 * 60 * MIN }, // the call count of fixed:5
    random: mulberry32(42), // deterministic jitter
  })
  scheduler.addMailbox('alice@contoso.com', 0)
  scheduler.addMailbox('bob@contoso.com', 0, { requestsPerSync: 3 }) // 3 folders → 3 delta calls

  // a discrete-event loop in virtual time: sleep until the next wake-up, start what is due, report results
  let now = scheduler.nextWakeAt() ?? 0
  const log: string[] = []
  let notified = false
  while (now < 60 * MIN) {
    for (const sync of scheduler.due(now)) {
      log.push(`${(now / MIN).toFixed(1)} min ${sync.mailboxId} (${sync.reason})`)
      // …run the delta sync here (instant in this loop); then tell the scheduler what it found
      scheduler.recordPoll(sync.mailboxId, { at: now, changes: 1, requests: sync.requests })
    }
    if (!notified && now > 30 * MIN) {
      scheduler.recordNotification('alice@contoso.com', now) // Graph webhook
      notified = true
    }
    now = scheduler.nextWakeAt() ?? Infinity
  }
  const why = scheduler.explain('alice@contoso.com') // bounded ring buffer: why each sync happened
  // --- README snippet end ---
  expect(log.length).toBeGreaterThan(10)
  expect(why.length).toBeGreaterThan(0)
  expect(why.length).toBeLessThanOrEqual(32)
  expect(scheduler.stats().byReason.notification ?? 0).toBeGreaterThanOrEqual(1)
})
