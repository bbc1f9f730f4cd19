import { expect, test } from 'vitest'
import { evaluate, objectResolver, parseFilter } from './filter.js'
import { rewriteExtIds } from './query.js'

const item = {
  subject: 'Quarterly Review',
  isRead: false,
  importance: 'high',
  receivedDateTime: '2030-01-02T10:00:00Z',
  categories: ['Red category', 'Tracked to Dynamics 365'],
  from: { emailAddress: { address: 'Boss@Fabrikam.test' } },
  singleValueExtendedProperties: [{ id: 'string {66f5a359-4659-4830-9070-00040ec6ac6e} name CrmId', value: 'A-1' }],
}

const ev = (f: string): boolean => evaluate(rewriteExtIds(parseFilter(f), '\0'), objectResolver(item))

test('comparisons, boolean logic and functions', () => {
  expect(ev("subject eq 'quarterly review'")).toBe(true)
  expect(ev("subject ne 'x' and isRead eq false")).toBe(true)
  expect(ev("importance eq 'low' or (isRead eq false and not (importance eq 'low'))")).toBe(true)
  expect(ev('receivedDateTime ge 2030-01-01T00:00:00Z')).toBe(true)
  expect(ev('receivedDateTime gt 2030-01-03T00:00:00Z')).toBe(false)
  expect(ev("contains(subject, 'review')")).toBe(true)
  expect(ev("startswith(from/emailAddress/address, 'boss@')")).toBe(true)
  expect(ev("categories/any(c:c eq 'tracked to dynamics 365')")).toBe(true)
})

test('extended property ids: name part is case-sensitive, the rest is not; values case-insensitive', () => {
  expect(ev("singleValueExtendedProperties/Any(ep: ep/id eq 'String {66F5A359-4659-4830-9070-00040EC6AC6E} Name CrmId' and ep/value eq 'a-1')")).toBe(true)
  expect(ev("singleValueExtendedProperties/Any(ep: ep/id eq 'String {66f5a359-4659-4830-9070-00040ec6ac6e} Name crmid' and ep/value eq 'A-1')")).toBe(false)
})

test('syntax errors are 400s', () => {
  expect(() => parseFilter("subject eq 'x")).toThrow(/unterminated/)
  expect(() => parseFilter('subject eq')).toThrow(/Invalid filter/)
  expect(() => parseFilter("(subject eq 'x'")).toThrow(/expected '\)'/)
})
