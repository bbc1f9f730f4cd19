/** To Do dateTimeTimeZone fields (stored as instants, read in UTC or the Prefer zone) and resource attendees on events. */
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import type { GraphEmulator } from './index.js'
import { A, type Client, setup } from './test/helpers.js'

let em: GraphEmulator
let c: Client
let list: string

beforeAll(async () => {
  ;({ em, c } = await setup())
})
afterAll(async () => {
  await em.close()
})
beforeEach(async () => {
  em.control.reset()
  list = (await c.get(`users/${A}/todo/lists`)).body.value[0].id as string
})

test('task dates keep their instant: UTC by default, the Prefer zone when asked', async () => {
  const r = await c.post(`users/${A}/todo/lists/${list}/tasks`, {
    title: 'Send the quote',
    dueDateTime: { dateTime: '2026-12-01T00:00:00', timeZone: 'W. Europe Standard Time' },
    reminderDateTime: { dateTime: '2026-11-30T09:00:00.0000000', timeZone: 'Europe/Berlin' },
    startDateTime: { dateTime: '2026-11-20T00:00:00', timeZone: 'Pacific Standard Time' },
  })
  expect(r.status).toBe(201)
  // Midnight in Berlin is 23:00 UTC the day before — the "due date one day early" that clients must not fall for.
  expect(r.body.dueDateTime).toEqual({ dateTime: '2026-11-30T23:00:00.0000000', timeZone: 'UTC' })
  expect(r.body.reminderDateTime).toEqual({ dateTime: '2026-11-30T08:00:00.0000000', timeZone: 'UTC' })
  expect(r.body.startDateTime).toEqual({ dateTime: '2026-11-20T08:00:00.0000000', timeZone: 'UTC' })
  const id = r.body.id as string
  const berlin = await c.get(`users/${A}/todo/lists/${list}/tasks/${id}`, { prefer: 'outlook.timezone="Europe/Berlin"' })
  expect(berlin.body.dueDateTime).toEqual({ dateTime: '2026-12-01T00:00:00.0000000', timeZone: 'Europe/Berlin' })
  expect(berlin.body.reminderDateTime).toEqual({ dateTime: '2026-11-30T09:00:00.0000000', timeZone: 'Europe/Berlin' })
  const win = await c.get(`users/${A}/todo/lists/${list}/tasks/${id}`, { prefer: 'outlook.timezone="Pacific Standard Time"' })
  expect(win.body.startDateTime).toEqual({ dateTime: '2026-11-20T00:00:00.0000000', timeZone: 'Pacific Standard Time' })
  // Lists and delta honour the header too.
  const listed = await c.get(`users/${A}/todo/lists/${list}/tasks`, { prefer: 'outlook.timezone="Europe/Berlin"' })
  expect(listed.body.value[0].dueDateTime.dateTime).toBe('2026-12-01T00:00:00.0000000')
  const delta = await c.get(`users/${A}/todo/lists/${list}/tasks/delta`, { prefer: 'outlook.timezone="Europe/Berlin"' })
  expect(delta.body.value[0].dueDateTime).toEqual({ dateTime: '2026-12-01T00:00:00.0000000', timeZone: 'Europe/Berlin' })
  // Completing sets completedDateTime (an instant too); clearing a date stores null.
  const done = await c.patch(`users/${A}/todo/lists/${list}/tasks/${id}`, { status: 'completed', dueDateTime: null }, { prefer: 'outlook.timezone="Tokyo Standard Time"' })
  expect(done.body.dueDateTime).toBeNull()
  expect(done.body.completedDateTime.timeZone).toBe('Tokyo Standard Time')
  expect(Number.isNaN(Date.parse(`${(done.body.completedDateTime.dateTime as string).slice(0, 19)}Z`))).toBe(false)
  // An offset in the value is an instant; a bad zone or value is a 400 naming it.
  const z = await c.post(`users/${A}/todo/lists/${list}/tasks`, { title: 'z', dueDateTime: { dateTime: '2026-12-01T00:00:00+01:00', timeZone: 'UTC' } })
  expect(z.body.dueDateTime).toEqual({ dateTime: '2026-11-30T23:00:00.0000000', timeZone: 'UTC' })
  const badZone = await c.post(`users/${A}/todo/lists/${list}/tasks`, { title: 'x', dueDateTime: { dateTime: '2026-12-01T00:00:00', timeZone: 'Mars/Olympus' } })
  expect(badZone.status).toBe(400)
  expect(badZone.body.error.code).toBe('TimeZoneNotSupportedException')
  const badValue = await c.post(`users/${A}/todo/lists/${list}/tasks`, { title: 'x', dueDateTime: { dateTime: 'tomorrow', timeZone: 'UTC' } })
  expect(badValue.status).toBe(400)
  expect(badValue.body.error.message).toContain('dueDateTime')
})

test('resource attendees (rooms, equipment) are kept with their type', async () => {
  const attendees = [
    { type: 'required', emailAddress: { name: 'Bob', address: 'bob@contoso.test' } },
    { type: 'optional', emailAddress: { name: 'Carol', address: 'carol@contoso.test' } },
    { type: 'resource', emailAddress: { name: 'Room 4.01', address: 'room401@contoso.test' } },
    { type: 'resource', emailAddress: { name: 'Projector 2', address: 'projector2@contoso.test' } },
  ]
  const r = await c.post(`users/${A}/events`, {
    subject: 'Review',
    start: { dateTime: '2026-06-01T10:00:00', timeZone: 'UTC' },
    end: { dateTime: '2026-06-01T11:00:00', timeZone: 'UTC' },
    attendees,
  })
  expect(r.status).toBe(201)
  const got = await c.get(`users/${A}/events/${r.body.id as string}`)
  expect(got.body.attendees.map((a: { type: string; emailAddress: { address: string } }) => [a.type, a.emailAddress.address])).toEqual([
    ['required', 'bob@contoso.test'],
    ['optional', 'carol@contoso.test'],
    ['resource', 'room401@contoso.test'],
    ['resource', 'projector2@contoso.test'],
  ])
  const view = await c.get(`users/${A}/calendarView?startDateTime=2026-06-01T00:00:00Z&endDateTime=2026-06-02T00:00:00Z`)
  expect(view.body.value[0].attendees.filter((a: { type: string }) => a.type === 'resource')).toHaveLength(2)
  const bad = await c.post(`users/${A}/events`, { subject: 'x', attendees: [{ type: 'room', emailAddress: { address: 'r@contoso.test' } }] })
  expect(bad.status).toBe(400)
  expect(bad.body.error.message).toContain('attendees.0.type')
})
