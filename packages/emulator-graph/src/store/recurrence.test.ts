import { describe, expect, test } from 'vitest'
import { GraphHttpError } from '../errors.js'
import { expandShape, isPatternKey, normaliseRecurrence, parseOccurrenceId, type RecurrenceInput, type SeriesShape } from './recurrence.js'

const utc = (s: string) => Date.parse(s)

function shape(rec: RecurrenceInput, start: string, end: string, tz = 'UTC'): SeriesShape {
  return { recurrence: normaliseRecurrence(rec, tz), startMs: utc(start), endMs: utc(end) }
}

const keys = (s: SeriesShape, from: string, to: string) => expandShape(s, utc(from), utc(to)).map((i) => i.key)

describe('normaliseRecurrence', () => {
  test('fills the members Graph always returns', () => {
    const r = normaliseRecurrence({ pattern: { type: 'weekly', daysOfWeek: ['friday', 'monday'] }, range: { type: 'noEnd', startDate: '2026-03-02' } }, 'W. Europe Standard Time')
    expect(r).toEqual({
      pattern: { type: 'weekly', interval: 1, month: 0, dayOfMonth: 0, daysOfWeek: ['monday', 'friday'], firstDayOfWeek: 'sunday', index: 'first' },
      range: { type: 'noEnd', startDate: '2026-03-02', endDate: '0001-01-01', recurrenceTimeZone: 'W. Europe Standard Time', numberOfOccurrences: 0 },
    })
  })

  test('rejects patterns that lack what their type needs, naming the field', () => {
    const bad = (rec: RecurrenceInput) => () => normaliseRecurrence(rec, 'UTC')
    expect(bad({ pattern: { type: 'weekly' }, range: { type: 'noEnd', startDate: '2026-01-01' } })).toThrow(/pattern\.daysOfWeek/)
    expect(bad({ pattern: { type: 'absoluteMonthly' }, range: { type: 'noEnd', startDate: '2026-01-01' } })).toThrow(/pattern\.dayOfMonth/)
    expect(bad({ pattern: { type: 'absoluteYearly', dayOfMonth: 3 }, range: { type: 'noEnd', startDate: '2026-01-01' } })).toThrow(/pattern\.month/)
    expect(bad({ pattern: { type: 'daily' }, range: { type: 'endDate', startDate: '2026-01-01' } })).toThrow(/range\.endDate/)
    expect(bad({ pattern: { type: 'daily' }, range: { type: 'endDate', startDate: '2026-01-05', endDate: '2026-01-01' } })).toThrow(/before/)
    expect(bad({ pattern: { type: 'daily' }, range: { type: 'numbered', startDate: '2026-01-01' } })).toThrow(/numberOfOccurrences/)
    expect(bad({ pattern: { type: 'daily' }, range: { type: 'noEnd', startDate: '2026-01-01', recurrenceTimeZone: 'Mars/Olympus' } })).toThrow(GraphHttpError)
  })
})

describe('expansion', () => {
  test('daily with interval and an end date (inclusive)', () => {
    const s = shape({ pattern: { type: 'daily', interval: 2 }, range: { type: 'endDate', startDate: '2026-01-01', endDate: '2026-01-09' } }, '2026-01-01T10:00:00Z', '2026-01-01T11:00:00Z')
    expect(keys(s, '2025-12-01T00:00:00Z', '2026-02-01T00:00:00Z')).toEqual(['20260101', '20260103', '20260105', '20260107', '20260109'])
  })

  test('weekly on several days, every 2 weeks, weeks starting on monday', () => {
    // 2026-03-04 is a Wednesday; the series week starts on Monday 2026-03-02.
    const s = shape(
      { pattern: { type: 'weekly', interval: 2, daysOfWeek: ['monday', 'wednesday', 'sunday'], firstDayOfWeek: 'monday' }, range: { type: 'numbered', startDate: '2026-03-04', numberOfOccurrences: 5 } },
      '2026-03-04T08:00:00Z',
      '2026-03-04T09:00:00Z',
    )
    expect(keys(s, '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z')).toEqual(['20260304', '20260308', '20260316', '20260318', '20260322'])
  })

  test('weekly across the Europe/Berlin DST change keeps 09:00 local time', () => {
    const s = shape(
      { pattern: { type: 'weekly', daysOfWeek: ['monday'] }, range: { type: 'endDate', startDate: '2026-03-16', endDate: '2026-04-06' } },
      '2026-03-16T08:00:00Z', // 09:00 CET
      '2026-03-16T09:00:00Z',
      'Europe/Berlin',
    )
    const inst = expandShape(s, utc('2026-03-01T00:00:00Z'), utc('2026-05-01T00:00:00Z'))
    expect(inst.map((i) => new Date(i.startMs).toISOString())).toEqual([
      '2026-03-16T08:00:00.000Z',
      '2026-03-23T08:00:00.000Z',
      '2026-03-30T07:00:00.000Z', // 09:00 CEST after 2026-03-29
      '2026-04-06T07:00:00.000Z',
    ])
    expect(inst.every((i) => i.endMs - i.startMs === 3_600_000)).toBe(true)
  })

  test('absoluteMonthly on the 31st falls on the last day of shorter months', () => {
    const s = shape({ pattern: { type: 'absoluteMonthly', dayOfMonth: 31 }, range: { type: 'numbered', startDate: '2026-01-31', numberOfOccurrences: 4 } }, '2026-01-31T12:00:00Z', '2026-01-31T13:00:00Z')
    expect(keys(s, '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z')).toEqual(['20260131', '20260228', '20260331', '20260430'])
  })

  test('relativeMonthly: first weekday and last friday', () => {
    const weekdays = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday'] as const
    const first = shape({ pattern: { type: 'relativeMonthly', daysOfWeek: [...weekdays], index: 'first' }, range: { type: 'numbered', startDate: '2026-01-01', numberOfOccurrences: 3 } }, '2026-01-01T09:00:00Z', '2026-01-01T10:00:00Z')
    // 2026-02-01 is a Sunday, 2026-03-01 a Sunday too.
    expect(keys(first, '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z')).toEqual(['20260101', '20260202', '20260302'])
    const last = shape({ pattern: { type: 'relativeMonthly', daysOfWeek: ['friday'], index: 'last', interval: 3 }, range: { type: 'numbered', startDate: '2026-01-01', numberOfOccurrences: 3 } }, '2026-01-30T09:00:00Z', '2026-01-30T10:00:00Z')
    expect(keys(last, '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z')).toEqual(['20260130', '20260424', '20260731'])
  })

  test('absoluteYearly on 29 February and relativeYearly (fourth thursday of november)', () => {
    const leap = shape({ pattern: { type: 'absoluteYearly', month: 2, dayOfMonth: 29 }, range: { type: 'numbered', startDate: '2028-02-29', numberOfOccurrences: 2 } }, '2028-02-29T09:00:00Z', '2028-02-29T10:00:00Z')
    expect(keys(leap, '2028-01-01T00:00:00Z', '2031-01-01T00:00:00Z')).toEqual(['20280229', '20290228'])
    const tg = shape({ pattern: { type: 'relativeYearly', month: 11, daysOfWeek: ['thursday'], index: 'fourth' }, range: { type: 'noEnd', startDate: '2026-01-01' } }, '2026-11-26T17:00:00Z', '2026-11-26T20:00:00Z')
    expect(keys(tg, '2026-01-01T00:00:00Z', '2029-01-01T00:00:00Z')).toEqual(['20261126', '20271125', '20281123'])
  })

  test('a window selects overlapping occurrences; a start before range.startDate is not an occurrence', () => {
    const s = shape({ pattern: { type: 'daily' }, range: { type: 'noEnd', startDate: '2026-06-01' } }, '2026-06-01T23:30:00Z', '2026-06-02T00:30:00Z')
    expect(keys(s, '2026-06-03T00:00:00Z', '2026-06-04T00:00:00Z')).toEqual(['20260602', '20260603'])
    expect(isPatternKey(s, '20260531')).toBe(false)
    expect(isPatternKey(s, '20270101')).toBe(true)
  })

  test('occurrence ids carry the master id and the original date', () => {
    expect(parseOccurrenceId('AAkALabc-_x.OC20260316')).toEqual({ masterId: 'AAkALabc-_x', key: '20260316' })
    expect(parseOccurrenceId('AAkALabc.OC20261340')).toBeUndefined()
    expect(parseOccurrenceId('AAkALabc')).toBeUndefined()
  })
})
