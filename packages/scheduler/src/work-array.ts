/**
 * The k-th array of `pool`, length n: grown when too short, never shrunk (a view of its first n otherwise). Large
 * typed arrays are external memory; allocating them per plan made the GC re-mark the whole heap of a simulation
 * holding a large workload, so the planners reuse theirs.
 */
export function workArray<A extends Float64Array | Int32Array>(pool: A[], k: number, n: number, make: (length: number) => A): A {
  let a = pool[k]
  if (!a || a.length < n) pool[k] = a = make(Math.max(n, 64))
  return a.length === n ? a : (a.subarray(0, n) as A)
}

export const float64 = (length: number): Float64Array => new Float64Array(length)
export const int32 = (length: number): Int32Array => new Int32Array(length)
