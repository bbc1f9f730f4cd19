import { type Scheduler, createScheduler } from '@concord/scheduler'
import { TimedHeap } from './heap.js'
import { type PolicyRun, assemblePolicyRun } from './policy-run.js'
import type { RunOptions } from './run.js'
import { mixSeed, mulberry32, normal } from './rng.js'
import { type Workload, HOUR, MIN } from './workload.js'

/** Per-mailbox state of the stub driver: changes not yet synced as parallel arrays (no object per change). */
interface StubBox {
  id: string
  slot: number
  /** Times of the pending changes, in time order, from `head` on. */
  times: number[]
  /** Flags of the pending changes: 1 = CRM side, 2 = measured. */
  flags: number[]
  head: number
  crmCount: number
  crmPending: number
  stalenessSum: number
  measured: number
  changes: number
  // the cycle in flight (the scheduler never starts a second one before `recordPoll`)
  cycleChanges: number
  cycleRequests: number
  cycleAt: number
}

const boxIndexCache = new WeakMap<Workload, Int32Array>()

/** Each event's mailbox as an index into `workload.mailboxes`, computed once per workload (all policies share it). */
function boxIndexOf(workload: Workload): Int32Array {
  let out = boxIndexCache.get(workload)
  if (!out) {
    const index = new Map<string, number>()
    workload.mailboxes.forEach((id, i) => index.set(id, i))
    out = new Int32Array(workload.events.length)
    for (let i = 0; i < workload.events.length; i++) out[i] = index.get(workload.events[i]!.mailbox) ?? -1
    boxIndexCache.set(workload, out)
  }
  return out
}

/**
 * The stub engine: the scheduler kernel and the change bookkeeping only — one delta call per side
 * plus a page per 50 changes and a push per side with writes; every change is on both sides when
 * the cycle that saw it completes. Lean on purpose: at 10,000 mailboxes it runs millions of cycles.
 */
export function runStubPolicy(options: RunOptions): PolicyRun {
  const { workload } = options
  let now = 0
  const rng = mulberry32(mixSeed(options.seed, 0xbeef))
  const endMs = workload.durationMs + options.drainMs
  const hours = Math.ceil(endMs / HOUR)
  const callsPerHour = new Array<number>(hours).fill(0)
  const staleness: number[] = []
  let cycles = 0
  let notificationsSent = 0
  let notificationsDropped = 0
  let graphCalls = 0
  let crmCalls = 0
  const warmupMs = options.warmupMs
  const durationMs = workload.durationMs
  const latency = options.requestLatencyMs

  const sched: Scheduler = createScheduler({
    ...options.scheduler,
    policy: options.policy,
    ...(options.budget ? { budget: options.budget } : {}),
    ...(options.policy === 'oracle' ? { oracle: { rate: options.trueRate } } : {}),
    random: mulberry32(mixSeed(options.seed, 0xabc)),
  })

  const boxes: StubBox[] = workload.mailboxes.map((id) => ({ id, slot: -1, times: [], flags: [], head: 0, crmCount: 0, crmPending: 0, stalenessSum: 0, measured: 0, changes: 0, cycleChanges: 0, cycleRequests: 0, cycleAt: 0 }))
  const boxIndex = boxIndexOf(workload)
  const events = workload.events
  const notifications = new TimedHeap<number>() // box index × 2 + (1 if CRM)
  const completions = new TimedHeap<StubBox>()

  const notify = (b: number, crm: boolean) => {
    if (rng() < options.notificationLoss) notificationsDropped++
    else {
      // Graph: mostly under a minute, never over 3 minutes (performance.md §3b)
      notifications.push(now + Math.min(3 * MIN, 15_000 * Math.exp(0.9 * normal(rng))), b * 2 + (crm ? 1 : 0))
      notificationsSent++
    }
  }

  const complete = (box: StubBox, at: number) => {
    // pending is in time order: everything up to the sync time is now on both sides
    const { times, flags } = box
    let k = box.head
    const n = times.length
    for (; k < n && times[k]! <= box.cycleAt; k++) {
      const f = flags[k]!
      if (f & 1) box.crmCount--
      if (f & 2) {
        const s = (at - times[k]!) / 1000
        staleness.push(s)
        box.stalenessSum += s
        box.measured++
      }
    }
    if (k === n) {
      times.length = 0
      flags.length = 0
      box.head = 0
    } else if (k > 1024 && k * 2 > n) {
      times.splice(0, k)
      flags.splice(0, k)
      box.head = 0
    } else box.head = k
    if (box.crmPending > 0) {
      box.crmPending = 0
      sched.setPendingCrmWrites(box.id, 0, at)
    }
    sched.recordPoll(box.id, { at, changes: box.cycleChanges, requests: box.cycleRequests })
  }

  let ei = 0
  while (ei < events.length && events[ei]!.initial) ei++ // initial data: synced before the run, not measured
  const bySlot: StubBox[] = []
  for (const box of boxes) {
    sched.addMailbox(box.id, 0, { requestsPerSync: 2 })
    box.slot = sched.slotOf(box.id)
    bySlot[box.slot] = box
  }

  let lastProgress = 0
  const hourBin = (t: number) => Math.min(hours - 1, Math.floor(t / HOUR))
  for (;;) {
    const tW = ei < events.length ? events[ei]!.t : Infinity
    const tC = completions.peekTime()
    const tN = notifications.peekTime()
    const tS = sched.nextWakeAt() ?? Infinity
    const t = Math.min(tW, tC, tN, tS)
    if (t > endMs || t === Infinity) break
    now = t
    if (options.onProgress && now - lastProgress >= HOUR) {
      lastProgress = now
      options.onProgress(now)
    }
    if (tC === t) {
      complete(completions.pop()!, t)
    } else if (tW === t) {
      const e = events[ei]!
      const b = boxIndex[ei++]!
      if (b < 0 || e.initial) continue
      const box = boxes[b]!
      box.changes++
      const crm = e.side === 'crm'
      if (crm) box.crmCount++
      box.times.push(now)
      box.flags.push((crm ? 1 : 0) | (now >= warmupMs && now < durationMs ? 2 : 0))
      if (options.notifications) notify(b, crm)
    } else if (tN === t) {
      const v = notifications.pop()!
      const box = boxes[v >> 1]!
      if (v & 1) sched.setPendingCrmWrites(box.id, ++box.crmPending, t)
      else sched.recordNotification(box.id, t)
    } else {
      const due = sched.due(t)
      if (due.length === 0 && (sched.nextWakeAt() ?? Infinity) <= t) throw new Error(`scheduler ${options.policy} reports work due at ${t} but dispatches nothing`)
      for (const d of due) {
        const box = bySlot[d.slot]!
        cycles++
        const pending = box.times.length - box.head
        const crm = box.crmCount
        const mbx = pending - crm
        const graph = 1 + Math.floor(mbx / 50) + (crm > 0 ? 1 : 0)
        const dataverse = 1 + Math.floor(crm / 50) + (mbx > 0 ? 1 : 0)
        graphCalls += graph
        crmCalls += dataverse
        box.cycleChanges = pending
        box.cycleRequests = graph + dataverse
        box.cycleAt = t
        callsPerHour[hourBin(t)]! += graph + dataverse
        completions.push(t + Math.max(1, (graph + dataverse) * latency), box)
      }
    }
  }
  while (completions.size > 0) {
    now = Math.max(now, completions.peekTime())
    complete(completions.pop()!, now)
  }

  let unresolved = 0
  for (const box of boxes) for (let k = box.head; k < box.flags.length; k++) if (box.flags[k]! & 2) unresolved++
  return assemblePolicyRun({
    sched,
    boxes: boxes.map((b) => ({ id: b.id, changes: b.changes, measured: b.measured, stalenessSum: b.stalenessSum, pendingCount: b.times.length - b.head })),
    graphCalls,
    crmCalls,
    tokenRefreshes: 0,
    throttled: 0,
    cycles,
    conflicts: null,
    referenceConflicts: 0,
    lostUpdates: null,
    duplicates: null,
    converged: null,
    unresolved,
    skippedEvents: 0,
    notificationsSent,
    notificationsDropped,
    staleness,
    callsPerHour,
    problems: [],
  })
}
