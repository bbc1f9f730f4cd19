import * as Automerge from '@automerge/automerge'
import { canonicalJson } from '../util/canonical-json.js'

/** The identity of a set element: a category is itself; an attendee / recipient is its address (case-insensitive). */
export function setElementKey(element: unknown): string {
  if (typeof element === 'string') return `s:${element}`
  if (element !== null && typeof element === 'object' && typeof (element as { address?: unknown }).address === 'string') return `a:${(element as { address: string }).address.toLowerCase()}`
  return `j:${canonicalJson(element)}`
}

export type SetValue = readonly unknown[] | null | undefined

export interface SetMergeResult {
  value: unknown[] | null
}

interface Entry {
  value: unknown
  json: string
}

const jsonOf = (element: unknown): string => (typeof element === 'string' ? JSON.stringify(element) : canonicalJson(element))

function index(list: SetValue): Map<string, Entry> {
  const map = new Map<string, Entry>()
  for (const element of list ?? []) {
    const key = setElementKey(element)
    if (!map.has(key)) map.set(key, { value: element, json: jsonOf(element) })
  }
  return map
}

/**
 * The side whose whole value has the greater canonical JSON: it wins an element both sides changed
 * differently. Symmetric, so swapping the sides never changes a result.
 */
function dominant(crm: SetValue, mailbox: SetValue): 'crm' | 'mailbox' {
  return canonicalJson(crm ?? null) >= canonicalJson(mailbox ?? null) ? 'crm' : 'mailbox'
}

/** Result order: surviving base elements in base order, then additions sorted by key. */
function order(base: Map<string, unknown>, result: Map<string, unknown>): unknown[] {
  const out: unknown[] = []
  for (const key of base.keys()) if (result.has(key)) out.push(result.get(key))
  const added = [...result.keys()].filter((key) => !base.has(key)).sort()
  for (const key of added) out.push(result.get(key))
  return out
}

function finish(out: unknown[], crm: SetValue, mailbox: SetValue): unknown[] | null {
  return out.length === 0 && (crm === null || mailbox === null) ? null : out
}

/**
 * Plain 3-way set merge. An element is in the result when both sides keep it, or either side adds
 * it; a removal on one side wins over the other side keeping it unchanged, but an update wins over a
 * concurrent removal (the same rule as an Automerge map). An element both sides changed differently
 * takes the dominant side's value. Deterministic and symmetric in the two sides.
 */
export function mergeSetsPlain(base: SetValue, crm: SetValue, mailbox: SetValue): unknown[] | null {
  const b = index(base)
  const c = index(crm)
  const m = index(mailbox)
  let win: 'crm' | 'mailbox' | undefined
  const result = new Map<string, unknown>()
  const decide = (key: string) => {
    const be = b.get(key)
    const ce = c.get(key)
    const me = m.get(key)
    const cChanged = ce?.json !== be?.json
    const mChanged = me?.json !== be?.json
    let pick: Entry | undefined
    if (!cChanged && !mChanged) pick = ce
    else if (cChanged && !mChanged) pick = ce
    else if (!cChanged && mChanged) pick = me
    else if (ce === undefined) pick = me
    else if (me === undefined) pick = ce
    else if (ce.json === me.json) pick = ce
    else pick = (win ??= dominant(crm, mailbox)) === 'crm' ? ce : me
    if (pick !== undefined) result.set(key, pick.value)
  }
  for (const key of b.keys()) decide(key)
  for (const key of c.keys()) if (!b.has(key)) decide(key)
  for (const key of m.keys()) if (!b.has(key) && !c.has(key)) decide(key)
  return finish(order(b, result), crm, mailbox)
}

type SetDoc = { s: Record<string, Automerge.ImmutableString>; p?: number }
const BASE_ACTOR = '00'
const LOW_ACTOR = '01'
const HIGH_ACTOR = '02'

/**
 * The same 3-way set merge through Automerge 3.5: the base becomes a map from element key to the
 * element's JSON; each side's removals and additions/updates are applied to its own fork as one
 * change; the forks are merged and the map read back. The dominant side gets the higher actor id,
 * so Automerge's conflict winner matches `mergeSetsPlain`. Materialised per call and dropped.
 */
export function mergeSetsAutomerge(base: SetValue, crm: SetValue, mailbox: SetValue): unknown[] | null {
  const b = index(base)
  const initial: SetDoc = { s: {} }
  for (const [key, entry] of b) initial.s[key] = new Automerge.ImmutableString(entry.json)
  const root = Automerge.from<SetDoc>(initial, BASE_ACTOR)
  const win = dominant(crm, mailbox)
  // Both forks make exactly one operation per key of the union, in the same order (a write to the
  // scratch field `p` where a side leaves the key alone), so concurrent writes to one key carry the
  // same op counter and Automerge's winner is decided by the actor id alone.
  const sides = [index(crm), index(mailbox)]
  const union = [...new Set([...b.keys(), ...sides[0]!.keys(), ...sides[1]!.keys()])].sort()
  const fork = (mine: Map<string, Entry>, actor: string) =>
    Automerge.change(Automerge.clone(root, actor), (d) => {
      for (const [i, key] of union.entries()) {
        const entry = mine.get(key)
        const before = b.get(key)
        if (entry === undefined && before !== undefined) delete d.s[key]
        else if (entry !== undefined && entry.json !== before?.json) d.s[key] = new Automerge.ImmutableString(entry.json)
        else d.p = i
      }
    })
  const merged = Automerge.merge(fork(sides[0]!, win === 'crm' ? HIGH_ACTOR : LOW_ACTOR), fork(sides[1]!, win === 'mailbox' ? HIGH_ACTOR : LOW_ACTOR))
  const result = new Map<string, unknown>()
  for (const [key, value] of Object.entries(merged.s)) result.set(key, JSON.parse(value.toString()))
  return finish(order(b, result), crm, mailbox)
}

export const SetMergeEngines = ['plain', 'automerge'] as const
export type SetMergeEngine = (typeof SetMergeEngines)[number]

export function mergeSets(engine: SetMergeEngine, base: SetValue, crm: SetValue, mailbox: SetValue): unknown[] | null {
  return engine === 'automerge' ? mergeSetsAutomerge(base, crm, mailbox) : mergeSetsPlain(base, crm, mailbox)
}
