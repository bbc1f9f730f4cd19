/**
 * Driver-loop throughput of the scheduler: N mailboxes × D days of virtual time, instant syncs, Poisson
 * change counts per poll (weekday profile, lognormal σ = 1, 122 changes/day). Prints mailbox-days per
 * wall second per policy. Run: `npx tsx packages/scheduler/bench/bench.ts [mailboxes] [days]`.
 */
import { loadavg } from 'node:os'
import { createScheduler, mulberry32, type PolicyName } from '../src/index.js'
import { createWorkload } from '../src/evaluate.js'

const DAY = 86_400_000
const mailboxes = Number(process.argv[2] ?? 10_000)
const days = Number(process.argv[3] ?? 1)
const policies = (process.argv[4]?.split(',') ?? ['fixed:5', 'sss', 'adaptive', 'oracle']) as PolicyName[]

function poisson(mean: number, rnd: () => number): number {
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd())))
  const l = Math.exp(-mean)
  let k = 0
  let p = rnd()
  while (p > l) {
    k++
    p *= rnd()
  }
  return k
}

const workload = createWorkload({ mailboxes })
for (const policy of policies) {
  const rnd = mulberry32(7)
  const sched = createScheduler({
    policy,
    // the allocating policies get the call count of fixed:5 (288/day per mailbox) as their budget
    ...(policy === 'adaptive' || policy === 'oracle' ? { budget: { perMailboxRequestsPerWindow: 288, windowMs: DAY } } : {}),
    ...(policy === 'oracle' ? { oracle: { rate: workload.rate } } : {}),
    random: mulberry32(1),
    ...(process.env.EXPLAIN ? { explainCapacity: Number(process.env.EXPLAIN) } : {}),
  })
  const last = new Float64Array(mailboxes)
  const perMs = new Float64Array(mailboxes) // slot → mean changes per ms (slots are dense: 0..n−1 in add order)
  workload.ids.forEach((id, i) => {
    sched.addMailbox(id, 0)
    perMs[sched.slotOf(id)] = (workload.perDay[i] as number) / DAY
  })
  const end = days * DAY
  let syncs = 0
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  let t = sched.nextWakeAt()
  while (t !== null && t <= end) {
    for (const d of sched.due(t)) {
      const i = d.slot
      // expected changes since the last sync (rate at t × elapsed; good enough for throughput)
      const mean = (perMs[i] as number) * workload.profile(t) * (t - (last[i] as number))
      last[i] = t
      sched.recordPoll(d.mailboxId, { at: t, changes: poisson(mean, rnd), requests: d.requests })
      syncs++
    }
    t = sched.nextWakeAt()
  }
  const ms = performance.now() - t0
  const cu = process.cpuUsage(c0)
  const cpuMs = (cu.user + cu.system) / 1000
  console.log(
    `${policy.padEnd(9)} ${mailboxes} mailboxes × ${days} day(s): ${syncs} syncs; wall ${ms.toFixed(0)} ms → ${Math.round((mailboxes * days) / (ms / 1000))} mailbox-days/s; ` +
      `cpu ${cpuMs.toFixed(0)} ms → ${Math.round((mailboxes * days) / (cpuMs / 1000))} mailbox-days/cpu-s (load avg ${loadavg()[0]?.toFixed(1)})`,
  )
  if (process.env.BENCH_STATS) console.log(JSON.stringify(sched.stats()))
}
