/**
 * Runs asynchronous work one piece after the other per key: a piece starts once the pieces queued before
 * it under the same key have settled (whatever their outcome). Keys that go idle are dropped.
 */
export class KeyedQueue<K> {
  private readonly tails = new Map<K, Promise<void>>()

  run<T>(key: K, work: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key)
    const result = before ? before.then(work) : work()
    const done = result.then(
      () => undefined,
      () => undefined,
    )
    this.tails.set(key, done)
    void done.then(() => {
      if (this.tails.get(key) === done) this.tails.delete(key)
    })
    return result
  }
}
