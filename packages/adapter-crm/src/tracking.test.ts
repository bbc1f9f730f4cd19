import { describe, expect, test } from 'vitest'
import { addressOverlap, extractTrackingToken, normalizeSubject, shouldTrack, type AutoTrackOption } from './index.js'

const header = { sender: 'ann@customer.test', recipients: ['alice@contoso.test'], subject: 'Hello' }
const none = { senderRecordTypes: [], respondsToTrackedEmail: false }

describe('shouldTrack (pure)', () => {
  test.each<[AutoTrackOption, { senderRecordTypes: string[]; respondsToTrackedEmail: boolean }, boolean]>([
    ['all', none, true],
    ['none', { senderRecordTypes: ['contact'], respondsToTrackedEmail: true }, false],
    ['responsesToCrmEmail', none, false],
    ['responsesToCrmEmail', { senderRecordTypes: [], respondsToTrackedEmail: true }, true],
    ['fromLeadsContactsAccounts', { senderRecordTypes: ['contact'], respondsToTrackedEmail: false }, true],
    ['fromLeadsContactsAccounts', { senderRecordTypes: ['lead'], respondsToTrackedEmail: false }, true],
    ['fromLeadsContactsAccounts', { senderRecordTypes: ['systemuser'], respondsToTrackedEmail: false }, false],
    ['fromEmailEnabledRecords', { senderRecordTypes: ['systemuser'], respondsToTrackedEmail: false }, true],
    ['fromEmailEnabledRecords', none, false],
  ])('%s with %j → %s', (option, lookups, expected) => {
    const d = shouldTrack(header, option, lookups)
    expect(d.track).toBe(expected)
    expect(d.reason).toBeTruthy()
  })

  test('privacy: the input may hold only sender, recipients and subject', () => {
    expect(() => shouldTrack({ ...header, body: 'secret' } as never, 'all', none)).toThrow(/body/)
    expect(() => shouldTrack({ ...header, sender: '' }, 'all', none)).toThrow(/sender/)
  })
})

describe('correlation helpers', () => {
  test('tracking token at the end of the subject, with a configurable prefix', () => {
    expect(extractTrackingToken('RE: Offer CRM:0001005')).toBe('CRM:0001005')
    expect(extractTrackingToken('CRM:0001005 is in the middle of it')).toBeNull()
    expect(extractTrackingToken('Offer TKN#42', 'TKN#')).toBe('TKN#42')
  })
  test('subjects normalize without reply prefixes, token and case', () => {
    expect(normalizeSubject('RE: Fw: AW:  Quarterly   Review CRM:0001001')).toBe('quarterly review')
    expect(normalizeSubject('Re[2]: x')).toBe('x')
  })
  test('address overlap counts distinct shared addresses, case-insensitively', () => {
    expect(addressOverlap(['A@x.test', 'b@x.test'], ['a@X.test', 'a@x.test', 'c@x.test'])).toBe(1)
  })
})
