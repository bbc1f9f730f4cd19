import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { main } from './cli.js'
import { type SimulationConfig, simulate } from './simulate.js'
import { type FinalState, wireWorkload } from './wire.js'
import { type WorkloadEvent, HOUR, generateWorkload, sortEvents } from './workload.js'

/**
 * Wire mode proves the fast-mode model honest: the same seeded contact workload (generated edits with
 * concurrent same-field edits on both sides, plus a create and a delete on each side) runs once against
 * the in-process replicas and once through CrmAdapter/ExchangeAdapter against the Dataverse and Graph
 * emulators over HTTP. Counts, conflicts and the final state of both sides must be equal.
 */
function scenario() {
  const base = generateWorkload({ mailboxes: 2, days: 1, seed: 11, contactEditsPerDay: 30, taskEditsPerDay: 0, crmEditsPerDay: 15, conflictReaction: 0.7 })
  const extra: WorkloadEvent[] = [
    { t: 9 * HOUR, mailbox: 'mbx-0', side: 'mailbox', op: 'create', kind: 'contact', item: 'new-m', fields: { givenName: 'Mia', surname: 'Mailbox', email1: 'mia@fabrikam.test', jobTitle: 'Buyer' } },
    { t: 9.5 * HOUR, mailbox: 'mbx-1', side: 'crm', op: 'create', kind: 'contact', item: 'new-c', fields: { givenName: 'Carl', surname: 'Crm', email1: 'carl@fabrikam.test', department: 'IT' } },
    { t: 11 * HOUR, mailbox: 'mbx-0', side: 'crm', op: 'delete', kind: 'contact', item: 'contact-3' },
    { t: 12 * HOUR, mailbox: 'mbx-1', side: 'mailbox', op: 'delete', kind: 'contact', item: 'contact-5' },
    { t: 13 * HOUR, mailbox: 'mbx-0', side: 'crm', op: 'update', kind: 'contact', item: 'new-m', fields: { jobTitle: 'Head buyer' } },
  ]
  const events = [...base.events, ...extra]
  sortEvents(events)
  return wireWorkload({ ...base, events })
}

const config = (mode: 'fast' | 'wire'): SimulationConfig => ({
  mailboxes: 2, days: 1, warmupDays: 0, seed: 11,
  policies: ['fixed:5'], budgetFrom: 'fixed:5', conflictPolicies: ['crm-wins'],
  mode, engine: 'real', store: 'memory', notifications: false, notificationLoss: 0,
  // zero request latency: cycle times do not depend on how many HTTP requests a cycle made, so both modes sync at the same virtual times
  requestLatencyMs: 0,
})

test('fast and wire mode report the same item counts, conflicts and final state for a seeded contact scenario', async () => {
  const workload = scenario()
  const finals: Record<string, FinalState[]> = {}
  const fast = await simulate(config('fast'), { workload, onFinalState: (_label, state) => void (finals.fast = state) })
  const wire = await simulate(config('wire'), { workload, onFinalState: (_label, state) => void (finals.wire = state) })
  const f = fast.policies['fixed:5']!
  const w = wire.policies['fixed:5']!
  expect(w.problems).toEqual([])
  expect(w.converged).toBe(true)
  expect(w.lostUpdates).toBe(0)
  expect(w.duplicates).toBe(0)
  expect(f.converged).toBe(true)
  expect(w.changes).toBeGreaterThan(15)
  expect(w.changes).toBe(f.changes)
  expect(w.measuredChanges).toBe(f.measuredChanges)
  expect(w.skippedEvents).toBe(f.skippedEvents)
  expect(w.cycles).toBe(f.cycles)
  expect(w.conflicts).toBeGreaterThan(0) // the scenario exercises concurrent same-field edits
  expect(w.conflicts).toBe(f.conflicts)
  expect(w.meanStalenessSec).toBe(f.meanStalenessSec)
  expect(w.apiCalls).toBeGreaterThan(0)
  // final state: per mailbox and side, the canonical fields of live records as sorted canonical JSON
  expect(finals.wire).toHaveLength(2)
  for (const state of finals.wire!) {
    expect(state.crm).toHaveLength(8) // 8 seeded contacts, one created, one deleted
    expect(state.mailboxSide).toEqual(state.crm)
  }
  expect(finals.wire).toEqual(finals.fast)
  // same report shape in both modes
  expect(Object.keys(w).sort()).toEqual(Object.keys(f).sort())
  expect(Object.keys(wire).sort()).toEqual(Object.keys(fast).sort())
  expect(wire.config.mode).toBe('wire')
}, 60_000)

test('the CLI runs --mode wire and writes report.json', async () => {
  const out = await mkdtemp(join(tmpdir(), 'concord-sim-wire-cli-'))
  try {
    let stdout = ''
    let stderr = ''
    const code = await main(['--mode', 'wire', '--mailboxes', '1', '--days', '0.5', '--warmup-days', '0', '--policies', 'fixed:15', '--store', 'memory', '--out', out], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), isTty: false })
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(stdout).toMatch(/fixed:15/)
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'))
    expect(report.config.mode).toBe('wire')
    expect(report.policies['fixed:15'].converged).toBe(true)
    expect(report.policies['fixed:15'].lostUpdates).toBe(0)
    expect(report.policies['fixed:15'].duplicates).toBe(0)
    expect(report.policies['fixed:15'].crmCalls).toBeGreaterThan(0)
    expect(report.policies['fixed:15'].graphCalls).toBeGreaterThan(0)
  } finally {
    await rm(out, { recursive: true, force: true })
  }
}, 60_000)
