import { SyncError, type DateTimeTz } from '@concord/engine'

/** Common Windows zone names (Graph, Exchange) → IANA, so wall-clock times convert exactly. */
const WINDOWS_ZONES: Record<string, string> = {
  UTC: 'UTC',
  'Coordinated Universal Time': 'UTC',
  'GMT Standard Time': 'Europe/London',
  'W. Europe Standard Time': 'Europe/Berlin',
  'Romance Standard Time': 'Europe/Paris',
  'Central Europe Standard Time': 'Europe/Budapest',
  'Central European Standard Time': 'Europe/Warsaw',
  'E. Europe Standard Time': 'Europe/Chisinau',
  'FLE Standard Time': 'Europe/Kiev',
  'Eastern Standard Time': 'America/New_York',
  'Central Standard Time': 'America/Chicago',
  'Mountain Standard Time': 'America/Denver',
  'Pacific Standard Time': 'America/Los_Angeles',
  'India Standard Time': 'Asia/Kolkata',
  'Tokyo Standard Time': 'Asia/Tokyo',
  'China Standard Time': 'Asia/Shanghai',
  'AUS Eastern Standard Time': 'Australia/Sydney',
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone)
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' })
    } catch (error) {
      throw new SyncError('Validation', `Unknown time zone '${zone}'`, {}, { cause: error })
    }
    formatters.set(zone, f)
  }
  return f
}

/** Offset of `zone` from UTC at instant `utcMs`, in ms. */
function offsetMs(utcMs: number, zone: string): number {
  const parts = formatter(zone).formatToParts(new Date(utcMs))
  const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value ?? 0)
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'))
  return asUtc - Math.floor(utcMs / 1000) * 1000
}

/** A wall-clock time in a zone → the UTC instant Dataverse stores (`2026-01-31T08:30:00Z`). */
export function toUtcInstant(value: DateTimeTz): string {
  const zone = WINDOWS_ZONES[value.timeZone] ?? value.timeZone
  const naive = Date.parse(`${value.dateTime.length === 16 ? `${value.dateTime}:00` : value.dateTime}Z`)
  if (Number.isNaN(naive)) throw new SyncError('Validation', `Invalid date-time '${value.dateTime}'`)
  let utc = naive
  if (zone !== 'UTC') {
    utc = naive - offsetMs(naive, zone)
    utc = naive - offsetMs(utc, zone)
  }
  return new Date(utc).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** A Dataverse UTC instant → canonical `{ dateTime, timeZone: 'UTC' }`. */
export function fromUtcInstant(value: string): DateTimeTz {
  const ms = Date.parse(value)
  if (Number.isNaN(ms)) throw new SyncError('InvalidRemoteData', `Invalid date-time '${value}' from Dataverse`)
  return { dateTime: new Date(ms).toISOString().slice(0, 19), timeZone: 'UTC' }
}
