/**
 * Time zones as Graph accepts them in `dateTimeTimeZone.timeZone` and `Prefer: outlook.timezone`:
 * IANA names (`Europe/Berlin`) and Windows names (`W. Europe Standard Time`). Windows names are mapped
 * to an IANA zone with the CLDR "001" (territory-neutral) mapping; Node's `Intl` does the arithmetic,
 * so daylight-saving rules come from the ICU data bundled with Node.
 */
import { GraphHttpError } from './errors.js'

/** Windows zone name → IANA zone (CLDR windowsZones.xml, territory 001). */
export const WINDOWS_TO_IANA: Readonly<Record<string, string>> = {
  'Dateline Standard Time': 'Etc/GMT+12',
  'UTC-11': 'Etc/GMT+11',
  'Hawaiian Standard Time': 'Pacific/Honolulu',
  'Alaskan Standard Time': 'America/Anchorage',
  'Pacific Standard Time': 'America/Los_Angeles',
  'Pacific Standard Time (Mexico)': 'America/Tijuana',
  'US Mountain Standard Time': 'America/Phoenix',
  'Mountain Standard Time': 'America/Denver',
  'Central America Standard Time': 'America/Guatemala',
  'Central Standard Time': 'America/Chicago',
  'Central Standard Time (Mexico)': 'America/Mexico_City',
  'Canada Central Standard Time': 'America/Regina',
  'SA Pacific Standard Time': 'America/Bogota',
  'Eastern Standard Time': 'America/New_York',
  'US Eastern Standard Time': 'America/Indianapolis',
  'Atlantic Standard Time': 'America/Halifax',
  'SA Western Standard Time': 'America/La_Paz',
  'Pacific SA Standard Time': 'America/Santiago',
  'Newfoundland Standard Time': 'America/St_Johns',
  'E. South America Standard Time': 'America/Sao_Paulo',
  'Argentina Standard Time': 'America/Buenos_Aires',
  'Greenland Standard Time': 'America/Godthab',
  'UTC-02': 'Etc/GMT+2',
  'Azores Standard Time': 'Atlantic/Azores',
  'Cape Verde Standard Time': 'Atlantic/Cape_Verde',
  UTC: 'Etc/UTC',
  'Coordinated Universal Time': 'Etc/UTC',
  'GMT Standard Time': 'Europe/London',
  'Greenwich Standard Time': 'Atlantic/Reykjavik',
  'W. Europe Standard Time': 'Europe/Berlin',
  'Central Europe Standard Time': 'Europe/Budapest',
  'Romance Standard Time': 'Europe/Paris',
  'Central European Standard Time': 'Europe/Warsaw',
  'W. Central Africa Standard Time': 'Africa/Lagos',
  'GTB Standard Time': 'Europe/Bucharest',
  'E. Europe Standard Time': 'Europe/Chisinau',
  'Egypt Standard Time': 'Africa/Cairo',
  'FLE Standard Time': 'Europe/Kiev',
  'Israel Standard Time': 'Asia/Jerusalem',
  'South Africa Standard Time': 'Africa/Johannesburg',
  'Turkey Standard Time': 'Europe/Istanbul',
  'Arabic Standard Time': 'Asia/Baghdad',
  'Arab Standard Time': 'Asia/Riyadh',
  'Russian Standard Time': 'Europe/Moscow',
  'E. Africa Standard Time': 'Africa/Nairobi',
  'Iran Standard Time': 'Asia/Tehran',
  'Arabian Standard Time': 'Asia/Dubai',
  'Pakistan Standard Time': 'Asia/Karachi',
  'India Standard Time': 'Asia/Calcutta',
  'Nepal Standard Time': 'Asia/Katmandu',
  'Bangladesh Standard Time': 'Asia/Dhaka',
  'SE Asia Standard Time': 'Asia/Bangkok',
  'China Standard Time': 'Asia/Shanghai',
  'Singapore Standard Time': 'Asia/Singapore',
  'Taipei Standard Time': 'Asia/Taipei',
  'W. Australia Standard Time': 'Australia/Perth',
  'Tokyo Standard Time': 'Asia/Tokyo',
  'Korea Standard Time': 'Asia/Seoul',
  'Cen. Australia Standard Time': 'Australia/Adelaide',
  'AUS Central Standard Time': 'Australia/Darwin',
  'E. Australia Standard Time': 'Australia/Brisbane',
  'AUS Eastern Standard Time': 'Australia/Sydney',
  'West Pacific Standard Time': 'Pacific/Port_Moresby',
  'Tasmania Standard Time': 'Australia/Hobart',
  'New Zealand Standard Time': 'Pacific/Auckland',
  'UTC+12': 'Etc/GMT-12',
  'Tonga Standard Time': 'Pacific/Tongatapu',
}

const lowerWindows = new Map(Object.entries(WINDOWS_TO_IANA).map(([k, v]) => [k.toLowerCase(), v]))
const formatters = new Map<string, Intl.DateTimeFormat>()

function formatter(iana: string): Intl.DateTimeFormat {
  let f = formatters.get(iana)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: iana,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    })
    formatters.set(iana, f)
  }
  return f
}

/** The IANA zone for a Windows or IANA name (case-insensitive), or undefined when Graph would refuse it. */
export function resolveTimeZone(name: string): string | undefined {
  const trimmed = name.trim()
  if (trimmed === '') return undefined
  const win = lowerWindows.get(trimmed.toLowerCase())
  if (win !== undefined) return win
  // IANA names only (an offset string such as "+01:00" or an abbreviation such as "CET" is not a zone name Graph lists).
  if (!trimmed.includes('/')) return undefined
  try {
    return formatter(trimmed).resolvedOptions().timeZone
  } catch {
    return undefined
  }
}

export function unsupportedTimeZone(name: string): GraphHttpError {
  return new GraphHttpError(400, 'TimeZoneNotSupportedException', `A valid TimeZone value must be specified. The following TimeZone value is not supported: '${name}'.`)
}

/** Like `resolveTimeZone`, but an unknown name is Graph's 400 `TimeZoneNotSupportedException`. */
export function requireTimeZone(name: string): string {
  const z = resolveTimeZone(name)
  if (z === undefined) throw unsupportedTimeZone(name)
  return z
}

/** Offset (ms, local − UTC) of `iana` at instant `ms`. */
function offsetAt(ms: number, iana: string): number {
  const parts = formatter(iana).formatToParts(new Date(ms))
  const get = (t: string): number => Number(parts.find((p) => p.type === t)?.value ?? '0')
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'))
  return asUtc - (ms - (ms % 1000 + 1000) % 1000)
}

/**
 * The instant of a wall-clock time (`localMs` = the wall clock read as if it were UTC) in `iana`.
 * In a fall-back overlap the earlier (daylight) instant is chosen; a time in a spring-forward gap is
 * read with the offset before the gap (02:30 in a skipped hour becomes 03:30 daylight time).
 */
export function zonedToUtc(localMs: number, iana: string): number {
  const before = offsetAt(localMs - 86_400_000, iana)
  const after = offsetAt(localMs + 86_400_000, iana)
  const valid = [localMs - before, localMs - after].filter((t) => t + offsetAt(t, iana) === localMs)
  if (valid.length > 0) return Math.min(...valid)
  return localMs - before
}

/** The wall-clock time in `iana` of instant `ms`, in Graph's format `YYYY-MM-DDTHH:mm:ss.0000000`. */
export function utcToZoned(ms: number, iana: string): string {
  const local = new Date(ms + offsetAt(ms, iana)).toISOString().slice(0, 19)
  return `${local}.0000000`
}
