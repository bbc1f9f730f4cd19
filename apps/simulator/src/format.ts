import type { SimulationReport } from './simulate.js'

const cell = (x: number | boolean | null, digits = 1) => (x === null ? 'n/a' : typeof x === 'boolean' ? (x ? 'yes' : 'NO') : Number.isInteger(x) ? String(x) : x.toFixed(digits))

/** The comparison table printed on stdout. Staleness in minutes. */
export function formatSummary(report: SimulationReport): string {
  const head = ['policy', 'API calls', 'mean min', 'p50 min', 'p95 min', 'p99 min', 'max min', 'worst mbx', 'throttled', 'conflicts', 'lost', 'dups', 'converged']
  const rows = Object.entries(report.policies).map(([name, p]) => [
    name,
    String(p.apiCalls),
    cell(p.meanStalenessSec / 60, 2),
    cell(p.p50StalenessSec / 60, 2),
    cell(p.p95StalenessSec / 60, 2),
    cell(p.p99StalenessSec / 60, 2),
    cell(p.maxStalenessSec / 60, 2),
    cell(p.worstMailboxMeanStalenessSec / 60, 2),
    String(p.throttled),
    cell(p.conflicts),
    cell(p.lostUpdates),
    cell(p.duplicates),
    cell(p.converged),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  const c = report.config
  const out = [
    `${c.mailboxes} mailboxes × ${c.simulatedDays} day(s) (warm-up ${c.warmupDays}), seed ${c.seed}, ${c.mode === 'wire' ? 'mode wire (real adapters ⇄ emulators over HTTP, contacts only), ' : ''}engine ${c.engine}${c.engine === 'real' ? `/${c.store}` : ''}, notifications ${c.notifications ? `on (loss ${c.notificationLoss})` : 'off'}`,
    report.budget ? `adaptive/oracle budget = ${report.budget.from}'s calls: ${report.budget.requestsPerWindow} requests/day` : '',
    line(head),
    ...rows.map(line),
  ]
  const cps = Object.entries(report.conflictPolicies)
  if (cps.length > 1) out.push('', 'conflict policy  conflicts  lost  dups  converged', ...cps.map(([n, r]) => `${n.padEnd(15)}  ${cell(r.conflicts).padStart(9)}  ${cell(r.lostUpdates).padStart(4)}  ${cell(r.duplicates).padStart(4)}  ${cell(r.converged).padStart(9)}`))
  out.push('', `wall ${report.wallSeconds} s, ${report.mailboxDaysPerSec} mailbox-days/s`)
  return out.filter((l, i) => l !== '' || i > 1).join('\n')
}
