/**
 * Merge throughput (performance.md goals 6 and 7). Run: `npx tsx bench/merge-bench.ts` from
 * packages/engine. Every figure includes decoding LogEntry-shaped JSON strings (the log format).
 */
import { asConcordId, asPairId } from '../src/ids.js'
import type { LogEntry } from '../src/store/records.js'
import type { MergeInput, SideChange } from '../src/sync/merge-strategy.js'
import { PolicyMerge } from '../src/merge/policy-merge.js'
import { mergeSetsAutomerge, mergeSetsPlain } from '../src/merge/set-merge.js'

const CONTACT_FIELDS = ['givenName', 'middleName', 'surname', 'displayName', 'email1', 'businessPhone', 'mobilePhone', 'companyName', 'jobTitle', 'department', 'birthday', 'notes']

function baseContact(i: number): Record<string, unknown> {
  return {
    givenName: `Given${i}`,
    middleName: 'M',
    surname: `Family${i}`,
    displayName: `Given${i} Family${i}`,
    email1: `p${i}@fabrikam.test`,
    businessPhone: `+49 30 ${1000 + i}`,
    mobilePhone: `+49 170 ${2000 + i}`,
    companyName: `Company ${i % 97}`,
    jobTitle: 'Buyer',
    department: 'Purchasing',
    birthday: '1980-01-01',
    notes: `Met at fair ${i}`,
  }
}

function logEntry(i: number, seq: number, fields: Record<string, unknown>, modifiedAt: number): string {
  const entry: LogEntry = { seq, concordId: asConcordId(`c${i}`), nativeId: `n${i}` as LogEntry['nativeId'], kind: 'contact', type: 'upsert', version: `v${seq}` as LogEntry['version'], hash: 'h', fields, modifiedAt, at: modifiedAt }
  return JSON.stringify(entry)
}

function toChange(json: string): SideChange {
  const entry = JSON.parse(json) as LogEntry
  return { type: 'upsert', fields: entry.fields ?? {}, version: entry.version!, modifiedAt: entry.modifiedAt }
}

const pairId = asPairId('bench')

function bestOf<T>(runs: number, fn: () => T): { ms: number; result: T } {
  let best = Infinity
  let result!: T
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now()
    result = fn()
    best = Math.min(best, performance.now() - t0)
  }
  return { ms: best, result }
}

/** LWW / crm-wins path: N items, each side changes 4 of 12 fields (2 overlap → conflicts). */
export function fieldPath(policy: 'crm-wins' | 'lww' | 'decode-only', items = 20_000): number {
  const merge = new PolicyMerge({ policies: { default: policy === 'lww' ? 'lww' : 'crm-wins' } })
  const bases: Record<string, unknown>[] = []
  const crmLog: string[] = []
  const mailboxLog: string[] = []
  let changes = 0
  for (let i = 0; i < items; i++) {
    const base = baseContact(i)
    bases.push(base)
    const crm = { ...base }
    const mailbox = { ...base }
    for (let k = 0; k < 4; k++) crm[CONTACT_FIELDS[(i + k) % 12]!] = `crm ${i}.${k}`
    for (let k = 2; k < 6; k++) mailbox[CONTACT_FIELDS[(i + k) % 12]!] = `mbx ${i}.${k}`
    crmLog.push(logEntry(i, i * 2, crm, 1000 + i))
    mailboxLog.push(logEntry(i, i * 2 + 1, mailbox, 1001 + i))
    changes += 8
  }
  const { ms, result } = bestOf(5, () => {
    let decided = 0
    if (policy === 'decode-only') {
      // Calibration: only the decode (JSON.parse of both log entries), the ceiling of this machine right now.
      for (let i = 0; i < items; i++) decided += (toChange(crmLog[i]!).type === 'upsert' ? 3 : 0) + (toChange(mailboxLog[i]!).type === 'upsert' ? 3 : 0)
      return decided
    }
    for (let i = 0; i < items; i++) {
      const input: MergeInput = {
        pairId,
        concordId: asConcordId(`c${i}`),
        kind: 'contact',
        base: { kind: 'contact', fields: bases[i]!, fieldVersions: {}, versions: {} },
        changes: { crm: toChange(crmLog[i]!), mailbox: toChange(mailboxLog[i]!) },
        exists: { crm: true, mailbox: true },
      }
      decided += merge.merge(input).fields.length
    }
    return decided
  })
  if (result !== items * 6) throw new Error(`field path decided ${result} fields, expected ${items * 6}`)
  return (changes / ms) * 1000
}

/** Text path: every item has a body edited on both sides; merged through Yjs in batches. */
export function textPath(items = 20_000, batch = 200): { editsPerSec: number; mergesPerSec: number } {
  const merge = new PolicyMerge({ policies: { appointment: { body: 'text-merge' } } })
  const crmLog: string[] = []
  const mailboxLog: string[] = []
  const bases: string[] = []
  for (let i = 0; i < items; i++) {
    const base = `Agenda for meeting ${i}: review the numbers, then questions.`
    bases.push(base)
    crmLog.push(JSON.stringify({ seq: i, concordId: `c${i}`, nativeId: `n${i}`, kind: 'appointment', type: 'upsert', version: `v${i}`, fields: { body: base.replace('review', 'review the Q3') }, at: 0 }))
    mailboxLog.push(JSON.stringify({ seq: i, concordId: `c${i}`, nativeId: `m${i}`, kind: 'appointment', type: 'upsert', version: `w${i}`, fields: { body: `${base} Lunch after.` }, at: 0 }))
  }
  const { ms, result } = bestOf(3, () => {
    let merged = 0
    for (let start = 0; start < items; start += batch) {
      const inputs: MergeInput[] = []
      for (let i = start; i < Math.min(items, start + batch); i++) {
        inputs.push({
          pairId,
          concordId: asConcordId(`c${i}`),
          kind: 'appointment',
          base: { kind: 'appointment', fields: { body: bases[i]! }, fieldVersions: {}, versions: {} },
          changes: { crm: toChange(crmLog[i]!), mailbox: toChange(mailboxLog[i]!) },
          exists: { crm: true, mailbox: true },
        })
      }
      for (const d of merge.mergeBatch(inputs)) if (d.fields[0]?.outcome === 'merged') merged++
    }
    return merged
  })
  if (result !== items) throw new Error(`text path merged ${result} of ${items}`)
  return { editsPerSec: ((items * 2) / ms) * 1000, mergesPerSec: (items / ms) * 1000 }
}

/** 3-way set merges of attendee lists (5 attendees; each side adds one and removes one). */
export function setPath(engine: 'plain' | 'automerge', items: number): number {
  const cases = Array.from({ length: items }, (_, i) => {
    const base = Array.from({ length: 5 }, (_, k) => ({ address: `a${i}.${k}@x.test`, name: `A ${k}` }))
    return JSON.stringify({ base, crm: [...base.slice(1), { address: `c${i}@x.test` }], mailbox: [...base.slice(0, 4), { address: `m${i}@x.test` }] })
  })
  const fn = engine === 'plain' ? mergeSetsPlain : mergeSetsAutomerge
  const { ms } = bestOf(3, () => {
    for (const json of cases) {
      const c = JSON.parse(json) as { base: unknown[]; crm: unknown[]; mailbox: unknown[] }
      const out = fn(c.base, c.crm, c.mailbox)
      if (out?.length !== 5) throw new Error('set merge produced a wrong result')
    }
  })
  return (items / ms) * 1000
}

export async function runMergeBench(): Promise<Record<string, number>> {
  const round = (n: number) => Math.round(n)
  // Cheapest paths first, Automerge (WASM heap) last, so one path's garbage does not bill the next.
  const mergeFieldChangesPerSec = fieldPath('crm-wins')
  const mergeFieldChangesLwwPerSec = fieldPath('lww')
  const decodeOnlyFieldChangesPerSec = fieldPath('decode-only')
  const plain = setPath('plain', 50_000)
  const text = textPath()
  const automerge = setPath('automerge', 1_000)
  return {
    mergeFieldChangesPerSec: round(mergeFieldChangesPerSec),
    mergeFieldChangesLwwPerSec: round(mergeFieldChangesLwwPerSec),
    decodeOnlyFieldChangesPerSec: round(decodeOnlyFieldChangesPerSec),
    yjsFieldChangesPerSec: round(text.editsPerSec),
    yjsMergesPerSec: round(text.mergesPerSec),
    // The default set-merge engine is the plain 3-way merge (see README: same results, far faster).
    setMergePerSec: round(plain),
    setMergePlainPerSec: round(plain),
    setMergeAutomergePerSec: round(automerge),
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const figures = await runMergeBench()
  for (const [key, value] of Object.entries(figures)) console.log(`${key.padEnd(28)} ${value.toLocaleString('en-US')}`)
}
