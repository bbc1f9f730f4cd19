import { openMemoryStore } from '../store/open-memory.js'
import type { StoreDatabase } from '../store/replica-store.js'

/** Lets pending timers and promise chains run (a gated batch stays in flight meanwhile). */
export const ticks = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5))

/** A probe of whether `p` has settled yet. */
export function settled(p: Promise<unknown>): () => boolean {
  let done = false
  void p.then(
    () => (done = true),
    () => (done = true),
  )
  return () => done
}

/** What {@link interceptedDatabase} waits for before a database call goes through. */
export interface DatabaseHolds {
  /** Before a batch is written. */
  batchWrite?: (() => Promise<void>) | undefined
  /** Before a point read (`getMany`). */
  getMany?: (() => Promise<void>) | undefined
}

/** `db` with every call passed through, except batch writes and point reads, which first wait for `holds`. */
export function interceptedDatabase(db: StoreDatabase, holds: DatabaseHolds): StoreDatabase {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === 'getMany' && holds.getMany) {
        const hold = holds.getMany
        return async (keys: string[]) => (await hold(), target.getMany(keys))
      }
      if (prop === 'batch' && holds.batchWrite) {
        const hold = holds.batchWrite
        return () => {
          const inner = target.batch()
          return {
            put: (key: string, value: string) => inner.put(key, value),
            del: (key: string) => inner.del(key),
            close: () => inner.close(),
            write: async () => (await hold(), inner.write()),
          }
        }
      }
      const value = Reflect.get(target, prop, target) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

/**
 * A memory database whose batch writes wait for `release(i)`, in the order they were started: a batch "in
 * flight" stays so until the test lets it land. `openGates()` lets every batch, waiting or to come, land, until
 * `closeGates()` holds the next ones again.
 */
export async function gatedDatabase(): Promise<{ db: StoreDatabase; raw: StoreDatabase; gates: Array<() => void>; release: (index: number) => Promise<void>; openGates: () => void; closeGates: () => void }> {
  const { db } = await openMemoryStore()
  const gates: Array<() => void> = []
  let open = false
  const gated = interceptedDatabase(db, { batchWrite: () => (open ? Promise.resolve() : new Promise<void>((resolve) => gates.push(resolve))) })
  /** Lets the `index`-th batch started so far land (and waits for it). */
  const release = async (index: number) => {
    gates[index]!()
    await ticks()
  }
  const openGates = () => {
    open = true
    for (const gate of gates) gate()
  }
  const closeGates = () => {
    open = false
  }
  return { db: gated, raw: db, gates, release, openGates, closeGates }
}
