/**
 * An indexed 4-ary min-heap over small integer handles (0..capacity-1) keyed by a float (virtual ms).
 * Supports insert, remove and re-key of any handle in O(log n); ties are broken by handle so the order is
 * deterministic (a total order: any heap shape pops the same sequence). Four children per node halve the
 * depth and keep each node's children in one or two cache lines; keys are stored in heap order next to the
 * handles, so sifting touches contiguous memory; storage is typed arrays that grow by doubling.
 */
export class IndexedMinHeap {
  private heap: Int32Array
  private hk: Float64Array
  private pos: Int32Array
  private n = 0

  constructor(initialCapacity = 64) {
    const c = Math.max(4, initialCapacity)
    this.heap = new Int32Array(c)
    this.hk = new Float64Array(c)
    this.pos = new Int32Array(c).fill(-1)
  }

  /** Number of handles in the heap. */
  get size(): number {
    return this.n
  }

  /** Whether `h` is currently in the heap. */
  has(h: number): boolean {
    return h < this.pos.length && (this.pos[h] as number) >= 0
  }

  /** The key of `h` (undefined when absent). */
  keyOf(h: number): number | undefined {
    return this.has(h) ? this.hk[this.pos[h] as number] : undefined
  }

  /** The handle with the smallest key, or -1 when empty. */
  peek(): number {
    return this.n === 0 ? -1 : (this.heap[0] as number)
  }

  /** The smallest key, or `Infinity` when empty. */
  peekKey(): number {
    return this.n === 0 ? Infinity : (this.hk[0] as number)
  }

  /** Insert `h` with `key`, or re-key it if present. */
  set(h: number, key: number): void {
    if (h >= this.pos.length) this.grow(h + 1)
    const p = this.pos[h] as number
    if (p < 0) {
      if (this.n >= this.heap.length) this.grow(this.n + 1)
      this.up(this.n++, h, key)
      return
    }
    const old = this.hk[p] as number
    if (key < old) this.up(p, h, key)
    else if (key > old) this.down(p, h, key)
  }

  /** Remove and return the smallest handle (-1 when empty). */
  pop(): number {
    if (this.n === 0) return -1
    const top = this.heap[0] as number
    this.removeAt(0)
    return top
  }

  /** Remove `h` if present. */
  delete(h: number): void {
    if (!this.has(h)) return
    this.removeAt(this.pos[h] as number)
  }

  private removeAt(i: number): void {
    const h = this.heap[i] as number
    this.n--
    this.pos[h] = -1
    if (i === this.n) return
    const last = this.heap[this.n] as number
    const lk = this.hk[this.n] as number
    // put `last` at i and restore order in whichever direction it violates
    if (i > 0) {
      const parent = (i - 1) >> 2
      const pk = this.hk[parent] as number
      if (lk < pk || (lk === pk && last < (this.heap[parent] as number))) {
        this.up(i, last, lk)
        return
      }
    }
    this.down(i, last, lk)
  }

  /** Sift handle `h` with key `k` up from hole `i`. */
  private up(i: number, h: number, k: number): void {
    const heap = this.heap
    const hk = this.hk
    const pos = this.pos
    while (i > 0) {
      const parent = (i - 1) >> 2
      const pk = hk[parent] as number
      const ph = heap[parent] as number
      if (pk < k || (pk === k && ph < h)) break
      heap[i] = ph
      hk[i] = pk
      pos[ph] = i
      i = parent
    }
    heap[i] = h
    hk[i] = k
    pos[h] = i
  }

  /** Sift handle `h` with key `k` down from hole `i`. */
  private down(i: number, h: number, k: number): void {
    const heap = this.heap
    const hk = this.hk
    const pos = this.pos
    const n = this.n
    for (;;) {
      const first = 4 * i + 1
      if (first >= n) break
      // the smallest of up to four children
      let c = first
      let ck = hk[first] as number
      let ch = heap[first] as number
      const last = Math.min(first + 4, n)
      for (let j = first + 1; j < last; j++) {
        const jk = hk[j] as number
        const jh = heap[j] as number
        if (jk < ck || (jk === ck && jh < ch)) {
          c = j
          ck = jk
          ch = jh
        }
      }
      if (k < ck || (k === ck && h < ch)) break
      heap[i] = ch
      hk[i] = ck
      pos[ch] = i
      i = c
    }
    heap[i] = h
    hk[i] = k
    pos[h] = i
  }

  private grow(cap: number): void {
    let c = Math.max(this.pos.length, this.heap.length)
    while (c < cap) c *= 2
    if (c > this.heap.length) {
      const heap = new Int32Array(c)
      heap.set(this.heap)
      const hk = new Float64Array(c)
      hk.set(this.hk)
      this.heap = heap
      this.hk = hk
    }
    if (c > this.pos.length) {
      const pos = new Int32Array(c).fill(-1)
      pos.set(this.pos)
      this.pos = pos
    }
  }
}
