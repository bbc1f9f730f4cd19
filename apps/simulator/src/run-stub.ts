import type { Scheduler } from '@concord/scheduler'
import { SimulatorError } from './errors.js'
import { type PolicyRun, assemblePolicyRun, createRunScheduler } from './policy-run.js'
import type { RunOptions } from './run.js'
import { mixSeed, mulberry32, normal } from './rng.js'
import { type Workload, HOUR, MIN, eventColumns } from './workload.js'

/**
 * A workload flattened for the stub driver, once per workload (every policy shares it): event times,
 * mailbox indexes and sides in typed arrays, and per event the index of the next event of the same
 * mailbox and side, so each side of a mailbox forms a linked list in event order — a side's unsynced
 * changes are the stretch of its list from `head` on, and the hot loop never touches the event objects.
 * Lists are indexed by `mailbox × 2 + (1 if CRM)`.
 */
interface Compiled {
  time: Float64Array
  /** Mailbox index, or -1 for initial data (synced before the run) and unknown mailboxes. */
  box: Int32Array
  crm: Uint8Array
  next: Int32Array
  /** First (non-initial) event of each mailbox side, -1 when none. */
  first: Int32Array
}

const compiledCache = new WeakMap<Workload, Compiled>()

/**
 * A binary min-heap of (time, int payload) in typed arrays; ties pop in insertion order (a sequence number),
 * exactly like `TimedHeap`, so the stub loop makes the same choices as `drive` without an object per entry.
 */
class IntTimedHeap {
  private t = new Float64Array(1024)
  private s = new Float64Array(1024)
  private v = new Int32Array(1024)
  private seq = 0
  size = 0

  peekTime(): number {
    return this.size > 0 ? this.t[0]! : Infinity
  }

  push(time: number, value: number): void {
    if (this.size === this.t.length) {
      const grow = <A extends Float64Array | Int32Array>(a: A, b: A): A => (b.set(a), b)
      this.t = grow(this.t, new Float64Array(this.size * 2))
      this.s = grow(this.s, new Float64Array(this.size * 2))
      this.v = grow(this.v, new Int32Array(this.size * 2))
    }
    const t = this.t
    const s = this.s
    const v = this.v
    const q = this.seq++
    let i = this.size++
    while (i > 0) {
      const p = (i - 1) >> 1
      const pt = t[p]!
      if (pt < time || (pt === time && s[p]! < q)) break
      t[i] = pt
      s[i] = s[p]!
      v[i] = v[p]!
      i = p
    }
    t[i] = time
    s[i] = q
    v[i] = value
  }

  /** Remove the earliest entry and return its payload (the heap must not be empty). */
  pop(): number {
    const t = this.t
    const s = this.s
    const v = this.v
    const top = v[0]!
    const n = --this.size
    if (n === 0) return top
    const lt = t[n]!
    const ls = s[n]!
    const lv = v[n]!
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      let c = l
      const r = l + 1
      if (r < n && (t[r]! < t[l]! || (t[r] === t[l] && s[r]! < s[l]!))) c = r
      if (lt < t[c]! || (lt === t[c] && ls < s[c]!)) break
      t[i] = t[c]!
      s[i] = s[c]!
      v[i] = v[c]!
      i = c
    }
    t[i] = lt
    s[i] = ls
    v[i] = lv
    return top
  }
}

function compile(workload: Workload): Compiled {
  let c = compiledCache.get(workload)
  if (c) return c
  const columns = eventColumns(workload)
  const n = columns.t.length
  const m = workload.mailboxes.length
  c = { time: columns.t, box: columns.box, crm: columns.crm, next: new Int32Array(n).fill(-1), first: new Int32Array(2 * m).fill(-1) }
  const last = new Int32Array(2 * m).fill(-1)
  for (let i = 0; i < n; i++) {
    const b = c.box[i]!
    if (b < 0) continue
    const list = 2 * b + c.crm[i]!
    if (last[list]! < 0) c.first[list] = i
    else c.next[last[list]!] = i
    last[list] = i
  }
  compiledCache.set(workload, c)
  return c
}

/** Changes per delta page in the stub's request model. */
const STUB_PAGE = 50
/** The stub's Graph requests for a sync that finds `mbx` mailbox and `crm` CRM changes: a delta call, a page per 50, a push when the CRM side changed. */
export const stubGraphRequests = (mbx: number, crm: number): number => 1 + Math.floor(mbx / STUB_PAGE) + (crm > 0 ? 1 : 0)
/** The stub's Dataverse requests for the same sync: a change-tracking call and a page per 50 when it pulls the CRM side, a push when the mailbox side changed. */
export const stubCrmRequests = (mbx: number, crm: number, pullsCrm = true): number => (pullsCrm ? 1 + Math.floor(crm / STUB_PAGE) : 0) + (mbx > 0 ? 1 : 0)

/**
 * What every mode tells the scheduler about a mailbox's syncs: one delta call for the mailbox side and one
 * change-tracking query for the CRM side, which adaptive and oracle pull on its own schedule.
 */
export const STUB_MAILBOX_INFO = { requestsPerSync: 2, crmPullRequests: 1 } as const

/** What the stub engine reads of {@link RunOptions} (no merge, store or conflict model). */
export type StubRunOptions = Pick<RunOptions, 'policy' | 'workload' | 'seed' | 'notifications' | 'notificationLoss' | 'warmupMs' | 'drainMs' | 'budget' | 'trueRate' | 'trueCrmRate' | 'trueRateStepMs' | 'requestLatencyMs' | 'onProgress' | 'scheduler'>

/**
 * The stub engine: the scheduler kernel and the change bookkeeping only — one delta call per side
 * plus a page per 50 changes and a push per side with writes; every change is on both sides when
 * the cycle that saw it completes. Lean on purpose (typed arrays, no object per change or per
 * cycle): at 10,000 mailboxes it runs millions of cycles.
 */
export async function runStubPolicy(options: StubRunOptions): Promise<PolicyRun> {
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

  const sched: Scheduler = createRunScheduler(options, { explainCapacity: 0 }) // nobody reads the explanation log of a stub run (unless a test asks for it)

  // per-mailbox state, by mailbox index; per side by mailbox × 2 + (1 if CRM)
  const head = compile(workload).first.slice() // first unsynced change of each side (a linked list through `next`)
  const pending = new Int32Array(2 * m) // applied, not yet synced
  const crmWrites = new Int32Array(m) // pending CRM writes the scheduler was told about
  const changes = new Int32Array(m)
  const measured = new Int32Array(m)
  const stalenessSum = new Float64Array(m)
  const cycleChanges = new Int32Array(m)
  const cycleCrmChanges = new Int32Array(m)
  const cyclePullsCrm = new Uint8Array(m)
  const cycleRequests = new Int32Array(m)
  const cycleAt = new Float64Array(m)
  const notify = new IntTimedHeap() // mailbox index × 2 + (1 if CRM)
  const completions = new IntTimedHeap() // mailbox index
  const slotOf = new Int32Array(m)

  /** Everything of one side of mailbox `b` up to its sync's start is now on both sides. */
  const syncList = (b: number, list: number, at: number) => {
    const cutoff = cycleAt[b]!
    let k = head[list]!
    let n = 0
    while (k >= 0 && n < pending[list]! && time[k]! <= cutoff) {
      const t = time[k]!
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
    head[list] = k
    pending[list] = pending[list]! - n
  }
  const complete = (b: number, at: number) => {
    // a side's changes are in time order: what the sync pulled up to its start is now on both sides
    syncList(b, 2 * b, at)
    if (cyclePullsCrm[b]) syncList(b, 2 * b + 1, at)
    if (crmWrites[b]! > 0 && cyclePullsCrm[b]) {
      crmWrites[b] = 0
      sched.setPendingCrmWritesSlot(slotOf[b]!, 0, at)
    }
    sched.recordPollSlot(slotOf[b]!, at, cycleChanges[b]!, cycleRequests[b]!, cycleCrmChanges[b]!)
  }

  const nEvents = time.length
  let ei = eventColumns(workload).initial // initial data: synced before the run, not measured
  const bySlot = new Int32Array(m)
  for (let b = 0; b < m; b++) {
    sched.addMailbox(ids[b]!, 0, STUB_MAILBOX_INFO)
    slotOf[b] = sched.slotOf(ids[b]!)
    bySlot[slotOf[b]!] = b
  }

  const applyEvent = () => {
    const b = boxOf[ei]!
    const crm = crmOf[ei]!
    ei++
    if (b < 0) return
    changes[b]!++
    pending[2 * b + crm]!++
    if (notifications) {
      if (rng() < loss) notificationsDropped++
      else {
        // Graph: mostly under a minute, never over 3 minutes (performance.md §3b)
        notify.push(now + Math.min(3 * MIN, 15_000 * Math.exp(0.9 * normal(rng))), b * 2 + crm)
        notificationsSent++
      }
    }
  }
  const dispatch = (b: number, t: number) => {
    cycles++
    const pullsCrm = sched.pullsCrm(slotOf[b]!)
    const mbx = pending[2 * b]!
    const crm = pullsCrm ? pending[2 * b + 1]! : 0
    const graph = stubGraphRequests(mbx, crm)
    const dataverse = stubCrmRequests(mbx, crm, pullsCrm)
    graphCalls += graph
    crmCalls += dataverse
    cycleChanges[b] = mbx + crm
    cycleCrmChanges[b] = crm
    cyclePullsCrm[b] = pullsCrm ? 1 : 0
    cycleRequests[b] = graph + dataverse
    cycleAt[b] = t
    callsPerHour[Math.min(hours - 1, Math.floor(t / HOUR))]! += graph + dataverse
    completions.push(t + Math.max(1, (graph + dataverse) * latency), b)
  }

  // The event loop of `drive` (driver.ts), inlined over typed arrays and slot calls: wake at the earliest of
  // the next completion, workload event, notification and scheduler wake-up (ties in that order) until endMs,
  // then collect the syncs still in flight. Same order of calls, so the same decisions.
  const onProgress = options.onProgress
  const due = new Int32Array(Math.max(1, m))
  let lastProgress = 0
  for (;;) {
    const tW = ei < nEvents ? time[ei]! : Infinity
    const tC = completions.peekTime()
    const tN = notify.peekTime()
    const tS = sched.nextWakeAt() ?? Infinity
    const t = Math.min(tW, tC, tN, tS)
    if (t > endMs || t === Infinity) break
    now = t
    if (onProgress && now - lastProgress >= HOUR) {
      lastProgress = now
      onProgress(now)
    }
    if (tC === t) complete(completions.pop(), t)
    else if (tW === t) applyEvent()
    else if (tN === t) {
      const v = notify.pop()
      const b = v >> 1
      if (v & 1) sched.setPendingCrmWritesSlot(slotOf[b]!, ++crmWrites[b]!, t)
      else sched.recordNotificationSlot(slotOf[b]!, t)
    } else {
      const n = sched.dueSlots(t, due)
      if (n === 0 && (sched.nextWakeAt() ?? Infinity) <= t) throw new SimulatorError('Internal', `scheduler ${options.policy} reports work due at ${t} but dispatches nothing`)
      for (let i = 0; i < n; i++) dispatch(bySlot[due[i]!]!, t)
    }
  }
  while (completions.size > 0) {
    now = Math.max(now, completions.peekTime())
    complete(completions.pop(), now)
  }

  let unresolved = 0
  for (let list = 0; list < 2 * m; list++) {
    for (let k = head[list]!, n = 0; k >= 0 && n < pending[list]!; k = next[k]!, n++) if (time[k]! >= warmupMs && time[k]! < durationMs) unresolved++
  }
  return stubRun(sched, ids, { changes, measured, stalenessSum, pending }, { graphCalls, crmCalls, cycles, unresolved, notificationsSent, notificationsDropped }, staleness.subarray(0, nStale), callsPerHour)
}

/**
 * The stub run's `PolicyRun`, out of line on purpose: V8 compiles `runStubPolicy`'s loop on stack
 * replacement, and that code would embed the boilerplate of an object literal after the loop. When a
 * later run meets that boilerplate with a map deprecated since, every replacement compile fails
 * ("maps became deprecated during optimization") and the loop stays unoptimised: a second stub run in a
 * process took 4–12× as long as alone (`compile.test.ts` guards it).
 */
function stubRun(
  sched: Scheduler,
  ids: readonly string[],
  box: { changes: Int32Array; measured: Int32Array; stalenessSum: Float64Array; pending: Int32Array },
  counts: { graphCalls: number; crmCalls: number; cycles: number; unresolved: number; notificationsSent: number; notificationsDropped: number },
  staleness: Float64Array,
  callsPerHour: number[],
): PolicyRun {
  return assemblePolicyRun({
    sched,
    boxes: ids.map((id, b) => ({ id, changes: box.changes[b]!, measured: box.measured[b]!, stalenessSum: box.stalenessSum[b]!, pendingCount: box.pending[2 * b]! + box.pending[2 * b + 1]! })),
    ...counts,
    tokenRefreshes: 0,
    throttled: 0,
    conflicts: null,
    referenceConflicts: 0,
    lostUpdates: null,
    duplicates: null,
    converged: null,
    skippedEvents: 0,
    staleness,
    callsPerHour,
    problems: [],
  })
}
