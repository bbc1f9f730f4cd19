import { expect, test } from 'vitest'
import { mulberry32 } from './rng.js'
import { type EventColumns, type WorkloadEvent, eventColumns, eventCount, generateColumns, generateWorkload, mergeColumns, sortEvents, trueRateFunction } from './workload.js'

const event = (t: number, item: string, initial?: boolean): WorkloadEvent => ({ t, mailbox: 'm', side: 'crm', op: 'update', kind: 'contact', item, initial })

test('sortEvents: initial events first, then by time; ties keep their order (stable), like a comparison sort', () => {
  const random = mulberry32(7)
  for (let round = 0; round < 20; round++) {
    const events: WorkloadEvent[] = []
    const n = 1 + Math.floor(random() * 400)
    for (let i = 0; i < n; i++) {
      const r = random()
      // many exact ties, a few far-apart times, some initial events
      const t = r < 0.3 ? Math.floor(random() * 5) * 1000 : r < 0.35 ? random() * 1e9 : random() * 86_400_000
      events.push(event(t, `e${i}`, random() < 0.05 ? true : undefined))
    }
    const expected = events.map((e, i) => ({ e, i })).sort((a, b) => (a.e.initial ? -1 : a.e.t) - (b.e.initial ? -1 : b.e.t) || a.i - b.i).map(({ e }) => e.item)
    sortEvents(events)
    expect(events.map((e) => e.item)).toEqual(expected)
  }
})

test('generateWorkload is deterministic and sorted', () => {
  const a = generateWorkload({ mailboxes: 3, days: 1, seed: 3 })
  const b = generateWorkload({ mailboxes: 3, days: 1, seed: 3 })
  expect(a).toEqual(b)
  const keys = a.events.map((e) => (e.initial ? -1 : e.t))
  for (let i = 1; i < keys.length; i++) expect(keys[i]!).toBeGreaterThanOrEqual(keys[i - 1]!)
})

test('withFields: false keeps every event, time and random draw, only without payloads (what the stub engine reads)', () => {
  const full = generateWorkload({ mailboxes: 6, days: 2, seed: 4 })
  const light = generateWorkload({ mailboxes: 6, days: 2, seed: 4, withFields: false })
  const shape = (w: typeof full) => w.events.map((e) => [e.t, e.mailbox, e.side, e.op, e.kind, e.item, e.initial ?? false])
  expect(shape(light)).toEqual(shape(full))
  expect(light.events.some((e) => e.kind === 'email' && e.fields !== undefined)).toBe(false)
  expect(full.events.filter((e) => e.kind === 'email' && e.op === 'create').every((e) => e.fields !== undefined)).toBe(true)
})

test("eventsAs: 'columns' holds the same events as the objects (time, mailbox, side, initial data first)", () => {
  const objects = generateWorkload({ mailboxes: 7, days: 2, seed: 5 })
  const columns = generateWorkload({ mailboxes: 7, days: 2, seed: 5, eventsAs: 'columns' })
  expect(columns.events).toEqual([])
  expect(columns.mailboxes).toEqual(objects.mailboxes)
  expect(eventCount(columns)).toBe(objects.events.length)
  const derived = eventColumns(objects)
  const c = columns.columns!
  expect({ t: Array.from(c.t), box: Array.from(c.box), crm: Array.from(c.crm), initial: c.initial }).toEqual({ t: Array.from(derived.t), box: Array.from(derived.box), crm: Array.from(derived.crm), initial: derived.initial })
  expect(derived.initial).toBe(objects.events.filter((e) => e.initial).length)
  const rateOf = trueRateFunction(objects)
  const rateOfColumns = trueRateFunction(columns)
  for (const id of objects.mailboxes) for (let t = 0; t < objects.durationMs; t += 3_600_000) expect(rateOfColumns(id, t)).toBe(rateOf(id, t))
})

const plain = (c: EventColumns) => ({ t: Array.from(c.t), box: Array.from(c.box), crm: Array.from(c.crm), initial: c.initial })

test('a workload generated in two parts (mailbox ranges) and merged has exactly the columns of the whole', () => {
  const options = { mailboxes: 9, days: 2, seed: 11, eventsAs: 'columns' as const }
  const whole = eventColumns(generateWorkload(options))
  for (const half of [0, 1, 4, 5, 9]) expect(plain(mergeColumns(generateColumns(options, 0, half), generateColumns(options, half, 9)))).toEqual(plain(whole))
})

test('mergeColumns: initial data of both parts first, then by time, ties to the lower part', () => {
  const cols = (t: number[], box: number[], initial: number): EventColumns => ({ t: Float64Array.from(t), box: Int32Array.from(box), crm: Uint8Array.from(box.map((b) => b % 2)), initial })
  const a = cols([0, 0, 5, 7, 7], [-1, -1, 0, 1, 0], 2)
  const b = cols([0, 5, 6, 7, 9], [-1, 2, 3, 2, 3], 1)
  expect(plain(mergeColumns(a, b))).toEqual(plain(cols([0, 0, 0, 5, 5, 6, 7, 7, 7, 9], [-1, -1, -1, 0, 2, 3, 1, 0, 2, 3], 3)))
})
