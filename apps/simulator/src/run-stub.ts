import { type Scheduler, createScheduler } from '@concord/scheduler'
import { drive } from './driver.js'
import { TimedHeap } from './heap.js'
import { type PolicyRun, assemblePolicyRun } from './policy-run.js'
import type { RunOptions } from './run.js'
import { mixSeed, mulberry32, normal } from './rng.js'
import { type Workload, HOUR, MIN } from './workload.js'

/**
 * A workload flattened for the stub driver, once per workload (every policy shares it): event times,
 * mailbox indexes and sides in typed arrays, and per event the index of the same mailbox's next
 * event, so each mailbox's changes form a linked list in event order — a mailbox's unsynced changes
 * are the stretch of its list from `head` on, and the hot loop never touches the event objects.
 */
interface Compiled {
  time: Float64Array
  /** Mailbox index, or -1 for initial data (synced before the run) and unknown mailboxes. */
  box: Int32Array
  crm: Uint8Array
  next: Int32Array
  /** First (non-initial) event of each mailbox, -1 when none. */
  first: Int32Array
}

const compiledCache = new WeakMap<Workload, Compiled>()

function compile(workload: Workload): Compiled {
  let c = compiledCache.get(workload)
  if (c) return c
  const n = workload.events.length
  const m = workload.mailboxes.length
  const index = new Map<string, number>()
  workload.mailboxes.forEach((id, i) => index.set(id, i))
  c = { time: new Float64Array(n), box: new Int32Array(n), crm: new Uint8Array(n), next: new Int32Array(n).fill(-1), first: new Int32Array(m).fill(-1) }
  const last = new Int32Array(m).fill(-1)
  for (let i = 0; i < n; i++) {
    const e = workload.events[i]!
    const b = e.initial ? -1 : (index.get(e.mailbox) ?? -1)
    c.time[i] = e.t
    c.box[i] = b
    c.crm[i] = e.side === 'crm' ? 1 : 0
    if (b < 0) continue
    if (last[b]! < 0) c.first[b] = i
    else c.next[last[b]!] = i
    last[b] = i
  }
  compiledCache.set(workload, c)
  return c
}

/**
 * The stub engine: the scheduler kernel and the change bookkeeping only — one delta call per side
 * plus a page per 50 changes and a push per side with writes; every change is on both sides when
 * the cycle that saw it completes. Lean on purpose (typed arrays, no object per change or per
 * cycle): at 10,000 mailboxes it runs millions of cycles.
 */
export async function runStubPolicy(options: RunOptions): Promise<PolicyRun> {
  const { workload } = options
  const { time, box: boxOf, crm: crmOf, next } = compile(workload)
  const m = workload.mailboxes.length
  const ids = workload.mailboxes
  let now = 0
  const rng = mulberry32(mixSeed(options.seed, 0xbeef))
  const endMs = workload.durationMs + options.drainMs
  const hours = Math.ceil(endMs / HOUR)
  const callsPerHour = new Array<number>(hours).fill(0)
  let staleness = new Float64Array(1024)
  let nStale = 0
  let cycles = 0
  let notificationsSent = 0
  let notificationsDropped = 0
  let graphCalls = 0
  let crmCalls = 0
  const warmupMs = options.warmupMs
  const durationMs = workload.durationMs
  const latency = options.requestLatencyMs
  const notifications = options.notifications
  const loss = options.notificationLoss

  const sched: Scheduler = createScheduler({
    ...options.scheduler,
    policy: options.policy,
    ...(options.budget ? { budget: options.budget } : {}),
    ...(options.policy === 'oracle' ? { oracle: { rate: options.trueRate } } : {}),
    random: mulberry32(mixSeed(options.seed, 0xabc)),
  })

  // per-mailbox state, by mailbox index
  const head = compile(workload).first.slice() // first unsynced change (a linked list through `next`)
  const pending = new Int32Array(m) // applied, not yet synced
  const pendingCrm = new Int32Array(m)
  const crmWrites = new Int32Array(m) // pending CRM writes the scheduler was told about
  const changes = new Int32Array(m)
  const measured = new Int32Array(m)
  const stalenessSum = new Float64Array(m)
  const cycleChanges = new Int32Array(m)
  const cycleRequests = new Int32Array(m)
  const cycleAt = new Float64Array(m)
  const notify = new TimedHeap<number>() // mailbox index × 2 + (1 if CRM)

  const complete = (b: number, at: number) => {
    // a mailbox's changes are in time order: everything up to the sync time is now on both sides
    const cutoff = cycleAt[b]!
    let k = head[b]!
    let n = 0
    let c = 0
    while (k >= 0 && n < pending[b]! && time[k]! <= cutoff) {
      const t = time[k]!
      c += crmOf[k]!
      if (t >= warmupMs && t < durationMs) {
        const s = (at - t) / 1000
        if (nStale === staleness.length) {
          const grown = new Float64Array(staleness.length * 2)
          grown.set(staleness)
          staleness = grown
        }
        staleness[nStale++] = s
        stalenessSum[b] = stalenessSum[b]! + s
        measured[b]!++
      }
      n++
      k = next[k]!
    }
    head[b] = k
    pending[b] = pending[b]! - n
    pendingCrm[b] = pendingCrm[b]! - c
    if (crmWrites[b]! > 0) {
      crmWrites[b] = 0
      sched.setPendingCrmWrites(ids[b]!, 0, at)
    }
    sched.recordPoll(ids[b]!, { at, changes: cycleChanges[b]!, requests: cycleRequests[b]! })
  }

  let ei = 0
  const nEvents = time.length
  while (ei < nEvents && workload.events[ei]!.initial) ei++ // initial data: synced before the run, not measured
  const bySlot: number[] = []
  for (let b = 0; b < m; b++) {
    sched.addMailbox(ids[b]!, 0, { requestsPerSync: 2 })
    bySlot[sched.slotOf(ids[b]!)] = b
  }

  const graphLimit = 50
  await drive<number>({
    sched,
    policy: options.policy,
    endMs,
    onProgress: options.onProgress,
    setNow: (t) => void (now = t),
    nextEventAt: () => (ei < nEvents ? time[ei]! : Infinity),
    applyEvent: () => {
      const b = boxOf[ei]!
      const crm = crmOf[ei]!
      ei++
      if (b < 0) return
      changes[b]!++
      pending[b]!++
      pendingCrm[b] = pendingCrm[b]! + crm
      if (notifications) {
        if (rng() < loss) notificationsDropped++
        else {
          // Graph: mostly under a minute, never over 3 minutes (performance.md §3b)
          notify.push(now + Math.min(3 * MIN, 15_000 * Math.exp(0.9 * normal(rng))), b * 2 + crm)
          notificationsSent++
        }
      }
    },
    notifications: notify,
    onNotification: (v, t) => {
      const b = v >> 1
      if (v & 1) sched.setPendingCrmWrites(ids[b]!, ++crmWrites[b]!, t)
      else sched.recordNotification(ids[b]!, t)
    },
    dispatch: (d, t, finish) => {
      const b = bySlot[d.slot]!
      cycles++
      const all = pending[b]!
      const crm = pendingCrm[b]!
      const mbx = all - crm
      const graph = 1 + Math.floor(mbx / graphLimit) + (crm > 0 ? 1 : 0)
      const dataverse = 1 + Math.floor(crm / graphLimit) + (mbx > 0 ? 1 : 0)
      graphCalls += graph
      crmCalls += dataverse
      cycleChanges[b] = all
      cycleRequests[b] = graph + dataverse
      cycleAt[b] = t
      callsPerHour[Math.min(hours - 1, Math.floor(t / HOUR))]! += graph + dataverse
      finish(t + Math.max(1, (graph + dataverse) * latency), b)
    },
    complete,
  })

  let unresolved = 0
  for (let b = 0; b < m; b++) {
    for (let k = head[b]!, n = 0; k >= 0 && n < pending[b]!; k = next[k]!, n++) if (time[k]! >= warmupMs && time[k]! < durationMs) unresolved++
  }
  return assemblePolicyRun({
    sched,
    boxes: ids.map((id, b) => ({ id, changes: changes[b]!, measured: measured[b]!, stalenessSum: stalenessSum[b]!, pendingCount: pending[b]! })),
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
    staleness: staleness.subarray(0, nStale),
    callsPerHour,
    problems: [],
  })
}
