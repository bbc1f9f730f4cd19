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

function index(list: SetValue): Map<string, unknown> {
  const map = new Map<string, unknown>()
  for (const element of list ?? []) if (!map.has(setElementKey(element))) map.set(setElementKey(element), element)
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
  const win = dominant(crm, mailbox)
  const result = new Map<string, unknown>()
  const keys = new Set([...b.keys(), ...c.keys(), ...m.keys()])
  for (const key of keys) {
    const inBase = b.has(key)
    const baseJson = inBase ? canonicalJson(b.get(key)) : undefined
    const cJson = c.has(key) ? canonicalJson(c.get(key)) : undefined
    const mJson = m.has(key) ? canonicalJson(m.get(key)) : undefined
    const cChanged = cJson !== baseJson
    const mChanged = mJson !== baseJson
    let pick: 'crm' | 'mailbox' | 'none'
    if (!cChanged && !mChanged) pick = inBase ? 'crm' : 'none'
    else if (cChanged && !mChanged) pick = cJson === undefined ? 'none' : 'crm'
    else if (!cChanged && mChanged) pick = mJson === undefined ? 'none' : 'mailbox'
    else if (cJson === undefined && mJson === undefined) pick = 'none'
    else if (cJson === undefined) pick = 'mailbox'
    else if (mJson === undefined) pick = 'crm'
    else pick = cJson === mJson ? 'crm' : win
    if (pick === 'crm') result.set(key, c.get(key))
    else if (pick === 'mailbox') result.set(key, m.get(key))
  }
  return finish(order(b, result), crm, mailbox)
}

type SetDoc = { s: Record<string, Automerge.ImmutableString> }
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
  for (const [key, element] of b) initial.s[key] = new Automerge.ImmutableString(canonicalJson(element))
  const root = Automerge.from<SetDoc>(initial, BASE_ACTOR)
  const win = dominant(crm, mailbox)
  const fork = (side: SetValue, actor: string) => {
    const mine = index(side)
    const doc = Automerge.clone(root, actor)
    return Automerge.change(doc, (d) => {
      for (const key of b.keys()) if (!mine.has(key)) delete d.s[key]
      for (const [key, element] of mine) {
        const json = canonicalJson(element)
        if (!b.has(key) || canonicalJson(b.get(key)) !== json) d.s[key] = new Automerge.ImmutableString(json)
      }
    })
  }
  const merged = Automerge.merge(fork(crm, win === 'crm' ? HIGH_ACTOR : LOW_ACTOR), fork(mailbox, win === 'mailbox' ? HIGH_ACTOR : LOW_ACTOR))
  const result = new Map<string, unknown>()
  for (const [key, value] of Object.entries(merged.s)) result.set(key, JSON.parse(value.toString()))
  return finish(order(b, result), crm, mailbox)
}

export const SetMergeEngines = ['plain', 'automerge'] as const
export type SetMergeEngine = (typeof SetMergeEngines)[number]

export function mergeSets(engine: SetMergeEngine, base: SetValue, crm: SetValue, mailbox: SetValue): unknown[] | null {
  return engine === 'automerge' ? mergeSetsAutomerge(base, crm, mailbox) : mergeSetsPlain(base, crm, mailbox)
}
