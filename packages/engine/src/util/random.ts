/** A seeded PRNG: each call draws the next number in [0, 1). */
export interface SeededRandom {
  (): number
  /** An independent generator that continues from this one's current state (the same draws from here on). */
  fork(): SeededRandom
  /** The current state: `seededRandom(state())` continues with the same draws (to carry a generator across processes). */
  state(): number
}

/** Small seeded PRNG (mulberry32) so fault injection and workloads replay exactly from a seed. */
export function seededRandom(seed: number): SeededRandom {
  let a = seed >>> 0
  const next = (() => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }) as SeededRandom
  next.fork = () => seededRandom(a)
  next.state = () => a
  return next
}
