/**
 * Print the policy comparison at equal budget (performance.md §6b workload).
 * Run: `npx tsx packages/scheduler/bench/evaluate.ts [mailboxes] [days] [seed]`.
 */
import { evaluatePolicies, formatEvaluation } from '../src/evaluate.js'

const mailboxes = Number(process.argv[2] ?? 1000)
const days = Number(process.argv[3] ?? 2)
const seed = Number(process.argv[4] ?? 42)
const report = evaluatePolicies({ mailboxes, days, warmupDays: 1, seed })
console.log(formatEvaluation(report))
