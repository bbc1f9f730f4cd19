import { SyncError } from '@concord/engine'
import { describe, expect, test } from 'vitest'
import { fromGraph, normaliseLocalDateTime, toGraph, utcToZone } from './mapping.js'
import { CONCORD_PROPERTY_ID } from './options.js'

describe('Graph → canonical', () => {
  test('a message maps with absent = unknown and empty = null', () => {
    const m = fromGraph('email', {
      id: 'AAkA1',
      '@odata.etag': 'W/"CQAAAB1"',
      subject: '',
      from: { emailAddress: { name: 'Ann', address: 'ann@x.test' } },
      toRecipients: [{ emailAddress: { address: 'bob@x.test' } }],
      receivedDateTime: '2026-11-01T10:00:00Z',
      singleValueExtendedProperties: [{ id: CONCORD_PROPERTY_ID, value: 'c_1' }],
    }, { direction: 'incoming' })
    expect(m.fields).toEqual({ subject: null, from: { name: 'Ann', address: 'ann@x.test' }, to: [{ address: 'bob@x.test' }], receivedAt: '2026-11-01T10:00:00Z', direction: 'incoming', inReplyTo: null })
    expect(m.version).toBe('W/"CQAAAB1"')
    expect(m.concordId).toBe('c_1')
    expect(m.stampKnown).toBe(true)
    const reply = fromGraph('email', { id: 'AAkA2', '@odata.etag': 'W/"2"', singleValueExtendedProperties: [{ id: 'String 0x1042', value: '<q1@fabrikam.test>' }] }, { direction: 'incoming' })
    expect(reply.fields['inReplyTo']).toBe('<q1@fabrikam.test>')
  })

  test('garbage is InvalidRemoteData naming the field', () => {
    expect(() => fromGraph('contact', { id: 'x', emailAddresses: 'not-a-list' })).toThrow(SyncError)
    try {
      fromGraph('appointment', { id: 'x', start: { dateTime: 42 } })
      expect.unreachable()
    } catch (error) {
      expect((error as SyncError).code).toBe('InvalidRemoteData')
      expect((error as SyncError).message).toMatch(/start\.dateTime/)
    }
    expect(() => fromGraph('task', { title: 'no id' })).toThrow(/id/)
    expect(() => fromGraph('task', { id: 't', status: 'done' })).toThrow(/status/)
  })

  test('event times keep their zone; UTC answers convert back to an IANA original zone', () => {
    const e = fromGraph('appointment', {
      id: 'e1',
      start: { dateTime: '2026-03-29T07:30:00.0000000', timeZone: 'UTC' },
      end: { dateTime: '2026-03-29T08:30:00.0000000', timeZone: 'UTC' },
      originalStartTimeZone: 'Europe/Berlin',
      originalEndTimeZone: 'Europe/Berlin',
      transactionId: 'concord:c_9',
    })
    expect(e.fields['start']).toEqual({ dateTime: '2026-03-29T09:30:00', timeZone: 'Europe/Berlin' })
    expect(e.fields['end']).toEqual({ dateTime: '2026-03-29T10:30:00', timeZone: 'Europe/Berlin' })
    expect(e.concordId).toBe('c_9')
    const windows = fromGraph('appointment', { id: 'e2', start: { dateTime: '2026-01-05T08:00:00.0000000', timeZone: 'UTC' }, originalStartTimeZone: 'W. Europe Standard Time' })
    expect(windows.fields['start']).toEqual({ dateTime: '2026-01-05T09:00:00', timeZone: 'W. Europe Standard Time' })
    const pacific = fromGraph('appointment', { id: 'e3', start: { dateTime: '2026-07-06T16:00:00.0000000', timeZone: 'UTC' }, originalStartTimeZone: 'Pacific Standard Time' })
    expect(pacific.fields['start']).toEqual({ dateTime: '2026-07-06T09:00:00', timeZone: 'Pacific Standard Time' })
    const unknown = fromGraph('appointment', { id: 'e4', start: { dateTime: '2026-07-06T16:00:00.0000000', timeZone: 'UTC' }, originalStartTimeZone: 'Tzolkin Time' })
    expect(unknown.fields['start']).toEqual({ dateTime: '2026-07-06T16:00:00', timeZone: 'UTC' })
  })

  test('recurrence defaults Graph fills in are dropped', () => {
    const e = fromGraph('appointment', {
      id: 'e3',
      recurrence: {
        pattern: { type: 'weekly', interval: 1, month: 0, dayOfMonth: 0, daysOfWeek: ['monday'], firstDayOfWeek: 'sunday', index: 'first' },
        range: { type: 'noEnd', startDate: '2026-12-01', endDate: '0001-01-01', recurrenceTimeZone: 'UTC', numberOfOccurrences: 0 },
      },
    })
    expect(e.fields['recurrence']).toEqual({ pattern: { type: 'weekly', interval: 1, daysOfWeek: ['monday'] }, range: { type: 'noEnd', startDate: '2026-12-01' } })
  })

  test('contacts: three e-mail slots, first phones, addresses, birthday as a date', () => {
    const c = fromGraph('contact', {
      id: 'c1',
      emailAddresses: [{ address: 'a@x.test' }, { address: 'b@x.test' }],
      businessPhones: ['+1 1', '+1 2'],
      homePhones: [],
      businessAddress: {},
      homeAddress: { city: 'Berlin', street: null },
      birthday: '1980-02-03T11:00:00Z',
    })
    expect(c.fields).toEqual({ email1: 'a@x.test', email2: 'b@x.test', email3: null, businessPhone: '+1 1', homePhone: null, businessAddress: null, homeAddress: { city: 'Berlin' }, birthday: '1980-02-03' })
  })

  test('tasks: the Concord link and the regarding record come from linkedResources', () => {
    const t = fromGraph('task', {
      id: 't1',
      title: 'Call',
      dueDateTime: { dateTime: '2026-12-01T17:00:00.0000000', timeZone: 'UTC' },
      linkedResources: [
        { applicationName: 'Concord', externalId: 'c_7' },
        { applicationName: 'Concord Regarding', externalId: 'accounts:a-1', displayName: 'Fabrikam' },
      ],
    })
    expect(t.concordId).toBe('c_7')
    expect(t.fields).toEqual({ subject: 'Call', due: { dateTime: '2026-12-01T17:00:00', timeZone: 'UTC' }, regarding: { table: 'accounts', id: 'a-1', name: 'Fabrikam' } })
  })
})

describe('canonical → Graph', () => {
  test('only present fields are written; null clears', () => {
    expect(toGraph('task', { subject: null, priority: 'high' })).toEqual({ title: '', importance: 'high' })
    expect(toGraph('email', { to: [{ address: 'b@x.test' }], body: '<p>Hi</p>' })).toEqual({ toRecipients: [{ emailAddress: { address: 'b@x.test' } }], body: { contentType: 'html', content: '<p>Hi</p>' } })
  })

  test('a partial update of one e-mail slot keeps the others (read-modify-write)', () => {
    expect(toGraph('contact', { email2: 'new@x.test' }, { email1: 'a@x.test', email2: 'old@x.test', email3: 'c@x.test' })).toEqual({
      emailAddresses: [{ address: 'a@x.test' }, { address: 'new@x.test' }, { address: 'c@x.test' }],
    })
    expect(toGraph('appointment', { optionalAttendees: null }, { requiredAttendees: [{ address: 'r@x.test' }] })).toEqual({
      attendees: [{ type: 'required', emailAddress: { address: 'r@x.test' } }],
    })
  })
})

test('date-time helpers', () => {
  expect(normaliseLocalDateTime('2026-01-01T09:00:00.0000000')).toBe('2026-01-01T09:00:00')
  expect(normaliseLocalDateTime('2026-01-01T09:00')).toBe('2026-01-01T09:00:00')
  expect(normaliseLocalDateTime('2026-01-01T09:00:00.5000000')).toBe('2026-01-01T09:00:00.5000000')
  expect(utcToZone('2026-07-01T12:00:00', 'America/New_York')).toBe('2026-07-01T08:00:00')
})

describe('recurrence, resource attendees, task dates', () => {
  test('attendees split by type; rooms and equipment are resourceAttendees and go back as type resource', () => {
    const e = fromGraph('appointment', {
      id: 'e9',
      attendees: [
        { type: 'required', emailAddress: { address: 'r@x.test' } },
        { type: 'resource', emailAddress: { name: 'Room 1', address: 'room1@x.test' } },
        { type: 'optional', emailAddress: { address: 'o@x.test' } },
        { emailAddress: { address: 'untyped@x.test' } },
      ],
    })
    expect(e.fields).toMatchObject({
      requiredAttendees: [{ address: 'r@x.test' }, { address: 'untyped@x.test' }],
      optionalAttendees: [{ address: 'o@x.test' }],
      resourceAttendees: [{ name: 'Room 1', address: 'room1@x.test' }],
    })
    expect(toGraph('appointment', { resourceAttendees: [{ name: 'Room 2', address: 'room2@x.test' }] }, e.fields).attendees).toEqual([
      { type: 'required', emailAddress: { address: 'r@x.test' } },
      { type: 'required', emailAddress: { address: 'untyped@x.test' } },
      { type: 'optional', emailAddress: { address: 'o@x.test' } },
      { type: 'resource', emailAddress: { name: 'Room 2', address: 'room2@x.test' } },
    ])
    const none = fromGraph('appointment', { id: 'e10', attendees: [] })
    expect(none.fields).toMatchObject({ requiredAttendees: null, optionalAttendees: null, resourceAttendees: null })
  })

  test('recurrence: a non-default firstDayOfWeek and a recurrenceTimeZone other than the start zone are kept', () => {
    const e = fromGraph('appointment', {
      id: 'e11',
      start: { dateTime: '2026-03-16T08:00:00.0000000', timeZone: 'UTC' },
      originalStartTimeZone: 'Europe/Berlin',
      recurrence: {
        pattern: { type: 'weekly', interval: 2, month: 0, dayOfMonth: 0, daysOfWeek: ['monday', 'thursday'], firstDayOfWeek: 'monday', index: 'first' },
        range: { type: 'numbered', startDate: '2026-03-16', endDate: '0001-01-01', recurrenceTimeZone: 'Europe/Berlin', numberOfOccurrences: 6 },
      },
    })
    expect(e.fields['start']).toEqual({ dateTime: '2026-03-16T09:00:00', timeZone: 'Europe/Berlin' })
    // The recurrence zone equals the start's zone (Graph's default): dropped, so a recurrence written without it reads back equal.
    expect(e.fields['recurrence']).toEqual({ pattern: { type: 'weekly', interval: 2, daysOfWeek: ['monday', 'thursday'], firstDayOfWeek: 'monday' }, range: { type: 'numbered', startDate: '2026-03-16', numberOfOccurrences: 6 } })
    const other = fromGraph('appointment', {
      id: 'e12',
      start: { dateTime: '2026-03-16T08:00:00.0000000', timeZone: 'UTC' },
      originalStartTimeZone: 'Europe/Berlin',
      recurrence: { pattern: { type: 'relativeMonthly', interval: 1, daysOfWeek: ['friday'], index: 'last', firstDayOfWeek: 'sunday' }, range: { type: 'noEnd', startDate: '2026-03-16', recurrenceTimeZone: 'Tokyo Standard Time' } },
    })
    expect(other.fields['recurrence']).toEqual({ pattern: { type: 'relativeMonthly', interval: 1, daysOfWeek: ['friday'], index: 'last' }, range: { type: 'noEnd', startDate: '2026-03-16', recurrenceTimeZone: 'Tokyo Standard Time' } })
    // canonical → Graph: passed through as is.
    expect(toGraph('appointment', { recurrence: other.fields['recurrence'] }).recurrence).toEqual(other.fields['recurrence'])
  })

  test('task dates: reminder and completion map both ways, converted into the task zone', () => {
    const t = fromGraph(
      'task',
      {
        id: 't2',
        dueDateTime: { dateTime: '2026-11-30T23:00:00.0000000', timeZone: 'UTC' },
        reminderDateTime: { dateTime: '2026-11-30T08:00:00.0000000', timeZone: 'UTC' },
        completedDateTime: { dateTime: '2026-12-01T18:00:00.0000000', timeZone: 'Pacific Standard Time' },
        startDateTime: null,
      },
      { taskTimeZone: 'Europe/Berlin' },
    )
    expect(t.fields).toEqual({
      due: { dateTime: '2026-12-01T00:00:00', timeZone: 'Europe/Berlin' },
      reminder: { dateTime: '2026-11-30T09:00:00', timeZone: 'Europe/Berlin' },
      completedOn: { dateTime: '2026-12-02T03:00:00', timeZone: 'Europe/Berlin' },
      start: null,
    })
    expect(toGraph('task', { reminder: { dateTime: '2026-11-30T09:00:00', timeZone: 'Europe/Berlin' }, completedOn: null })).toEqual({
      reminderDateTime: { dateTime: '2026-11-30T09:00:00', timeZone: 'Europe/Berlin' },
      isReminderOn: true,
      completedDateTime: null,
    })
    expect(toGraph('task', { reminder: null })).toEqual({ reminderDateTime: null, isReminderOn: false })
  })
})
