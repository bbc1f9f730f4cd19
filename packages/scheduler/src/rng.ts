/**
 * A small deterministic PRNG (mulberry32) returning floats in [0, 1). Use it to inject the scheduler's
 * `random` option or to drive seeded evaluations; never `Math.random` in a reproducible run.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
