// Types of the `bloomfilter` package (it ships none): the part Concord uses.
declare module 'bloomfilter' {
  export class BloomFilter {
    /** `m` bits (rounded up to whole 32-bit buckets) or the buckets of a filter to load; `k` hash functions. */
    constructor(m: number | ArrayLike<number>, k: number)
    readonly m: number
    readonly k: number
    readonly buckets: Uint32Array
    add(value: string): void
    test(value: string): boolean
    /** A filter sized for `n` values at a false-positive rate of `error`. */
    static withTargetError(n: number, error: number): BloomFilter
  }
}
