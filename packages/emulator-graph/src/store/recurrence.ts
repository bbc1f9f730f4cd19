/**
 * Recurring events (Graph `patternedRecurrence`): validation, the normalised form Graph returns, and
 * expansion of a series into occurrences.
 *
 * A series is expanded in its recurrence time zone (`range.recurrenceTimeZone`, default the zone the
 * start was written in): every occurrence starts at the master's wall-clock start time on a pattern
 * date and lasts the master's wall-clock duration, so a 09:00 Europe/Berlin weekly meeting stays at
 * 09:00 local across a daylight-saving change (its UTC instant moves by an hour).
 *
 * Occurrence ids are `{seriesMasterId}.OC{yyyymmdd}` (the original local date of the occurrence; a
 * series has at most one occurrence per day). Real Graph occurrence ids are opaque too.
 */
import { z } from 'zod'
import { GraphHttpError } from '../errors.js'
import { requireTimeZone, utcToZoned, zonedToUtc } from '../timezones.js'

export const DAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const
export type DayOfWeek = (typeof DAYS)[number]
const INDEXES = ['first', 'second', 'third', 'fourth', 'last'] as const
const PATTERN_TYPES = ['daily', 'weekly', 'absoluteMonthly', 'relativeMonthly', 'absoluteYearly', 'relativeYearly'] as const
const RANGE_TYPES = ['endDate', 'noEnd', 'numbered'] as const

const date = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date like 2026-03-02')

/** Request-body schema (Graph's own normalised output is accepted back: zero month/dayOfMonth, 0001-01-01 endDate). */
export const recurrenceInputSchema = z.strictObject({
  pattern: z.strictObject({
    type: z.enum(PATTERN_TYPES),
    interval: z.number().int().min(1).max(999).optional(),
    month: z.number().int().min(0).max(12).optional(),
    dayOfMonth: z.number().int().min(0).max(31).optional(),
    daysOfWeek: z.array(z.enum(DAYS)).max(7).optional(),
    firstDayOfWeek: z.enum(DAYS).optional(),
    index: z.enum(INDEXES).optional(),
  }),
  range: z.strictObject({
    type: z.enum(RANGE_TYPES),
    startDate: date,
    endDate: date.nullable().optional(),
    recurrenceTimeZone: z.string().nullable().optional(),
    numberOfOccurrences: z.number().int().min(0).max(999).optional(),
  }),
})
export type RecurrenceInput = z.infer<typeof recurrenceInputSchema>

/** The recurrence exactly as Graph returns it (every member present). */
export interface Recurrence {
  pattern: {
    type: (typeof PATTERN_TYPES)[number]
    interval: number
    month: number
    dayOfMonth: number
    daysOfWeek: DayOfWeek[]
    firstDayOfWeek: DayOfWeek
    index: (typeof INDEXES)[number]
  }
  range: {
    type: (typeof RANGE_TYPES)[number]
    startDate: string
    endDate: string
    recurrenceTimeZone: string
    numberOfOccurrences: number
  }
}

/** What an expansion needs: the recurrence plus the master's start and end instants. */
export interface SeriesShape {
  recurrence: Recurrence
  startMs: number
  endMs: number
}

const NO_END = '0001-01-01'
const DAY_MS = 86_400_000

function invalid(field: string, message: string): GraphHttpError {
  return new GraphHttpError(400, 'ErrorInvalidRecurrence', `Invalid recurrence: '${field}' ${message}.`)
}

/**
 * Validates a recurrence against its pattern type and fills the members Graph always returns.
 * `startTimeZone` (the zone of the event's start) is the default `recurrenceTimeZone`.
 */
export function normaliseRecurrence(input: RecurrenceInput, startTimeZone: string): Recurrence {
  const p = input.pattern
  const r = input.range
  const days = [...new Set(p.daysOfWeek ?? [])]
  const needsDays = p.type === 'weekly' || p.type === 'relativeMonthly' || p.type === 'relativeYearly'
  if (needsDays && days.length === 0) throw invalid('pattern.daysOfWeek', `is required for a ${p.type} pattern`)
  const needsDayOfMonth = p.type === 'absoluteMonthly' || p.type === 'absoluteYearly'
  if (needsDayOfMonth && !(p.dayOfMonth !== undefined && p.dayOfMonth >= 1)) throw invalid('pattern.dayOfMonth', `must be 1-31 for a ${p.type} pattern (got ${String(p.dayOfMonth)})`)
  const needsMonth = p.type === 'absoluteYearly' || p.type === 'relativeYearly'
  if (needsMonth && !(p.month !== undefined && p.month >= 1)) throw invalid('pattern.month', `must be 1-12 for a ${p.type} pattern (got ${String(p.month)})`)
  if (Number.isNaN(Date.parse(`${r.startDate}T00:00:00Z`))) throw invalid('range.startDate', `'${r.startDate}' is not a valid date`)
  let endDate = NO_END
  let count = 0
  if (r.type === 'endDate') {
    if (!r.endDate || r.endDate === NO_END || Number.isNaN(Date.parse(`${r.endDate}T00:00:00Z`))) throw invalid('range.endDate', `is required for an endDate range (got ${JSON.stringify(r.endDate ?? null)})`)
    if (r.endDate < r.startDate) throw invalid('range.endDate', `'${r.endDate}' is before range.startDate '${r.startDate}'`)
    endDate = r.endDate
  } else if (r.type === 'numbered') {
    if (!r.numberOfOccurrences || r.numberOfOccurrences < 1) throw invalid('range.numberOfOccurrences', `must be 1-999 for a numbered range (got ${String(r.numberOfOccurrences)})`)
    count = r.numberOfOccurrences
  }
  const tz = r.recurrenceTimeZone ? r.recurrenceTimeZone : startTimeZone
  requireTimeZone(tz)
  const order = (d: DayOfWeek) => DAYS.indexOf(d)
  return {
    pattern: {
      type: p.type,
      interval: p.interval ?? 1,
      month: needsMonth ? (p.month as number) : 0,
      dayOfMonth: needsDayOfMonth ? (p.dayOfMonth as number) : 0,
      daysOfWeek: needsDays ? days.sort((a, b) => order(a) - order(b)) : [],
      firstDayOfWeek: p.firstDayOfWeek ?? 'sunday',
      index: p.index ?? 'first',
    },
    range: { type: r.type, startDate: r.startDate, endDate, recurrenceTimeZone: tz, numberOfOccurrences: count },
  }
}

// ---------- date arithmetic on local dates (day numbers since 1970-01-01) ----------

function dayNum(d: string): number {
  return Math.floor(Date.parse(`${d}T00:00:00Z`) / DAY_MS)
}
function weekday(day: number): number {
  return (((day + 4) % 7) + 7) % 7 // 1970-01-01 was a Thursday
}
function ymd(day: number): { y: number; m: number; d: number } {
  const dt = new Date(day * DAY_MS)
  return { y: dt.getUTCFullYear(), m: dt.getUTCMonth() + 1, d: dt.getUTCDate() }
}
function fromYmd(y: number, m: number, d: number): number {
  return Math.floor(Date.UTC(y, m - 1, d) / DAY_MS)
}
function daysInMonth(y: number, m: number): number {
  return new Date(Date.UTC(y, m, 0)).getUTCDate()
}
export function dateKey(day: number): string {
  const { y, m, d } = ymd(day)
  return `${String(y).padStart(4, '0')}${String(m).padStart(2, '0')}${String(d).padStart(2, '0')}`
}
export function keyToDay(key: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(key)
  if (!m) return undefined
  const day = fromYmd(Number(m[1]), Number(m[2]), Number(m[3]))
  return dateKey(day) === key ? day : undefined
}

/** Relative day in month `m` of year `y`: the `index`-th day whose weekday is in `days`. */
function relativeDay(y: number, m: number, days: ReadonlySet<number>, index: Recurrence['pattern']['index']): number | undefined {
  const first = fromYmd(y, m, 1)
  const matches: number[] = []
  for (let i = 0; i < daysInMonth(y, m); i++) if (days.has(weekday(first + i))) matches.push(first + i)
  if (index === 'last') return matches[matches.length - 1]
  return matches[INDEXES.indexOf(index)]
}

/** Upper bound on generated pattern dates per expansion (a daily series over ~270 years). */
const MAX_STEPS = 100_000

/** Pattern dates (day numbers) from range.startDate, ascending, while `day <= untilDay` and the range allows. */
export function* patternDays(rec: Recurrence, untilDay: number): Generator<number> {
  const p = rec.pattern
  const r = rec.range
  const start = dayNum(r.startDate)
  const last = r.type === 'endDate' ? Math.min(untilDay, dayNum(r.endDate)) : untilDay
  const max = r.type === 'numbered' ? r.numberOfOccurrences : Number.POSITIVE_INFINITY
  let n = 0
  const emit = function* (day: number): Generator<number, boolean> {
    if (day < start) return true
    if (day > last || n >= max) return false
    n++
    yield day
    return n < max
  }
  const days = new Set(p.daysOfWeek.map((d) => DAYS.indexOf(d)))
  const s = ymd(start)
  for (let k = 0; k < MAX_STEPS; k++) {
    switch (p.type) {
      case 'daily': {
        const day = start + k * p.interval
        if (day > last) return
        if (!(yield* emit(day))) return
        break
      }
      case 'weekly': {
        const fdw = DAYS.indexOf(p.firstDayOfWeek)
        const weekStart = start - ((weekday(start) - fdw + 7) % 7) + 7 * k * p.interval
        if (weekStart > last) return
        for (let off = 0; off < 7; off++) {
          const day = weekStart + off
          if (days.has(weekday(day)) && !(yield* emit(day))) return
        }
        break
      }
      case 'absoluteMonthly':
      case 'relativeMonthly': {
        const mi = s.m - 1 + k * p.interval
        const y = s.y + Math.floor(mi / 12)
        const m = (mi % 12) + 1
        if (fromYmd(y, m, 1) > last) return
        const day = p.type === 'absoluteMonthly' ? fromYmd(y, m, Math.min(p.dayOfMonth, daysInMonth(y, m))) : relativeDay(y, m, days, p.index)
        if (day !== undefined && !(yield* emit(day))) return
        break
      }
      case 'absoluteYearly':
      case 'relativeYearly': {
        const y = s.y + k * p.interval
        if (fromYmd(y, 1, 1) > last) return
        const day = p.type === 'absoluteYearly' ? fromYmd(y, p.month, Math.min(p.dayOfMonth, daysInMonth(y, p.month))) : relativeDay(y, p.month, days, p.index)
        if (day !== undefined && !(yield* emit(day))) return
        break
      }
    }
  }
}

export interface PatternInstance {
  /** Original local date, `yyyymmdd`. */
  key: string
  startMs: number
  endMs: number
}

/**
 * The pattern occurrences of a series whose original start lies before `toMs` (and, with `fromMs`,
 * whose time range overlaps [fromMs, toMs)). Exceptions and cancellations are applied by the caller.
 */
export function expandShape(shape: SeriesShape, fromMs: number | undefined, toMs: number): PatternInstance[] {
  const iana = requireTimeZone(shape.recurrence.range.recurrenceTimeZone)
  const localStart = Date.parse(`${utcToZoned(shape.startMs, iana).slice(0, 19)}Z`)
  const localEnd = Date.parse(`${utcToZoned(shape.endMs, iana).slice(0, 19)}Z`)
  const timeOfDay = ((localStart % DAY_MS) + DAY_MS) % DAY_MS
  const duration = localEnd - localStart
  const untilDay = Math.floor(Date.parse(`${utcToZoned(toMs, iana).slice(0, 19)}Z`) / DAY_MS) + 1
  const out: PatternInstance[] = []
  for (const day of patternDays(shape.recurrence, untilDay)) {
    const ls = day * DAY_MS + timeOfDay
    const startMs = zonedToUtc(ls, iana)
    const endMs = zonedToUtc(ls + duration, iana)
    if (startMs >= toMs && !(startMs === endMs && startMs === toMs)) continue
    if (fromMs !== undefined && !(endMs > fromMs || (startMs === endMs && startMs >= fromMs))) continue
    out.push({ key: dateKey(day), startMs, endMs })
  }
  return out
}

/** Whether `key` is a pattern date of the series (cancellations not considered). */
export function isPatternKey(shape: SeriesShape, key: string): boolean {
  const day = keyToDay(key)
  if (day === undefined) return false
  for (const d of patternDays(shape.recurrence, day)) if (d === day) return true
  return false
}

/** The instant an occurrence on `key` starts per the pattern (its `originalStart`). */
export function patternStartMs(shape: SeriesShape, key: string): number {
  return instanceTimes(shape, key).startMs
}

export const OCCURRENCE_SEPARATOR = '.OC'

export function occurrenceId(masterId: string, key: string): string {
  return `${masterId}${OCCURRENCE_SEPARATOR}${key}`
}

/** Splits an occurrence id into the master id and the date key, or undefined for any other id. */
export function parseOccurrenceId(id: string): { masterId: string; key: string } | undefined {
  const i = id.lastIndexOf(OCCURRENCE_SEPARATOR)
  if (i <= 0) return undefined
  const key = id.slice(i + OCCURRENCE_SEPARATOR.length)
  if (keyToDay(key) === undefined) return undefined
  return { masterId: id.slice(0, i), key }
}

/** Start and end of the pattern occurrence on `key` (wall-clock start time and duration of the master). */
export function instanceTimes(shape: SeriesShape, key: string): { startMs: number; endMs: number } {
  const iana = requireTimeZone(shape.recurrence.range.recurrenceTimeZone)
  const day = keyToDay(key) ?? 0
  const localStart = Date.parse(`${utcToZoned(shape.startMs, iana).slice(0, 19)}Z`)
  const localEnd = Date.parse(`${utcToZoned(shape.endMs, iana).slice(0, 19)}Z`)
  const timeOfDay = ((localStart % DAY_MS) + DAY_MS) % DAY_MS
  const ls = day * DAY_MS + timeOfDay
  return { startMs: zonedToUtc(ls, iana), endMs: zonedToUtc(ls + (localEnd - localStart), iana) }
}
