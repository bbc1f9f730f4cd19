// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- the package ships no types; a reference brings ours into every program that compiles this file (the apps compile the engine from source)
/// <reference path="./bloomfilter.d.ts" />
import { BloomFilter } from 'bloomfilter'

/** Chance that a key never added reads as "maybe", over all layers together (each takes half the last one's share). */
const FALSE_POSITIVES = 0.01
const MIN_FIRST_CAPACITY = 4096

interface Layer {
  filter: BloomFilter
  capacity: number
  count: number
}

/** {@link KnownKeys} as structured-cloneable data (another process resumes a store with it). */
export interface KnownKeysData {
  readonly layers: ReadonlyArray<{ readonly buckets: Uint32Array; readonly k: number; readonly capacity: number; readonly count: number }>
}

/**
 * The keys a store that created its own database wrote and may hold outside its read cache. A key never
 * added is answered "absent" without asking the database; one added, or a rare false positive (1 % in
 * all), is read from it. A scalable Bloom filter: each layer holds twice the last one's keys at half its
 * false-positive share, about 2–4 bytes a key — a `Set` of the keys cost ≈ 100 bytes each, and a store
 * with a small cache moves nearly every key it ever wrote here. Nothing is ever removed: a key deleted
 * since costs one read that finds nothing.
 */
export class KnownKeys {
  private constructor(private readonly layers: Layer[]) {}

  /** Empty, its first layer sized for `firstCapacity` keys (at least 4,096). */
  static empty(firstCapacity: number): KnownKeys {
    const capacity = Math.max(MIN_FIRST_CAPACITY, Math.ceil(firstCapacity))
    return new KnownKeys([{ filter: BloomFilter.withTargetError(capacity, FALSE_POSITIVES / 2), capacity, count: 0 }])
  }

  static fromData(data: KnownKeysData): KnownKeys {
    return new KnownKeys(data.layers.map((l) => ({ filter: new BloomFilter(l.buckets, l.k), capacity: l.capacity, count: l.count })))
  }

  add(key: string): void {
    let last = this.layers[this.layers.length - 1]!
    if (last.count >= last.capacity) {
      const capacity = last.capacity * 2
      last = { filter: BloomFilter.withTargetError(capacity, FALSE_POSITIVES / 2 ** (this.layers.length + 1)), capacity, count: 0 }
      this.layers.push(last)
    }
    last.filter.add(key)
    last.count++
  }

  /** False: never added. True: added, or (rarely) not. */
  mayHave(key: string): boolean {
    for (const layer of this.layers) if (layer.filter.test(key)) return true
    return false
  }

  /** An independent copy. */
  copy(): KnownKeys {
    return KnownKeys.fromData({ layers: this.layers.map((l) => ({ buckets: l.filter.buckets, k: l.filter.k, capacity: l.capacity, count: l.count })) }) // (the filter copies the buckets it loads)
  }

  toData(): KnownKeysData {
    return { layers: this.layers.map((l) => ({ buckets: l.filter.buckets.slice(), k: l.filter.k, capacity: l.capacity, count: l.count })) }
  }
}
