// The scheduler's copy of mulberry32 (the engine's `seededRandom` is the same generator): importing it from
// the scheduler keeps the engine out of a stub worker's start-up.
import { mulberry32 as schedulerMulberry32 } from '@concord/scheduler'

/** mulberry32, the seeded PRNG of the engine and the scheduler: every draw replays exactly from a seed. */
export const mulberry32: (seed: number) => () => number = schedulerMulberry32

/** Mixes two integers into a 32-bit seed (for independent per-mailbox streams). */
export function mixSeed(a: number, b: number): number {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ Math.imul((b + 0x7f4a7c15) >>> 0, 0x85ebca6b)) >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x7feb352d) >>> 0
  h ^= h >>> 15
  return h >>> 0
}

/** A 32-bit FNV-1a hash of a string (a seed from an id). */
export function hashString(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** Standard normal draw (Box–Muller). */
export function normal(random: () => number): number {
  const u = 1 - random()
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random())
}

/** Exponential draw with the given mean. */
export function exponential(random: () => number, mean: number): number {
  return -Math.log(1 - random()) * mean
}

/** Poisson draw (Knuth for small means, normal approximation above 50). */
export function poisson(random: () => number, mean: number): number {
  if (mean <= 0) return 0
  if (mean > 50) return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal(random)))
  const l = Math.exp(-mean)
  let k = 0
  let p = 1
  do {
    k++
    p *= random()
  } while (p > l)
  return k - 1
}
