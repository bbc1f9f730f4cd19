/** A binary min-heap of timed entries; ties pop in insertion order (deterministic). */
export class TimedHeap<T> {
  private times: number[] = []
  private seqs: number[] = []
  private items: T[] = []
  private seq = 0

  get size(): number {
    return this.items.length
  }

  peekTime(): number {
    return this.items.length > 0 ? this.times[0]! : Infinity
  }

  /** An independent copy (the items themselves are shared). */
  clone(): TimedHeap<T> {
    const copy = new TimedHeap<T>()
    copy.times = this.times.slice()
    copy.seqs = this.seqs.slice()
    copy.items = this.items.slice()
    copy.seq = this.seq
    return copy
  }

  push(time: number, item: T): void {
    this.times.push(time)
    this.seqs.push(this.seq++)
    this.items.push(item)
    this.up(this.items.length - 1)
  }

  pop(): T | undefined {
    const n = this.items.length
    if (n === 0) return undefined
    const top = this.items[0]!
    this.swap(0, n - 1)
    this.times.pop()
    this.seqs.pop()
    this.items.pop()
    this.down(0)
    return top
  }

  private less(a: number, b: number): boolean {
    return this.times[a]! < this.times[b]! || (this.times[a] === this.times[b] && this.seqs[a]! < this.seqs[b]!)
  }

  private swap(a: number, b: number): void {
    const t = this.times[a]!
    this.times[a] = this.times[b]!
    this.times[b] = t
    const s = this.seqs[a]!
    this.seqs[a] = this.seqs[b]!
    this.seqs[b] = s
    const x = this.items[a]!
    this.items[a] = this.items[b]!
    this.items[b] = x
  }

  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.less(i, p)) return
      this.swap(i, p)
      i = p
    }
  }

  private down(i: number): void {
    const n = this.items.length
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < n && this.less(l, m)) m = l
      if (r < n && this.less(r, m)) m = r
      if (m === i) return
      this.swap(i, m)
      i = m
    }
  }
}
