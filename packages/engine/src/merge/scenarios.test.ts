import { describe, expect, test } from 'vitest'
import type { Fields } from '../model/item.js'
import type { Side, SideChange } from '../sync/merge-strategy.js'
import type { ConflictPolicy } from './config.js'
import type { FieldAccess } from './context.js'
import { type Direction, flowsToCrm, flowsToMailbox } from './directions.js'
import { PolicyMerge, effectiveDirection } from './policy-merge.js'
import { type SideState, applyDecision, mergeInput, upsert } from './test-helpers.js'

/**
 * vdirsyncer-style scenario table (peers.md §3.1), per field: every combination of
 * {created, changed, deleted, unchanged} on each side × direction × mask × policy, run against
 * PolicyMerge directly. The expected column is the written specification below (`expected`), not the
 * implementation: the final value each side holds after the decision's writes are applied.
 */
type State = 'created' | 'changed' | 'deleted' | 'unchanged'
type MaskName = 'full' | 'no-read' | 'no-update'
const STATES: State[] = ['created', 'changed', 'deleted', 'unchanged']
const DIRECTIONS: Direction[] = ['both', 'toCrm', 'toExchange', 'none']
const MASKS: MaskName[] = ['full', 'no-read', 'no-update']
const POLICIES: ConflictPolicy[] = ['crm-wins', 'exchange-wins', 'lww', 'text-merge', 'set-merge', 'keep-both']

/** Per policy, the field under test and its values: base, the CRM's edit, the mailbox's edit, and the expected merges. */
const VALUES: Record<ConflictPolicy, { field: string; base: unknown; crm: unknown; mailbox: unknown; merged?: unknown; mergedNoBase?: unknown }> = {
  'crm-wins': { field: 'subject', base: 'base', crm: 'crm', mailbox: 'mbx' },
  'exchange-wins': { field: 'subject', base: 'base', crm: 'crm', mailbox: 'mbx' },
  // The mailbox edit is later (modifiedAt 2 > 1), so lww picks it.
  lww: { field: 'subject', base: 'base', crm: 'crm', mailbox: 'mbx' },
  'text-merge': { field: 'description', base: 'alpha beta', crm: 'alpha beta gamma', mailbox: 'zero alpha beta', merged: 'zero alpha beta gamma', mergedNoBase: 'alpha beta gammazero alpha beta' },
  'set-merge': { field: 'categories', base: ['a', 'b'], crm: ['a', 'b', 'c'], mailbox: ['b'], merged: ['b', 'c'], mergedNoBase: ['a', 'b', 'c'] },
  'keep-both': { field: 'subject', base: 'base', crm: 'crm', mailbox: 'mbx' },
}
const ACCESS: Record<MaskName, FieldAccess> = { full: { read: true, update: true }, 'no-read': { read: false, update: false }, 'no-update': { read: true, update: false } }
/** Every record also carries a plain two-way field, so a re-created copy is never empty. */
const OTHER = { priority: 'normal' }
const ABSENT = Symbol('absent')
const GONE = 'gone' as const

interface Expected {
  crm: unknown
  mailbox: unknown
  blocked: boolean
  conflictKept: boolean
}

function expected(crmState: State, mailboxState: State, direction: Direction, mask: MaskName, policy: ConflictPolicy): Expected {
  const v = VALUES[policy]
  const e = effectiveDirection(direction, ACCESS[mask])
  const toMailbox = flowsToMailbox(e)
  const toCrm = flowsToCrm(e)
  // A mailbox edit of a field the user cannot update is undone from the CRM value (masks, issue §2).
  const restores = mask === 'no-update' && (direction === 'both' || direction === 'toExchange')
  const readable = mask !== 'no-read'
  const r = (crm: unknown, mailbox: unknown, blocked = false, conflictKept = false): Expected => ({ crm, mailbox, blocked, conflictKept })
  const key = `${crmState}/${mailboxState}`
  switch (key) {
    case 'unchanged/unchanged':
      return r(v.base, v.base)
    case 'changed/unchanged':
      return toMailbox ? r(v.crm, v.crm) : r(v.crm, v.base, readable)
    case 'unchanged/changed':
      if (toCrm) return r(v.mailbox, v.mailbox)
      if (restores) return r(v.base, v.base, true)
      return r(v.base, v.mailbox, true)
    case 'changed/changed':
    case 'created/created': {
      const noBase = key === 'created/created'
      if (!toCrm && !toMailbox) return r(v.crm, v.mailbox, readable)
      if (!toCrm) return r(v.crm, v.crm)
      if (!toMailbox) return r(v.mailbox, v.mailbox)
      switch (policy) {
        case 'crm-wins':
          return r(v.crm, v.crm)
        case 'exchange-wins':
        case 'lww':
          return r(v.mailbox, v.mailbox)
        case 'text-merge':
        case 'set-merge':
          return noBase ? r(v.mergedNoBase, v.mergedNoBase) : r(v.merged, v.merged)
        case 'keep-both':
          return r(v.crm, v.mailbox, false, true)
      }
      break
    }
    case 'deleted/unchanged':
    case 'unchanged/deleted':
    case 'deleted/deleted':
      return r(GONE, GONE)
    // An edit beats a delete: the deleted copy is re-created with what may flow to it.
    case 'changed/deleted':
      return r(v.crm, toMailbox ? v.crm : ABSENT)
    case 'deleted/changed':
      return r(toCrm ? v.mailbox : ABSENT, v.mailbox)
    // Created on one side only: the other side gets a copy (a mailbox item here is tracked).
    case 'created/unchanged':
      return r(v.crm, toMailbox ? v.crm : ABSENT)
    case 'unchanged/created':
      return r(toCrm ? v.mailbox : ABSENT, v.mailbox)
  }
  throw new Error(`no expectation for ${key}`)
}

/** 'created' needs no base on either side; it pairs with 'created' or with 'unchanged' meaning "absent there". */
const consistent = (a: State, b: State) => (a === 'created') === (b === 'created') || (a === 'created' && b === 'unchanged') || (b === 'created' && a === 'unchanged')

interface Row {
  crmState: State
  mailboxState: State
  direction: Direction
  mask: MaskName
  policy: ConflictPolicy
}
const rows: Row[] = []
for (const crmState of STATES)
  for (const mailboxState of STATES)
    if (consistent(crmState, mailboxState))
      for (const direction of DIRECTIONS) for (const mask of MASKS) for (const policy of POLICIES) rows.push({ crmState, mailboxState, direction, mask, policy })

function run(row: Row) {
  const v = VALUES[row.policy]
  const created = row.crmState === 'created' || row.mailboxState === 'created'
  const base: Fields | undefined = created ? undefined : { ...OTHER, [v.field]: v.base }
  const before: Record<Side, SideState> = { crm: created && row.crmState !== 'created' ? null : { ...OTHER, [v.field]: v.base }, mailbox: created && row.mailboxState !== 'created' ? null : { ...OTHER, [v.field]: v.base } }
  const change = (side: Side, state: State): SideChange | undefined => {
    const value = side === 'crm' ? v.crm : v.mailbox
    if (state === 'deleted') return { type: 'delete', provenance: 'user-deleted' }
    if (state === 'changed' || state === 'created') return upsert({ ...OTHER, [v.field]: value }, side === 'crm' ? 1 : 2)
    return undefined
  }
  const crm = change('crm', row.crmState)
  const mailbox = change('mailbox', row.mailboxState)
  for (const [side, c] of [['crm', crm] as const, ['mailbox', mailbox] as const]) if (c?.type === 'upsert') before[side] = { ...c.fields }
  const exists = { crm: before.crm !== null && row.crmState !== 'deleted', mailbox: before.mailbox !== null && row.mailboxState !== 'deleted' }
  if (row.crmState === 'deleted') before.crm = null
  if (row.mailboxState === 'deleted') before.mailbox = null
  const merge = new PolicyMerge({ directions: { task: { [v.field]: row.direction } }, policies: { default: 'crm-wins', task: { [v.field]: row.policy } } })
  const mask = { canSync: true, canSendFromCrm: true, canReadRecord: true, fields: { [v.field]: ACCESS[row.mask] } }
  const decision = merge.merge(mergeInput({ base, crm, mailbox, exists, context: { mask, tracked: true } }))
  const after = applyDecision(decision, before)
  return { decision, after, field: v.field }
}

const valueOf = (state: SideState, field: string): unknown => (state === null ? GONE : field in state ? state[field] : ABSENT)

describe('merge scenario table (state × state × direction × mask × policy)', () => {
  test(`the table covers every consistent combination (${rows.length} rows)`, () => {
    expect(rows).toHaveLength(12 * DIRECTIONS.length * MASKS.length * POLICIES.length)
  })

  test.each(rows)('crm $crmState / mailbox $mailboxState, direction $direction, mask $mask, policy $policy', (row) => {
    const want = expected(row.crmState, row.mailboxState, row.direction, row.mask, row.policy)
    const { decision, after, field } = run(row)
    expect({ crm: valueOf(after.crm, field), mailbox: valueOf(after.mailbox, field) }).toEqual({ crm: want.crm, mailbox: want.mailbox })
    const fd = decision.fields.find((f) => f.field === field)
    if (want.blocked) expect(fd?.outcome).toBe('blocked')
    expect((decision.conflicts ?? []).map((c) => c.field)).toEqual(want.conflictKept ? [field] : [])
    // An unreadable field is never written to either side, and never as null.
    if (row.mask === 'no-read') for (const write of Object.values(decision.writes)) if (write && write.type !== 'delete') expect(write.fields).not.toHaveProperty(field)
    // Idempotence: merging the result again (each side's state as a fresh change, base = the agreed values) writes nothing.
    const agreed: Fields = {}
    if (after.crm && after.mailbox) for (const name of Object.keys({ ...after.crm, ...after.mailbox })) if (JSON.stringify(after.crm[name]) === JSON.stringify(after.mailbox[name])) agreed[name] = after.crm[name]
    // After a create (or a re-create beating a delete) the base is what the new copy was created with.
    const fresh = row.crmState === 'created' || row.mailboxState === 'created' || row.crmState === 'deleted' || row.mailboxState === 'deleted'
    const baseAgain: Fields = { ...(fresh ? {} : { [field]: VALUES[row.policy].base }), ...agreed }
    if (after.crm && after.mailbox) {
      const merge = new PolicyMerge({ directions: { task: { [field]: row.direction } }, policies: { default: 'crm-wins', task: { [field]: row.policy } } })
      const mask = { canSync: true, canSendFromCrm: true, canReadRecord: true, fields: { [field]: ACCESS[row.mask] } }
      const again = merge.merge(mergeInput({ base: baseAgain, crm: upsert(after.crm, 3), mailbox: upsert(after.mailbox, 3), exists: { crm: true, mailbox: true }, context: { mask } }))
      expect(again.writes).toEqual({})
    }
  })
})
