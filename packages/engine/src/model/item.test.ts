import { describe, expect, test } from 'vitest'
import { ValidationError } from '../errors.js'
import { sampleFields } from '../testing/sample-fields.js'
import { ItemKinds, fieldNames, hashFields, parseFields } from './item.js'

describe('canonical item model', () => {
  test.each(ItemKinds)('sample %s fields are valid', (kind) => {
    expect(parseFields(kind, sampleFields(kind, 3))).toEqual(sampleFields(kind, 3))
  })

  test('an unknown field is rejected and named', () => {
    expect(() => parseFields('contact', { givenName: 'A', shoeSize: 44 })).toThrow(ValidationError)
    expect(() => parseFields('contact', { givenName: 'A', shoeSize: 44 })).toThrow(/shoeSize/)
  })

  test('an invalid nested value names the full path', () => {
    try {
      parseFields('email', { to: [{ address: 'a@b.test' }, { name: 'no address' }] })
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError)
      expect((error as ValidationError).issues.map((i) => i.path)).toContain('to.1.address')
    }
  })

  test('time zones and date-times are validated', () => {
    expect(() => parseFields('appointment', { start: { dateTime: '2026-13-45 nope', timeZone: 'UTC' } })).toThrow(/start.dateTime/)
    expect(parseFields('appointment', { start: { dateTime: '2026-03-29T02:30:00', timeZone: 'Europe/Berlin' } }).start?.timeZone).toBe('Europe/Berlin')
    expect(() => parseFields('email', { sentAt: 'yesterday' })).toThrow(/sentAt/)
  })

  test('null means cleared and absent means unknown; both are accepted', () => {
    expect(parseFields('task', { subject: null })).toEqual({ subject: null })
    expect(parseFields('task', {})).toEqual({})
  })

  test('enums reject values outside the set', () => {
    expect(() => parseFields('task', { status: 'done' })).toThrow(/status/)
    expect(() => parseFields('appointment', { showAs: 'away' })).toThrow(/showAs/)
  })

  test('every kind lists the fields the issue names', () => {
    expect(fieldNames('email')).toEqual(expect.arrayContaining(['subject', 'body', 'from', 'to', 'cc', 'bcc', 'sentAt', 'receivedAt', 'internetMessageId', 'inReplyTo', 'conversationId', 'direction', 'regarding', 'categories']))
    expect(fieldNames('appointment')).toEqual(expect.arrayContaining(['start', 'end', 'location', 'organizer', 'requiredAttendees', 'optionalAttendees', 'recurrence', 'isAllDay', 'showAs', 'categories', 'regarding']))
    expect(fieldNames('contact')).toEqual(expect.arrayContaining(['givenName', 'surname', 'email1', 'email2', 'email3', 'businessPhone', 'companyName', 'jobTitle', 'businessAddress', 'birthday', 'notes', 'categories']))
    expect(fieldNames('task')).toEqual(expect.arrayContaining(['subject', 'description', 'due', 'start', 'status', 'priority', 'percentComplete', 'categories', 'regarding']))
  })

  test('the content hash ignores key order and sees every value', () => {
    expect(hashFields({ a: 1, b: { x: 1, y: 2 } })).toBe(hashFields({ b: { y: 2, x: 1 }, a: 1 }))
    expect(hashFields({ a: 1 })).not.toBe(hashFields({ a: 2 }))
    expect(hashFields({ a: null })).not.toBe(hashFields({}))
  })
})
