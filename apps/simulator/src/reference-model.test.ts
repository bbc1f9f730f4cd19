import { deepFreeze } from '@concord/engine'
import { expect, test } from 'vitest'
import { resolveConflictPolicy } from './conflict-policies.js'
import { type ModelItem, modelCreate, modelWrite, settleModel } from './reference-model.js'

const crmWins = resolveConflictPolicy('crm-wins').model

/** Settles one item as after a clean cycle of both sides; returns the conflicts. */
const settle = (item: ModelItem) => settleModel(new Map([['i', item]]), new Set(['i']), crmWins)

test("the model shares a frozen payload instead of copying it, and copies it before a write (the workload's event stays as it was)", () => {
  const payload = deepFreeze({ givenName: 'Ann', surname: 'Lee', to: undefined })
  const item = modelCreate('contact', 'mailbox', payload, 0)
  expect(item.sides.mailbox).toBe(payload)
  expect(settle(item)).toBe(0)
  // created on the CRM side: the values that flow there (here: every defined one), shared by that side and the base
  expect(item.linked).toBe(true)
  expect(item.sides.crm).toEqual({ givenName: 'Ann', surname: 'Lee' })
  expect(item.base).toBe(item.sides.crm)
  expect(Object.isFrozen(item.base)).toBe(true)

  modelWrite(item, 'crm', 'update', { surname: 'Li' }, 1)
  expect(item.sides.crm).toEqual({ givenName: 'Ann', surname: 'Li' })
  expect(item.base).toEqual({ givenName: 'Ann', surname: 'Lee' })
  expect(settle(item)).toBe(0)
  expect(item.sides.mailbox).toEqual({ givenName: 'Ann', surname: 'Li', to: undefined })
  expect(item.base).toEqual({ givenName: 'Ann', surname: 'Li' })
  expect(payload).toEqual({ givenName: 'Ann', surname: 'Lee', to: undefined })
})

test('an item created from every value of the other side shares that side: a write to one changes neither the other nor the base', () => {
  const payload = deepFreeze({ givenName: 'Ann', surname: 'Lee' })
  const item = modelCreate('contact', 'crm', payload, 0)
  settle(item)
  expect(item.sides.mailbox).toBe(payload)
  expect(item.base).toBe(payload)
  modelWrite(item, 'mailbox', 'update', { surname: 'Mailbox' }, 1)
  modelWrite(item, 'crm', 'update', { surname: 'Crm' }, 2)
  expect(settle(item)).toBe(1) // both changed: crm-wins
  expect(item.sides.crm).toEqual({ givenName: 'Ann', surname: 'Crm' })
  expect(item.sides.mailbox).toEqual({ givenName: 'Ann', surname: 'Crm' })
  expect(item.base).toEqual({ givenName: 'Ann', surname: 'Crm' })
  expect(payload).toEqual({ givenName: 'Ann', surname: 'Lee' })
})

test('an unfrozen payload is copied: the caller keeps its own object', () => {
  const payload: Record<string, unknown> = { givenName: 'Ann' }
  const item = modelCreate('contact', 'crm', payload, 0)
  payload.givenName = 'Changed'
  expect(item.sides.crm).toEqual({ givenName: 'Ann' })
})
