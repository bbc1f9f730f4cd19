import { createScheduler, mulberry32 } from '@concord/scheduler'
import { expect, test } from 'vitest'
import { drive } from './driver.js'
import { TimedHeap } from './heap.js'

const MIN = 60_000

test('drive: one loop for every mode — ties go completion, event, notification, then due syncs; in-flight syncs are collected after the end', async () => {
  const sched = createScheduler({ policy: 'fixed:5', random: mulberry32(1), staggerInitial: false })
  sched.addMailbox('a', 0)
  const log: string[] = []
  const events = [5 * MIN, 5 * MIN + 30_000] // the first coincides with a completion and a due sync
  const notifications = new TimedHeap<number>()
  notifications.push(5 * MIN, 1)
  let ei = 0
  let now = -1
  const end = await drive<string>({
    sched,
    policy: 'fixed:5',
    endMs: 10 * MIN,
    setNow: (t) => void (now = t),
    nextEventAt: () => events[ei] ?? Infinity,
    applyEvent: () => void log.push(`event@${events[ei++]! / MIN}@${now / MIN}`),
    notifications,
    onNotification: (v, t) => void log.push(`notification ${v}@${t / MIN}`),
    // the first sync takes exactly 5 minutes, so its completion ties with the next due sync
    dispatch: async (d, t, finish) => {
      log.push(`dispatch ${d.mailboxId}@${t / MIN}`)
      finish(t + 5 * MIN, `${d.mailboxId}@${t / MIN}`)
    },
    complete: (payload, t) => {
      log.push(`complete ${payload}@${t / MIN}`)
      sched.recordPoll('a', { at: t, changes: 0, requests: 1 })
    },
  })
  expect(log).toEqual([
    'dispatch a@0',
    'complete a@0@5',
    'event@5@5',
    'notification 1@5',
    'dispatch a@5',
    'event@5.5@5.5',
    'complete a@5@10',
    'dispatch a@10',
    'complete a@10@15', // collected after the end
  ])
  expect(end).toBe(15 * MIN)
})

test('drive: with a sync that never completes nothing is due any more, and the loop ends instead of hanging', async () => {
  const sched = createScheduler({ policy: 'fixed:5', random: mulberry32(1), staggerInitial: false })
  sched.addMailbox('a', 0)
  // never completing the sync: the mailbox stays in flight, nothing else is due, the loop ends
  const end = await drive<string>({ sched, policy: 'fixed:5', endMs: 20 * MIN, setNow: () => {}, nextEventAt: () => Infinity, applyEvent: () => {}, dispatch: () => {}, complete: () => {} })
  expect(end).toBe(0)
})
