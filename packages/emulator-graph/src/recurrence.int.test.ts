/** Recurring events over HTTP: series masters, calendarView expansion, instances, exceptions, cancelled occurrences, delta. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import { startGraphEmulator, type GraphEmulator } from './index.js'
import { A, Client, getToken, setup } from './test/helpers.js'

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

/** Weekly on Mondays 09:00–10:00 Europe/Berlin, 16 March – 6 April 2026 (crosses the 29 March DST change). */
const weekly = {
  subject: 'Jour fixe',
  start: { dateTime: '2026-03-16T09:00:00', timeZone: 'Europe/Berlin' },
  end: { dateTime: '2026-03-16T10:00:00', timeZone: 'Europe/Berlin' },
  recurrence: {
    pattern: { type: 'weekly', interval: 1, daysOfWeek: ['monday'] },
    range: { type: 'endDate', startDate: '2026-03-16', endDate: '2026-04-06' },
  },
}
const WINDOW = 'startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-05-01T00:00:00Z'
const BERLIN = { prefer: 'outlook.timezone="Europe/Berlin"' }

async function createSeries(body: unknown = weekly): Promise<string> {
  const r = await c.post(`users/${A}/events`, body)
  expect(r.status).toBe(201)
  return r.body.id as string
}

test('a series master is created with the normalised recurrence and listed by /events, not by calendarView', async () => {
  const r = await c.post(`users/${A}/events`, weekly)
  expect(r.status).toBe(201)
  expect(r.body.type).toBe('seriesMaster')
  expect(r.body.seriesMasterId).toBeNull()
  expect(r.body.recurrence).toEqual({
    pattern: { type: 'weekly', interval: 1, month: 0, dayOfMonth: 0, daysOfWeek: ['monday'], firstDayOfWeek: 'sunday', index: 'first' },
    range: { type: 'endDate', startDate: '2026-03-16', endDate: '2026-04-06', recurrenceTimeZone: 'Europe/Berlin', numberOfOccurrences: 0 },
  })
  const list = await c.get(`users/${A}/events`)
  expect(list.body.value.map((e: { type: string }) => e.type)).toEqual(['seriesMaster'])
  const view = await c.get(`users/${A}/calendarView?${WINDOW}`)
  expect(view.body.value.some((e: { type: string }) => e.type === 'seriesMaster')).toBe(false)
})

test('calendarView expands a weekly Europe/Berlin series across DST: 09:00 local, 08:00Z then 07:00Z', async () => {
  const masterId = await createSeries()
  const view = await c.get(`users/${A}/calendarView?${WINDOW}`)
  expect(view.status).toBe(200)
  const occ = view.body.value as Array<Record<string, any>> // eslint-disable-line @typescript-eslint/no-explicit-any
  expect(occ.map((o) => o.start.dateTime)).toEqual([
    '2026-03-16T08:00:00.0000000',
    '2026-03-23T08:00:00.0000000',
    '2026-03-30T07:00:00.0000000',
    '2026-04-06T07:00:00.0000000',
  ])
  for (const o of occ) {
    expect(o.type).toBe('occurrence')
    expect(o.seriesMasterId).toBe(masterId)
    expect(o.recurrence).toBeNull()
    expect(o.subject).toBe('Jour fixe')
    expect(o.id).not.toBe(masterId)
  }
  expect(occ[2]?.originalStart).toBe('2026-03-30T07:00:00Z')
  const local = await c.get(`users/${A}/calendarView?${WINDOW}`, BERLIN)
  expect(local.body.value.map((o: { start: { dateTime: string } }) => o.start.dateTime)).toEqual([
    '2026-03-16T09:00:00.0000000',
    '2026-03-23T09:00:00.0000000',
    '2026-03-30T09:00:00.0000000',
    '2026-04-06T09:00:00.0000000',
  ])
  // An occurrence can be read by its id.
  const one = await c.get(`users/${A}/events/${occ[1]?.id as string}`)
  expect(one.status).toBe(200)
  expect(one.body).toMatchObject({ type: 'occurrence', seriesMasterId: masterId, start: { dateTime: '2026-03-23T08:00:00.0000000', timeZone: 'UTC' } })
})

test('instances: numbered range, window required, paging with nextLink', async () => {
  const masterId = await createSeries({
    subject: 'Daily stand-up',
    start: { dateTime: '2026-05-04T09:30:00', timeZone: 'W. Europe Standard Time' },
    end: { dateTime: '2026-05-04T09:45:00', timeZone: 'W. Europe Standard Time' },
    recurrence: { pattern: { type: 'daily', interval: 1 }, range: { type: 'numbered', startDate: '2026-05-04', numberOfOccurrences: 5 } },
  })
  const noWindow = await c.get(`users/${A}/events/${masterId}/instances`)
  expect(noWindow.status).toBe(400)
  expect(noWindow.body.error.code).toBe('ErrorInvalidParameter')
  const win = 'startDateTime=2026-01-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z'
  const seen: string[] = []
  let url: string | undefined = `users/${A}/events/${masterId}/instances?${win}`
  let pages = 0
  while (url !== undefined && pages < 10) {
    const r = await c.get(url, { prefer: 'odata.maxpagesize=2' })
    expect(r.status).toBe(200)
    expect(r.body.value.length).toBeLessThanOrEqual(2)
    seen.push(...r.body.value.map((o: { start: { dateTime: string } }) => o.start.dateTime))
    url = r.body['@odata.nextLink'] as string | undefined
    pages++
  }
  expect(pages).toBe(3)
  expect(seen).toEqual(['2026-05-04T07:30:00.0000000', '2026-05-05T07:30:00.0000000', '2026-05-06T07:30:00.0000000', '2026-05-07T07:30:00.0000000', '2026-05-08T07:30:00.0000000'])
  // $top pages too; a narrower window selects fewer.
  const top = await c.get(`users/${A}/events/${masterId}/instances?startDateTime=2026-05-05T00:00:00Z&endDateTime=2026-05-07T00:00:00Z&$top=1`)
  expect(top.body.value).toHaveLength(1)
  expect(top.body['@odata.nextLink']).toContain('$skip=1')
})

test('a PATCHed occurrence becomes an exception; a deleted one leaves the view', async () => {
  const masterId = await createSeries()
  const master = await c.get(`users/${A}/events/${masterId}`)
  const occ = (await c.get(`users/${A}/events/${masterId}/instances?${WINDOW}`)).body.value as Array<Record<string, any>> // eslint-disable-line @typescript-eslint/no-explicit-any
  expect(occ).toHaveLength(4)
  const moved = await c.patch(`users/${A}/events/${occ[1]?.id as string}`, {
    subject: 'Jour fixe (moved)',
    start: { dateTime: '2026-03-24T14:00:00', timeZone: 'Europe/Berlin' },
    end: { dateTime: '2026-03-24T15:00:00', timeZone: 'Europe/Berlin' },
  })
  expect(moved.status).toBe(200)
  expect(moved.body).toMatchObject({ id: occ[1]?.id, type: 'exception', seriesMasterId: masterId, subject: 'Jour fixe (moved)', originalStart: '2026-03-23T08:00:00Z' })
  expect(moved.body.start).toEqual({ dateTime: '2026-03-24T13:00:00.0000000', timeZone: 'UTC' })
  expect(moved.body['@odata.etag']).not.toBe(occ[1]?.['@odata.etag'])
  // The master and the other occurrences are unchanged.
  expect((await c.get(`users/${A}/events/${masterId}`)).body['@odata.etag']).toBe(master.body['@odata.etag'])
  const del = await c.del(`users/${A}/events/${occ[2]?.id as string}`)
  expect(del.status).toBe(204)
  expect((await c.get(`users/${A}/events/${occ[2]?.id as string}`)).status).toBe(404)
  expect((await c.del(`users/${A}/events/${occ[2]?.id as string}`)).status).toBe(404)
  const view = await c.get(`users/${A}/calendarView?${WINDOW}`)
  expect(view.body.value.map((o: { type: string; subject: string; start: { dateTime: string } }) => [o.type, o.subject, o.start.dateTime])).toEqual([
    ['occurrence', 'Jour fixe', '2026-03-16T08:00:00.0000000'],
    ['exception', 'Jour fixe (moved)', '2026-03-24T13:00:00.0000000'],
    ['occurrence', 'Jour fixe', '2026-04-06T07:00:00.0000000'],
  ])
  // A series edit reaches every occurrence, the exception keeps what it overrode.
  await c.patch(`users/${A}/events/${masterId}`, { subject: 'Weekly sync', location: { displayName: 'Room 1' } })
  const after = await c.get(`users/${A}/events/${masterId}/instances?${WINDOW}`)
  expect(after.body.value.map((o: { subject: string; location: { displayName: string } }) => [o.subject, o.location.displayName])).toEqual([
    ['Weekly sync', 'Room 1'],
    ['Jour fixe (moved)', 'Room 1'],
    ['Weekly sync', 'Room 1'],
  ])
  // recurrence cannot be set on an occurrence; a date that is not in the pattern is not an occurrence.
  const bad = await c.patch(`users/${A}/events/${occ[0]?.id as string}`, { recurrence: weekly.recurrence })
  expect(bad.status).toBe(400)
  expect(bad.body.error.code).toBe('ErrorInvalidRecurrence')
  expect((await c.get(`users/${A}/events/${masterId}.OC20260317`)).status).toBe(404)
})

test('invalid recurrence is a 400 naming the field', async () => {
  const r = await c.post(`users/${A}/events`, { ...weekly, recurrence: { pattern: { type: 'weekly', interval: 1 }, range: { type: 'noEnd', startDate: '2026-03-16' } } })
  expect(r.status).toBe(400)
  expect(r.body.error.code).toBe('ErrorInvalidRecurrence')
  expect(r.body.error.message).toContain('pattern.daysOfWeek')
  const t = await c.post(`users/${A}/events`, { ...weekly, recurrence: { pattern: { type: 'hourly' }, range: { type: 'noEnd', startDate: '2026-03-16' } } })
  expect(t.status).toBe(400)
  expect(t.body.error.message).toContain('recurrence.pattern.type')
  // A rejected PATCH leaves the series exactly as it was.
  const id = await createSeries()
  const before = await c.get(`users/${A}/events/${id}`)
  const bad = await c.patch(`users/${A}/events/${id}`, { subject: 'changed', recurrence: { pattern: { type: 'absoluteMonthly' }, range: { type: 'noEnd', startDate: '2026-03-16' } } })
  expect(bad.status).toBe(400)
  expect(bad.body.error.message).toContain('pattern.dayOfMonth')
  expect(await c.get(`users/${A}/events/${id}`)).toMatchObject({ status: 200, body: before.body })
})

test('series, exceptions, cancellations and task instants survive a restart with dataDir', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'graph-emu-rec-'))
  try {
    const em1 = await startGraphEmulator({ mailboxes: [A], dataDir: dir })
    const c1 = new Client(em1.url, await getToken(em1))
    const master = (await c1.post(`users/${A}/events`, weekly)).body.id as string
    const occ = (await c1.get(`users/${A}/events/${master}/instances?${WINDOW}`)).body.value as Array<{ id: string }>
    await c1.patch(`users/${A}/events/${occ[0]?.id as string}`, { subject: 'Moved' })
    await c1.del(`users/${A}/events/${occ[1]?.id as string}`)
    const list = (await c1.get(`users/${A}/todo/lists`)).body.value[0].id as string
    await c1.post(`users/${A}/todo/lists/${list}/tasks`, { title: 't', dueDateTime: { dateTime: '2026-12-01T00:00:00', timeZone: 'Europe/Berlin' } })
    const view1 = await c1.get(`users/${A}/calendarView?${WINDOW}`)
    await em1.close()
    const em2 = await startGraphEmulator({ mailboxes: [A], dataDir: dir })
    try {
      const c2 = new Client(em2.url, await getToken(em2))
      const view2 = await c2.get(`users/${A}/calendarView?${WINDOW}`)
      expect(view2.body.value).toEqual(view1.body.value)
      expect(view2.body.value.map((o: { type: string }) => o.type)).toEqual(['exception', 'occurrence', 'occurrence'])
      const tasks = await c2.get(`users/${A}/todo/lists/${list}/tasks`, BERLIN)
      expect(tasks.body.value[0].dueDateTime).toEqual({ dateTime: '2026-12-01T00:00:00.0000000', timeZone: 'Europe/Berlin' })
    } finally {
      await em2.close()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('calendarView/delta reports occurrences, exceptions, cancellations and series edits', async () => {
  const masterId = await createSeries()
  const first = await c.deltaRound(`users/${A}/calendarView/delta?${WINDOW}`, 3)
  expect(first.pages).toBe(2)
  expect(first.items.map((o) => o.type)).toEqual(['occurrence', 'occurrence', 'occurrence', 'occurrence'])
  const ids = first.items.map((o) => o.id as string)
  expect(new Set(ids).size).toBe(4)

  // Nothing changed: an empty round.
  const idle = await c.deltaRound(first.deltaLink)
  expect(idle.items).toEqual([])

  // One occurrence edited, one deleted: only those two.
  await c.patch(`users/${A}/events/${ids[0] as string}`, { subject: 'Special' })
  await c.del(`users/${A}/events/${ids[3] as string}`)
  const r2 = await c.deltaRound(idle.deltaLink)
  expect(r2.items).toHaveLength(2)
  expect(r2.items[0]).toMatchObject({ id: ids[0], type: 'exception', subject: 'Special', seriesMasterId: masterId })
  expect(r2.items[1]).toEqual({ '@odata.type': '#microsoft.graph.event', id: ids[3], '@removed': { reason: 'deleted' } })

  // A series edit: every occurrence in the window again (the deleted one stays removed).
  await c.patch(`users/${A}/events/${masterId}`, { subject: 'Renamed' })
  const r3 = await c.deltaRound(r2.deltaLink, 2)
  const present = r3.items.filter((o) => !o['@removed'])
  expect(present.map((o) => [o.id, o.subject])).toEqual([
    [ids[0], 'Special'],
    [ids[1], 'Renamed'],
    [ids[2], 'Renamed'],
  ])
  expect(r3.items.filter((o) => o['@removed']).map((o) => o.id)).toEqual(expect.arrayContaining([ids[3]]))

  // A new pattern (Tuesdays): new occurrence ids, the Monday ones removed.
  await c.patch(`users/${A}/events/${masterId}`, {
    start: { dateTime: '2026-03-17T09:00:00', timeZone: 'Europe/Berlin' },
    end: { dateTime: '2026-03-17T10:00:00', timeZone: 'Europe/Berlin' },
    recurrence: { pattern: { type: 'weekly', interval: 1, daysOfWeek: ['tuesday'] }, range: { type: 'numbered', startDate: '2026-03-17', numberOfOccurrences: 2 } },
  })
  const r4 = await c.deltaRound(r3.deltaLink)
  const tuesdays = r4.items.filter((o) => !o['@removed'])
  expect(tuesdays.map((o) => [o.type, o.start.dateTime])).toEqual([
    ['occurrence', '2026-03-17T08:00:00.0000000'],
    ['occurrence', '2026-03-24T08:00:00.0000000'],
  ])
  const removed = r4.items.filter((o) => o['@removed']).map((o) => o.id as string)
  expect(removed).toEqual(expect.arrayContaining([ids[0], ids[1], ids[2]]))

  // The series deleted: each occurrence in the window reported removed.
  expect((await c.del(`users/${A}/events/${masterId}`)).status).toBe(204)
  const r5 = await c.deltaRound(r4.deltaLink)
  expect(r5.items.every((o) => o['@removed'])).toBe(true)
  expect(r5.items.map((o) => o.id)).toEqual(expect.arrayContaining(tuesdays.map((o) => o.id as string)))
  const view = await c.get(`users/${A}/calendarView?${WINDOW}`)
  expect(view.body.value).toEqual([])
})

test('immutable ids: occurrences and seriesMasterId use the id format of the request', async () => {
  const imm = { prefer: 'IdType="ImmutableId"' }
  const r = await c.post(`users/${A}/events`, weekly, imm)
  const masterImm = r.body.id as string
  const view = await c.get(`users/${A}/calendarView?${WINDOW}`, imm)
  expect(view.body.value[0].seriesMasterId).toBe(masterImm)
  expect((view.body.value[0].id as string).startsWith(masterImm)).toBe(true)
  const rest = await c.get(`users/${A}/calendarView?${WINDOW}`)
  expect(rest.body.value[0].seriesMasterId).not.toBe(masterImm)
  expect((await c.get(`users/${A}/events/${view.body.value[0].id as string}`, imm)).body.type).toBe('occurrence')
})

test('calendarView/delta: a single event that becomes a series and back', async () => {
  const single = await c.post(`users/${A}/events`, { subject: 'One-off', start: weekly.start, end: weekly.end })
  const id = single.body.id as string
  const first = await c.deltaRound(`users/${A}/calendarView/delta?${WINDOW}`)
  expect(first.items.map((o) => [o.id, o.type])).toEqual([[id, 'singleInstance']])
  await c.patch(`users/${A}/events/${id}`, { recurrence: weekly.recurrence })
  const r1 = await c.deltaRound(first.deltaLink)
  expect(r1.items.filter((o) => !o['@removed']).map((o) => [o.type, o.seriesMasterId])).toEqual(Array.from({ length: 4 }, () => ['occurrence', id]))
  // The id the client held for the single event is reported removed (its occurrences replace it).
  expect(r1.items.filter((o) => o['@removed']).map((o) => o.id)).toEqual([id])
  const occIds = r1.items.filter((o) => !o['@removed']).map((o) => o.id as string)
  await c.patch(`users/${A}/events/${id}`, { recurrence: null })
  const r2 = await c.deltaRound(r1.deltaLink)
  expect(r2.items.filter((o) => !o['@removed']).map((o) => [o.id, o.type])).toEqual([[id, 'singleInstance']])
  expect(r2.items.filter((o) => o['@removed']).map((o) => o.id).sort()).toEqual([...occIds].sort())
})
