import { assert } from '../errors.js'
import type { ConcordId, NativeId, PairId, ReplicaId } from '../ids.js'

/**
 * The store's key space. Versioned (`v1`) from day one; byte order equals logical order, so a
 * replica's log is one contiguous range and replays are a single iterator scan.
 */
const V = 'v1'
const SEP = '!'

export function assertKeyPart(part: string, what: string): void {
  assert(part.length > 0 && !part.includes(SEP), `${what} must be non-empty and must not contain '${SEP}': ${JSON.stringify(part)}`)
}

/** 12 hex digits keep log keys sorted up to 2^48 entries per replica. */
export function seqKey(seq: number): string {
  return seq.toString(16).padStart(12, '0')
}

export const keys = {
  meta: () => `${V}${SEP}meta`,
  cursor: (r: ReplicaId) => `${V}${SEP}r${SEP}${r}${SEP}cursor`,
  listing: (r: ReplicaId) => `${V}${SEP}r${SEP}${r}${SEP}listing`,
  /** The native ids one page of full listing `no` contained (page `page` of it). */
  listed: (r: ReplicaId, no: number, page: number) => `${V}${SEP}r${SEP}${r}${SEP}listed${SEP}${seqKey(no)}${SEP}${seqKey(page)}`,
  listedPrefix: (r: ReplicaId, no?: number) => `${V}${SEP}r${SEP}${r}${SEP}listed${SEP}${no === undefined ? '' : seqKey(no) + SEP}`,
  logHead: (r: ReplicaId) => `${V}${SEP}r${SEP}${r}${SEP}head`,
  log: (r: ReplicaId, seq: number) => `${V}${SEP}r${SEP}${r}${SEP}log${SEP}${seqKey(seq)}`,
  logPrefix: (r: ReplicaId) => `${V}${SEP}r${SEP}${r}${SEP}log${SEP}`,
  snapshot: (r: ReplicaId, n: NativeId) => `${V}${SEP}r${SEP}${r}${SEP}snap${SEP}${n}`,
  snapshotPrefix: (r: ReplicaId) => `${V}${SEP}r${SEP}${r}${SEP}snap${SEP}`,
  link: (c: ConcordId) => `${V}${SEP}link${SEP}${c}`,
  linkPrefix: () => `${V}${SEP}link${SEP}`,
  base: (p: PairId, c: ConcordId) => `${V}${SEP}p${SEP}${p}${SEP}base${SEP}${c}`,
  basePrefix: (p: PairId) => `${V}${SEP}p${SEP}${p}${SEP}base${SEP}`,
  watermark: (p: PairId, r: ReplicaId) => `${V}${SEP}p${SEP}${p}${SEP}mark${SEP}${r}`,
  outbox: (p: PairId, r: ReplicaId, c: ConcordId) => `${V}${SEP}p${SEP}${p}${SEP}out${SEP}${r}${SEP}${c}`,
  outboxPrefix: (p: PairId, r: ReplicaId) => `${V}${SEP}p${SEP}${p}${SEP}out${SEP}${r}${SEP}`,
  quarantine: (p: PairId, id: string) => `${V}${SEP}p${SEP}${p}${SEP}quar${SEP}${id}`,
  quarantinePrefix: (p: PairId) => `${V}${SEP}p${SEP}${p}${SEP}quar${SEP}`,
  tombstone: (p: PairId, c: ConcordId) => `${V}${SEP}p${SEP}${p}${SEP}tomb${SEP}${c}`,
  tombstonePrefix: (p: PairId) => `${V}${SEP}p${SEP}${p}${SEP}tomb${SEP}`,
  conflict: (p: PairId, c: ConcordId) => `${V}${SEP}p${SEP}${p}${SEP}conflict${SEP}${c}`,
  conflictPrefix: (p: PairId) => `${V}${SEP}p${SEP}${p}${SEP}conflict${SEP}`,
  explain: (p: PairId, c: ConcordId) => `${V}${SEP}p${SEP}${p}${SEP}why${SEP}${c}`,
  pairPrefix: (p: PairId) => `${V}${SEP}p${SEP}${p}${SEP}`,
}

/** Upper bound for a prefix range scan. */
export function prefixEnd(prefix: string): string {
  return prefix + '\uffff'
}
