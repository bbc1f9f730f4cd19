import { DataverseError } from './errors.js'
import type { Row, TableStore } from './store/store.js'

/** Decoded delta token: `{version}!{MM/dd/yyyy HH:mm:ss}` (UTC). */
export interface DeltaToken {
  version: number
  issuedAt: number
}

const pad = (n: number): string => String(n).padStart(2, '0')

export function formatDeltaToken(version: number, at: Date): string {
  const d = `${pad(at.getUTCMonth() + 1)}/${pad(at.getUTCDate())}/${at.getUTCFullYear()} ${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())}`
  return `${version}!${d}`
}

const TOKEN_RE = /^(\d{1,15})!(\d{2})\/(\d{2})\/(\d{4}) (\d{2}):(\d{2}):(\d{2})$/

export function parseDeltaToken(raw: string): DeltaToken {
  const m = TOKEN_RE.exec(raw)
  if (!m) {
    throw new DataverseError('ChangeTrackingTokenInvalid', 400, `The change tracking token '${raw}' is not valid. Expected {version}!{MM/dd/yyyy HH:mm:ss}.`)
  }
  const [, v, mo, d, y, h, mi, s] = m as unknown as [string, string, string, string, string, string, string, string]
  const issuedAt = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s))
  if (Number.isNaN(issuedAt) || Number(mo) < 1 || Number(mo) > 12 || Number(d) < 1 || Number(d) > 31) {
    throw new DataverseError('ChangeTrackingTokenInvalid', 400, `The change tracking token '${raw}' has an invalid date.`)
  }
  return { version: Number(v), issuedAt }
}

export const EXPIRED_TOKEN_MESSAGE =
  'Version stamp associated with the client has expired. Please perform a full sync.'

export function checkNotExpired(token: DeltaToken, now: number, retentionMs: number, minValidVersion: number, currentVersion: number): void {
  if (token.version > currentVersion) {
    throw new DataverseError('ChangeTrackingTokenInvalid', 400, `The change tracking token version ${token.version} is newer than the organization's current version.`)
  }
  if (now - token.issuedAt > retentionMs || token.version < minValidVersion) {
    throw new DataverseError('ChangeTrackingTokenExpired', 410, EXPIRED_TOKEN_MESSAGE)
  }
}

/** Position inside a change-tracking round (encoded in the $skiptoken paging cookie). */
export interface TrackingCursor {
  phase: 'u' | 'd'
  pos: number
  /** -1 for the initial (full) round. */
  since: number
  upto: number
  page: number
}

export interface TrackingPage {
  upserts: Row[]
  deletes: string[]
  next: TrackingCursor | null
}

export function startCursor(t: TableStore, since: number, upto: number): TrackingCursor {
  return { phase: 'u', pos: since < 0 ? 0 : t.log.firstAfter(since), since, upto, page: 1 }
}

/**
 * Collect up to `limit` changes from the table's change log. Work is O(page + superseded entries):
 * log entries whose row has since changed again are skipped (the newer entry reports it).
 */
export function collectChanges(t: TableStore, cursor: TrackingCursor, limit: number): TrackingPage {
  const { versions, ids, deletes } = t.log
  const upserts: Row[] = []
  const deleted: string[] = []
  let { phase, pos } = cursor
  const len = versions.length
  if (phase === 'u') {
    while (pos < len && (versions[pos] as number) <= cursor.upto) {
      if (upserts.length >= limit) return { upserts, deletes: deleted, next: { ...cursor, phase, pos, page: cursor.page + 1 } }
      if (!deletes[pos]) {
        const row = t.rows.get(ids[pos] as string)
        if (row && row.version === versions[pos]) upserts.push(row)
      }
      pos++
    }
    if (cursor.since < 0) return { upserts, deletes: deleted, next: null }
    phase = 'd'
    pos = t.log.firstAfter(cursor.since)
  }
  while (pos < len && (versions[pos] as number) <= cursor.upto) {
    if (upserts.length + deleted.length >= limit) {
      return { upserts, deletes: deleted, next: { ...cursor, phase, pos, page: cursor.page + 1 } }
    }
    if (deletes[pos]) {
      const id = ids[pos] as string
      const tomb = t.tombstones.get(id)
      if (tomb && tomb.version === versions[pos]) deleted.push(id)
    }
    pos++
  }
  return { upserts, deletes: deleted, next: null }
}

export function countChanges(t: TableStore, since: number, upto: number): number {
  let cursor: TrackingCursor | null = startCursor(t, since, upto)
  let n = 0
  while (cursor) {
    const p = collectChanges(t, cursor, 100_000)
    n += p.upserts.length + p.deletes.length
    cursor = p.next
  }
  return n
}

export const CT_REJECTED_OPTIONS = ['$filter', '$orderby', '$expand', '$top'] as const

export function rejectedOptionError(option: string): DataverseError {
  return new DataverseError(
    'ChangeTrackingQueryOption',
    400,
    `The "${option.replace(/^\$/, '')}" query parameter isn't supported when Change Tracking is enabled.`,
  )
}
