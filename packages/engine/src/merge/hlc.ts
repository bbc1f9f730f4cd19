import { ValidationError } from '../errors.js'

/**
 * A hybrid logical clock timestamp (Kulkarni et al.): physical milliseconds, a logical counter that
 * orders events within one millisecond or under clock skew, and the node that produced it.
 * Encoded as a fixed-width string, so encoded timestamps sort like the clocks they stand for.
 */
export interface Hlc {
  wall: number
  logical: number
  node: string
}

const WALL_WIDTH = 15
const LOGICAL_WIDTH = 6
const MAX_LOGICAL = 10 ** LOGICAL_WIDTH - 1
const ENCODED = /^(\d{15})-(\d{6})-(.*)$/s

export function compareHlc(a: Hlc, b: Hlc): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0
}

export function encodeHlc(t: Hlc): string {
  return `${String(t.wall).padStart(WALL_WIDTH, '0')}-${String(t.logical).padStart(LOGICAL_WIDTH, '0')}-${t.node}`
}

/** Decodes an encoded timestamp; a malformed one is a `ValidationError` naming the value. */
export function decodeHlc(encoded: string): Hlc {
  const match = ENCODED.exec(encoded)
  if (!match) throw new ValidationError('HLC timestamp', [{ path: '', message: `expected <15-digit wall>-<6-digit logical>-<node>, got ${JSON.stringify(encoded)}` }])
  return { wall: Number(match[1]), logical: Number(match[2]), node: match[3]! }
}

/**
 * The clock of one node. `now()` stamps a local event; `receive(remote)` merges a remote timestamp so
 * that everything stamped afterwards orders after it. Monotonic even if the wall clock goes back.
 */
export class HybridLogicalClock {
  private last: Hlc

  constructor(
    readonly node: string,
    private readonly wallClock: () => number = Date.now,
  ) {
    this.last = { wall: 0, logical: 0, node }
  }

  now(): Hlc {
    const physical = this.wallClock()
    if (physical > this.last.wall) this.last = { wall: physical, logical: 0, node: this.node }
    else this.last = this.bump(this.last.wall, this.last.logical + 1)
    return this.last
  }

  receive(remote: Hlc): Hlc {
    const physical = this.wallClock()
    const wall = Math.max(physical, this.last.wall, remote.wall)
    let logical: number
    if (wall === this.last.wall && wall === remote.wall) logical = Math.max(this.last.logical, remote.logical) + 1
    else if (wall === this.last.wall) logical = this.last.logical + 1
    else if (wall === remote.wall) logical = remote.logical + 1
    else logical = 0
    this.last = this.bump(wall, logical)
    return this.last
  }

  private bump(wall: number, logical: number): Hlc {
    // Counter overflow moves into the next millisecond rather than wrapping.
    return logical > MAX_LOGICAL ? { wall: wall + 1, logical: 0, node: this.node } : { wall, logical, node: this.node }
  }
}
