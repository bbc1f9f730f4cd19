/**
 * Recurring series, resource attendees and To Do task dates through the adapter and the Graph emulator
 * over https: a series is synced as its master (never its occurrences), survives a round trip, and its
 * deletion is noticed; task dates keep their wall clock in the configured zone.
 */
import { ValidationError, asConcordId, asOpId } from '@concord/engine'
import type { Cursor, Fields, NativeId, RemoteChange, RemoteUpsert } from '@concord/engine'
import { latestByNativeId, pullAll } from '@concord/engine/testing'
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import { startEmulatorEnv, UPN, type EmulatorEnv } from './test/emulator-env.js'

let env: EmulatorEnv
beforeAll(async () => {
  env = await startEmulatorEnv()
})
afterAll(async () => {
  await env.close()
})
beforeEach(() => {
  env.em.control.reset()
})

/** The adapter's clock: the calendar window (−30 / +365 days) is around 1 March 2026. */
const NOW = Date.parse('2026-03-01T00:00:00Z')
const upserts = (changes: readonly RemoteChange[]) => [...latestByNativeId(changes).values()].filter((c): c is RemoteUpsert => c.type === 'upsert')
let op = 0
const opId = () => asOpId(`rec-op-${++op}`)

const base = {
  body: 'Agenda',
  location: 'Room 4.01',
  organizer: { name: 'Alice Adams', address: UPN },
  requiredAttendees: [{ address: 'bob@fabrikam.test' }],
  optionalAttendees: [{ name: 'Carol', address: 'carol@fabrikam.test' }],
  resourceAttendees: [
    { name: 'Room 4.01', address: 'room401@contoso.test' },
    { name: 'Projector 2', address: 'projector2@contoso.test' },
  ],
  isAllDay: false,
  showAs: 'busy',
  importance: 'normal',
  categories: ['Customer'],
} satisfies Fields

/** Weekly on Mondays 09:00 Berlin, 16 March – 6 April 2026: crosses the 29 March DST change. */
const weekly: Fields = {
  ...base,
  subject: 'Jour fixe',
  start: { dateTime: '2026-03-16T09:00:00', timeZone: 'Europe/Berlin' },
  end: { dateTime: '2026-03-16T10:00:00', timeZone: 'Europe/Berlin' },
  recurrence: { pattern: { type: 'weekly', interval: 1, daysOfWeek: ['monday'], firstDayOfWeek: 'monday' }, range: { type: 'endDate', startDate: '2026-03-16', endDate: '2026-04-06' } },
}
/** Numbered monthly series evaluated in another zone than the start's. */
const monthly: Fields = {
  ...base,
  resourceAttendees: null,
  subject: 'Board',
  start: { dateTime: '2026-03-31T08:00:00', timeZone: 'Pacific Standard Time' },
  end: { dateTime: '2026-03-31T09:00:00', timeZone: 'Pacific Standard Time' },
  recurrence: { pattern: { type: 'absoluteMonthly', interval: 1, dayOfMonth: 31 }, range: { type: 'numbered', startDate: '2026-03-31', numberOfOccurrences: 3, recurrenceTimeZone: 'Eastern Standard Time' } },
}
const yearly: Fields = {
  ...base,
  subject: 'Anniversary',
  start: { dateTime: '2026-11-26T17:00:00', timeZone: 'W. Europe Standard Time' },
  end: { dateTime: '2026-11-26T18:00:00', timeZone: 'W. Europe Standard Time' },
  recurrence: { pattern: { type: 'relativeYearly', interval: 1, month: 11, daysOfWeek: ['thursday'], index: 'fourth' }, range: { type: 'noEnd', startDate: '2026-11-26' } },
}

function calendarAdapter() {
  return env.adapter({ kinds: ['appointment'] }, { now: () => NOW })
}

async function create(adapter: ReturnType<typeof calendarAdapter>, id: string, fields: Fields): Promise<NativeId> {
  const res = await adapter.push([{ opId: opId(), type: 'create', concordId: asConcordId(id), kind: 'appointment', fields }])
  expect(res.rejected).toEqual([])
  return res.applied[0]!.nativeId!
}

test('a series is synced as its master: one item per series, fields (recurrence, resource attendees) round-trip', async () => {
  const adapter = calendarAdapter()
  const ids = { weekly: await create(adapter, 'series-weekly', weekly), monthly: await create(adapter, 'series-monthly', monthly), yearly: await create(adapter, 'series-yearly', yearly) }
  // Graph itself expands the series: 4 + 3 + 1 occurrences in the adapter's window.
  const view = await adapter.http.ok('GET', `/users/${UPN}/calendarView?startDateTime=2026-01-30T00:00:00Z&endDateTime=2027-03-01T00:00:00Z&$top=100`)
  const occ = (view.body as { value: Array<{ type: string }> }).value
  expect(occ.map((o) => o.type).every((t) => t === 'occurrence')).toBe(true)
  expect(occ).toHaveLength(8)

  const { changes } = await pullAll(adapter, null, 3)
  const got = upserts(changes)
  expect(got.map((c) => c.nativeId).sort()).toEqual(Object.values(ids).sort())
  const byId = new Map(got.map((c) => [c.nativeId, c]))
  for (const [key, fields] of [['weekly', weekly], ['monthly', monthly], ['yearly', yearly]] as const) {
    const pulled = byId.get(ids[key])!
    expect(pulled.concordId).toBe(`series-${key}`)
    for (const [name, value] of Object.entries(fields)) expect([name, pulled.fields[name]]).toEqual([name, value])
  }
  // Rooms stay apart from people on the Graph side too.
  const raw = await adapter.http.ok('GET', `/users/${UPN}/events/${env.graphId(ids.weekly)}`)
  expect((raw.body as { attendees: Array<{ type: string; emailAddress: { address: string } }> }).attendees.map((a) => `${a.type}:${a.emailAddress.address}`)).toEqual([
    'required:bob@fabrikam.test',
    'optional:carol@fabrikam.test',
    'resource:room401@contoso.test',
    'resource:projector2@contoso.test',
  ])
})

test('occurrence edits and deletions are not separate items; series edits and the series deletion are', async () => {
  const adapter = calendarAdapter()
  const master = await create(adapter, 'series-1', weekly)
  let cursor: Cursor = (await pullAll(adapter, null)).cursor
  const user = `/users/${UPN}`
  const instances = await adapter.http.ok('GET', `${user}/events/${env.graphId(master)}/instances?startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-05-01T00:00:00Z`, { Prefer: 'IdType="ImmutableId"' })
  const occ = (instances.body as { value: Array<{ id: string; start: { dateTime: string } }> }).value
  expect(occ.map((o) => o.start.dateTime)).toEqual(['2026-03-16T08:00:00.0000000', '2026-03-23T08:00:00.0000000', '2026-03-30T07:00:00.0000000', '2026-04-06T07:00:00.0000000'])

  // Someone moves one occurrence and deletes another in Outlook.
  await adapter.http.ok('PATCH', `${user}/events/${occ[1]!.id}`, { Prefer: 'IdType="ImmutableId"' }, { subject: 'Jour fixe (moved)', start: { dateTime: '2026-03-24T09:00:00', timeZone: 'Europe/Berlin' }, end: { dateTime: '2026-03-24T10:00:00', timeZone: 'Europe/Berlin' } })
  await adapter.http.ok('DELETE', `${user}/events/${occ[2]!.id}`, { Prefer: 'IdType="ImmutableId"' })
  let r = await pullAll(adapter, cursor)
  cursor = r.cursor
  const occNative = new Set(occ.map((o) => `e~${o.id}`))
  expect(upserts(r.changes).map((c) => c.nativeId)).toEqual([master]) // the series, unchanged
  expect(upserts(r.changes)[0]!.fields['subject']).toBe('Jour fixe')
  expect(r.changes.filter((c) => c.type === 'delete').every((c) => occNative.has(c.nativeId))).toBe(true)
  expect(r.changes.some((c) => c.type === 'delete' && c.nativeId === master)).toBe(false)

  // A series edit: the master once, with the new value.
  await adapter.http.ok('PATCH', `${user}/events/${env.graphId(master)}`, {}, { subject: 'Weekly sync' })
  r = await pullAll(adapter, cursor)
  cursor = r.cursor
  expect(upserts(r.changes).map((c) => [c.nativeId, c.fields['subject']])).toEqual([[master, 'Weekly sync']])
  expect(r.changes.some((c) => c.type === 'delete' && c.nativeId === master)).toBe(false)

  // The whole series deleted: Graph reports only removed occurrences; the adapter notices the master is gone.
  await adapter.http.ok('DELETE', `${user}/events/${env.graphId(master)}`)
  r = await pullAll(adapter, cursor)
  expect(r.changes).toContainEqual({ type: 'delete', nativeId: master, provenance: 'user-deleted' })
  expect(upserts(r.changes)).toEqual([])
})

test('a CRM update of the series pattern reaches Graph; the occurrences follow', async () => {
  const adapter = calendarAdapter()
  const master = await create(adapter, 'series-2', weekly)
  const { cursor } = await pullAll(adapter, null)
  const current = upserts((await pullAll(adapter, null)).changes)[0]!
  const recurrence = { pattern: { type: 'daily', interval: 1 }, range: { type: 'numbered', startDate: '2026-03-16', numberOfOccurrences: 2 } }
  const res = await adapter.push([{ opId: opId(), type: 'update', concordId: asConcordId('series-2'), kind: 'appointment', nativeId: master, fields: { recurrence }, ifMatch: current.version }])
  expect(res.rejected).toEqual([])
  expect(res.applied[0]!.fields?.['recurrence']).toEqual(recurrence)
  const view = await adapter.http.ok('GET', `/users/${UPN}/calendarView?startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-05-01T00:00:00Z`)
  expect((view.body as { value: Array<{ start: { dateTime: string } }> }).value.map((o) => o.start.dateTime)).toEqual(['2026-03-16T08:00:00.0000000', '2026-03-17T08:00:00.0000000'])
  const next = await pullAll(adapter, cursor)
  expect(upserts(next.changes).map((c) => [c.nativeId, c.fields['recurrence']])).toEqual([[master, recurrence]])
})

test('task dates: stored as instants by Graph, read back in the configured zone without a day shift', async () => {
  expect(() => env.adapter({ kinds: ['task'], taskTimeZone: 'Mars/Olympus' })).toThrow(ValidationError)
  const adapter = env.adapter({ kinds: ['task'], taskTimeZone: 'Europe/Berlin' })
  const fields: Fields = {
    subject: 'Send the quote',
    due: { dateTime: '2026-12-01T00:00:00', timeZone: 'Europe/Berlin' },
    start: { dateTime: '2026-11-20T00:00:00', timeZone: 'Europe/Berlin' },
    reminder: { dateTime: '2026-11-30T09:00:00', timeZone: 'Europe/Berlin' },
    status: 'notStarted',
    priority: 'normal',
  }
  const res = await adapter.push([{ opId: opId(), type: 'create', concordId: asConcordId('task-1'), kind: 'task', fields }])
  expect(res.rejected).toEqual([])
  const nativeId = res.applied[0]!.nativeId!
  expect(res.applied[0]!.fields?.['due']).toEqual(fields['due'])
  // Graph keeps the instant: midnight in Berlin is 23:00 UTC the day before.
  const raw = await adapter.http.ok('GET', `/users/${UPN}/todo/lists/${env.listId()}/tasks/${env.graphId(nativeId)}`)
  expect((raw.body as { dueDateTime: unknown }).dueDateTime).toEqual({ dateTime: '2026-11-30T23:00:00.0000000', timeZone: 'UTC' })
  expect((raw.body as { isReminderOn: unknown }).isReminderOn).toBe(true)
  const pulled = upserts((await pullAll(adapter, null)).changes)[0]!
  for (const name of ['due', 'start', 'reminder', 'subject', 'status']) expect([name, pulled.fields[name]]).toEqual([name, fields[name]])

  // Completed in the CRM with a completion date; a Windows zone name reads the same instants.
  const done = await adapter.push([{ opId: opId(), type: 'update', concordId: asConcordId('task-1'), kind: 'task', nativeId, fields: { status: 'completed', completedOn: { dateTime: '2026-12-01T10:15:00', timeZone: 'Europe/Berlin' }, reminder: null }, ifMatch: pulled.version }])
  expect(done.rejected).toEqual([])
  const windows = env.adapter({ kinds: ['task'], taskTimeZone: 'W. Europe Standard Time' })
  const again = upserts((await pullAll(windows, null)).changes)[0]!
  expect(again.fields['completedOn']).toEqual({ dateTime: '2026-12-01T10:15:00', timeZone: 'W. Europe Standard Time' })
  expect(again.fields['due']).toEqual({ dateTime: '2026-12-01T00:00:00', timeZone: 'W. Europe Standard Time' })
  expect(again.fields['reminder']).toBeNull()
  // Without a configured zone the adapter reads what Graph answers (UTC): the same instant, not another day.
  const utc = upserts((await pullAll(env.adapter({ kinds: ['task'], taskTimeZone: 'UTC' }), null)).changes)[0]!
  expect(utc.fields['due']).toEqual({ dateTime: '2026-11-30T23:00:00', timeZone: 'UTC' })
})
