/** Events in non-UTC zones round-trip through the adapter and the emulator at their true instants. */
import { asConcordId, asOpId } from '@concord/engine'
import type { RemoteUpsert } from '@concord/engine'
import { latestByNativeId, pullAll } from '@concord/engine/testing'
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import { exchangeSampleFields, startEmulatorEnv, UPN, type EmulatorEnv } from './test/emulator-env.js'

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

/** The next `MM-DD` after today (so the event is inside the adapter's calendar window). */
function next(monthDay: string): string {
  const now = new Date()
  const year = now.getUTCFullYear()
  const thisYear = `${year}-${monthDay}`
  return Date.parse(`${thisYear}T00:00:00Z`) > now.getTime() + 86_400_000 ? thisYear : `${year + 1}-${monthDay}`
}

test('Berlin (Windows and IANA names) and Pacific events: UTC instants in Graph, original wall clock back in the adapter', async () => {
  const adapter = env.adapter({ kinds: ['appointment'], calendarWindow: { pastDays: 1, futureDays: 400 } })
  const winter = next('01-15')
  const summer = next('07-15')
  const dayAfter = new Date(Date.parse(`${winter}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10)
  const cases = [
    { id: 'berlin-winter', start: `${winter}T09:00:00`, end: `${winter}T10:30:00`, zone: 'W. Europe Standard Time', utcStart: `${winter}T08:00:00.0000000`, utcEnd: `${winter}T09:30:00.0000000` },
    { id: 'berlin-summer', start: `${summer}T09:00:00`, end: `${summer}T10:30:00`, zone: 'W. Europe Standard Time', utcStart: `${summer}T07:00:00.0000000`, utcEnd: `${summer}T08:30:00.0000000` },
    { id: 'berlin-iana', start: `${summer}T09:00:00`, end: `${summer}T10:00:00`, zone: 'Europe/Berlin', utcStart: `${summer}T07:00:00.0000000`, utcEnd: `${summer}T08:00:00.0000000` },
    { id: 'pacific-summer', start: `${summer}T09:00:00`, end: `${summer}T10:00:00`, zone: 'Pacific Standard Time', utcStart: `${summer}T16:00:00.0000000`, utcEnd: `${summer}T17:00:00.0000000` },
    // 17:30 PST is 01:30 UTC the next day.
    { id: 'pacific-winter', start: `${winter}T17:30:00`, end: `${winter}T18:00:00`, zone: 'Pacific Standard Time', utcStart: `${dayAfter}T01:30:00.0000000`, utcEnd: `${dayAfter}T02:00:00.0000000` },
  ]
  const base = exchangeSampleFields('appointment', 1)
  const pushed = await adapter.push(
    cases.map((c, i) => ({
      opId: asOpId(`tz-${i}`),
      type: 'create' as const,
      concordId: asConcordId(c.id),
      kind: 'appointment' as const,
      fields: { ...base, subject: c.id, recurrence: null, start: { dateTime: c.start, timeZone: c.zone }, end: { dateTime: c.end, timeZone: c.zone } },
    })),
  )
  expect(pushed.applied).toHaveLength(cases.length)
  // Graph (the emulator) holds the true instants: asked in UTC (the default), it answers in UTC.
  for (const [i, c] of cases.entries()) {
    const graph = env.em.control.getItem(UPN, env.graphId(pushed.applied[i]!.nativeId!))
    expect(graph['start']).toEqual({ dateTime: c.utcStart, timeZone: 'UTC' })
    expect(graph['end']).toEqual({ dateTime: c.utcEnd, timeZone: 'UTC' })
    expect(graph['originalStartTimeZone']).toBe(c.zone)
  }
  // Pulled back, each event carries the wall-clock time and zone it was written with.
  const pulled = [...latestByNativeId((await pullAll(adapter, null)).changes).values()].filter((c): c is RemoteUpsert => c.type === 'upsert')
  expect(pulled).toHaveLength(cases.length)
  for (const c of cases) {
    const got = pulled.find((p) => p.concordId === c.id)!
    expect(got.fields['start']).toEqual({ dateTime: c.start, timeZone: c.zone })
    expect(got.fields['end']).toEqual({ dateTime: c.end, timeZone: c.zone })
  }
  // The calendar window works on instants: a window of one UTC hour around 16:00Z on the summer day holds only the Pacific event.
  const view = await adapter.http.send('GET', `/users/${UPN}/calendarView?startDateTime=${summer}T15:30:00Z&endDateTime=${summer}T16:30:00Z&$select=subject`)
  expect((view.body as { value: Array<{ subject: string }> }).value.map((e) => e.subject)).toEqual(['pacific-summer'])
})
