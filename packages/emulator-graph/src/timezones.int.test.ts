/** Event time zones: Windows/IANA names on write, true instants for calendarView windows, `Prefer: outlook.timezone`. */
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import type { GraphEmulator } from './index.js'
import { A, type Client, setup } from './test/helpers.js'
import { resolveTimeZone, utcToZoned, zonedToUtc } from './timezones.js'

let em: GraphEmulator
let c: Client

beforeAll(async () => {
  ;({ em, c } = await setup())
})
afterAll(async () => {
  await em.close()
})
beforeEach(() => {
  em.control.reset()
})

const ev = (subject: string, start: string, end: string, timeZone: string) => ({
  subject,
  start: { dateTime: start, timeZone },
  end: { dateTime: end, timeZone },
})

test('zone arithmetic: Windows and IANA names, DST gap and overlap', () => {
  const at = (local: string, zone: string) => new Date(zonedToUtc(Date.parse(`${local}Z`), resolveTimeZone(zone) as string)).toISOString()
  expect(at('2026-01-05T09:00:00', 'W. Europe Standard Time')).toBe('2026-01-05T08:00:00.000Z')
  expect(at('2026-07-06T09:00:00', 'W. Europe Standard Time')).toBe('2026-07-06T07:00:00.000Z')
  expect(at('2026-07-06T09:00:00', 'Pacific Standard Time')).toBe('2026-07-06T16:00:00.000Z')
  expect(at('2026-01-05T09:00:00', 'Eastern Standard Time')).toBe('2026-01-05T14:00:00.000Z')
  expect(at('2026-07-06T09:00:00', 'GMT Standard Time')).toBe('2026-07-06T08:00:00.000Z')
  expect(at('2026-07-06T09:00:00', 'Tokyo Standard Time')).toBe('2026-07-06T00:00:00.000Z')
  expect(at('2026-07-06T09:00:00', 'India Standard Time')).toBe('2026-07-06T03:30:00.000Z')
  expect(at('2026-07-06T09:00:00', 'UTC')).toBe('2026-07-06T09:00:00.000Z')
  // 02:30 does not exist in Berlin on 29 March 2026: read with the winter offset (→ 03:30 CEST).
  expect(at('2026-03-29T02:30:00', 'Europe/Berlin')).toBe('2026-03-29T01:30:00.000Z')
  // 02:30 happens twice on 25 October 2026: the earlier (summer-time) instant.
  expect(at('2026-10-25T02:30:00', 'Europe/Berlin')).toBe('2026-10-25T00:30:00.000Z')
  expect(utcToZoned(Date.parse('2026-07-06T16:00:00Z'), 'America/Los_Angeles')).toBe('2026-07-06T09:00:00.0000000')
  expect(resolveTimeZone('Mars Standard Time')).toBeUndefined()
  expect(resolveTimeZone('CET')).toBeUndefined()
})

test('a Windows-zone event is stored at its true instant and answered in UTC by default', async () => {
  const winter = await c.post(`users/${A}/events`, ev('Winter', '2026-01-05T09:00:00', '2026-01-05T10:00:00', 'W. Europe Standard Time'))
  expect(winter.status).toBe(201)
  expect(winter.body.start).toEqual({ dateTime: '2026-01-05T08:00:00.0000000', timeZone: 'UTC' })
  expect(winter.body.end).toEqual({ dateTime: '2026-01-05T09:00:00.0000000', timeZone: 'UTC' })
  expect(winter.body.originalStartTimeZone).toBe('W. Europe Standard Time')
  expect(winter.body.originalEndTimeZone).toBe('W. Europe Standard Time')
  const summer = await c.post(`users/${A}/events`, ev('Summer', '2026-07-06T09:00:00', '2026-07-06T10:00:00', 'W. Europe Standard Time'))
  expect(summer.body.start).toEqual({ dateTime: '2026-07-06T07:00:00.0000000', timeZone: 'UTC' })
  const read = await c.get(`users/${A}/events/${summer.body.id as string}`)
  expect(read.body.start).toEqual({ dateTime: '2026-07-06T07:00:00.0000000', timeZone: 'UTC' })
  // A new start in another zone moves only the start (02:00 EDT = 06:00Z); end stays 10:00 Berlin = 08:00Z.
  const moved = await c.patch(`users/${A}/events/${summer.body.id as string}`, { start: { dateTime: '2026-07-06T02:00:00', timeZone: 'Eastern Standard Time' } })
  expect(moved.status).toBe(200)
  expect(moved.body.start).toEqual({ dateTime: '2026-07-06T06:00:00.0000000', timeZone: 'UTC' })
  expect(moved.body.end).toEqual({ dateTime: '2026-07-06T08:00:00.0000000', timeZone: 'UTC' })
  expect(moved.body.originalStartTimeZone).toBe('Eastern Standard Time')
  expect(moved.body.originalEndTimeZone).toBe('W. Europe Standard Time')
})

test('Prefer: outlook.timezone expresses start/end in that zone (Windows or IANA) and is echoed in Preference-Applied', async () => {
  const created = await c.post(`users/${A}/events`, ev('Berlin', '2026-07-06T09:00:00', '2026-07-06T10:30:00', 'Europe/Berlin'))
  const id = created.body.id as string
  const pacific = await c.get(`users/${A}/events/${id}`, { prefer: 'outlook.timezone="Pacific Standard Time"' })
  expect(pacific.status).toBe(200)
  expect(pacific.body.start).toEqual({ dateTime: '2026-07-06T00:00:00.0000000', timeZone: 'Pacific Standard Time' })
  expect(pacific.body.end).toEqual({ dateTime: '2026-07-06T01:30:00.0000000', timeZone: 'Pacific Standard Time' })
  expect(pacific.headers.get('preference-applied')).toBe('outlook.timezone="Pacific Standard Time"')
  const tokyo = await c.get(`users/${A}/events?$select=subject,start`, { prefer: 'outlook.timezone="Asia/Tokyo"' })
  expect(tokyo.body.value[0].start).toEqual({ dateTime: '2026-07-06T16:00:00.0000000', timeZone: 'Asia/Tokyo' })
  const view = await c.get(`users/${A}/calendarView?startDateTime=2026-07-06T00:00:00Z&endDateTime=2026-07-07T00:00:00Z`, {
    prefer: 'outlook.timezone="India Standard Time"',
  })
  expect(view.body.value[0].start).toEqual({ dateTime: '2026-07-06T12:30:00.0000000', timeZone: 'India Standard Time' })
  const delta = await c.get(`users/${A}/calendarView/delta?startDateTime=2026-07-06T00:00:00Z&endDateTime=2026-07-07T00:00:00Z`, {
    prefer: 'outlook.timezone="GMT Standard Time"',
  })
  expect(delta.status).toBe(200)
  expect(delta.body.value[0].start).toEqual({ dateTime: '2026-07-06T08:00:00.0000000', timeZone: 'GMT Standard Time' })
  // Per sub-request inside $batch too.
  const batch = await c.post('$batch', { requests: [{ id: '1', method: 'GET', url: `/users/${A}/events/${id}`, headers: { prefer: 'outlook.timezone="Tokyo Standard Time"' } }] })
  expect(batch.status).toBe(200)
  expect(batch.body.responses[0].body.start).toEqual({ dateTime: '2026-07-06T16:00:00.0000000', timeZone: 'Tokyo Standard Time' })
  const plain = await c.get(`users/${A}/events/${id}`)
  expect(plain.body.start.timeZone).toBe('UTC')
  expect(plain.headers.get('preference-applied')).toBeNull()
})

test('calendarView and calendarView/delta windows compare true instants', async () => {
  // 09:00–10:00 Tokyo on 6 July = 00:00–01:00 UTC; 09:00–10:00 Pacific on 5 July = 16:00–17:00 UTC on 5 July.
  await c.post(`users/${A}/events`, ev('Tokyo', '2026-07-06T09:00:00', '2026-07-06T10:00:00', 'Tokyo Standard Time'))
  await c.post(`users/${A}/events`, ev('Pacific', '2026-07-05T09:00:00', '2026-07-05T10:00:00', 'Pacific Standard Time'))
  const subjects = (r: { body: { value: Array<{ subject: string }> } }) => r.body.value.map((x) => x.subject).sort()
  const july5 = await c.get(`users/${A}/calendarView?startDateTime=2026-07-05T12:00:00Z&endDateTime=2026-07-05T23:59:00Z`)
  expect(subjects(july5)).toEqual(['Pacific'])
  const july6 = await c.get(`users/${A}/calendarView?startDateTime=2026-07-06T00:00:00Z&endDateTime=2026-07-06T12:00:00Z`)
  expect(subjects(july6)).toEqual(['Tokyo'])
  // A window given with an offset: 2026-07-06T08:00+09:00 .. 11:00+09:00 = 23:00Z .. 02:00Z.
  const offset = await c.get(`users/${A}/calendarView?startDateTime=${encodeURIComponent('2026-07-06T08:00:00+09:00')}&endDateTime=${encodeURIComponent('2026-07-06T11:00:00+09:00')}`)
  expect(subjects(offset)).toEqual(['Tokyo'])
  const round = await c.deltaRound(`users/${A}/calendarView/delta?startDateTime=2026-07-05T12:00:00Z&endDateTime=2026-07-05T23:59:00Z`)
  expect(round.items.map((x: { subject: string }) => x.subject)).toEqual(['Pacific'])
  const sorted = await c.get(`users/${A}/calendarView?startDateTime=2026-07-01T00:00:00Z&endDateTime=2026-07-10T00:00:00Z`)
  expect(sorted.body.value.map((x: { subject: string }) => x.subject)).toEqual(['Pacific', 'Tokyo'])
})

test('unknown time zone names → 400 TimeZoneNotSupportedException (body and Prefer)', async () => {
  const bad = await c.post(`users/${A}/events`, ev('Bad', '2026-07-06T09:00:00', '2026-07-06T10:00:00', 'Mars Standard Time'))
  expect(bad.status).toBe(400)
  expect(bad.body.error.code).toBe('TimeZoneNotSupportedException')
  expect(bad.body.error.message).toBe("A valid TimeZone value must be specified. The following TimeZone value is not supported: 'Mars Standard Time'.")
  expect(bad.body.error.innerError['request-id']).toEqual(expect.any(String))
  const list = await c.get(`users/${A}/events`)
  expect(list.body.value).toHaveLength(0)
  const prefer = await c.get(`users/${A}/events`, { prefer: 'outlook.timezone="Nowhere/Special"' })
  expect(prefer.status).toBe(400)
  expect(prefer.body.error.code).toBe('TimeZoneNotSupportedException')
})
