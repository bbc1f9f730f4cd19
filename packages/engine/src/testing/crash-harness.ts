import type { ReplicaStore, ReplicaStoreOptions, StoreDatabase } from '../store/replica-store.js'
import { ReplicaStore as Store } from '../store/replica-store.js'
import type { MemoryRemote } from './memory-replica.js'
import { type TwoReplicaWorld, type WorldOptions, createTwoReplicaWorld, syncUntilQuiet } from './world.js'

/** Thrown by the storage hook to stop the engine between two writes, as a power cut would. */
export class SimulatedCrash extends Error {
  override name = 'SimulatedCrash'
}

/** A scripted scenario: people's edits on the remotes for each step; the engine syncs after each. */
export interface CrashScenario {
  steps: number
  /** Apply the edits of `step` to the remotes. Runs exactly once per step, whatever the engine does. */
  edit(world: TwoReplicaWorld, step: number): void
}

export interface CrashRunResult {
  world: TwoReplicaWorld
  /** Storage writes the run made (crash-free runs only). */
  writes: number
  crashed: boolean
}

/**
 * Runs `scenario`; when `crashAtWrite` is set, the storage layer refuses that write (and the
 * process "dies"): the engine is rebuilt on the same database — new store object, no in-memory
 * state carried over — and the interrupted step's sync is run again. The remotes keep their state.
 */
export async function runWithCrash(
  scenario: CrashScenario,
  openDb: () => Promise<StoreDatabase>,
  options: {
    crashAtWrite?: number | undefined
    world?: Omit<WorldOptions, 'store' | 'remotes'> | undefined
    /** Store options (e.g. `groupCommit`); a crash then hits the batch that would have been written. */
    store?: Omit<ReplicaStoreOptions, 'beforeWrite'> | undefined
  } = {},
): Promise<CrashRunResult> {
  let writes = 0
  let crashed = false
  let db = await openDb()
  const beforeWrite = () => {
    writes++
    if (options.crashAtWrite !== undefined && writes === options.crashAtWrite) {
      crashed = true
      throw new SimulatedCrash(`crash before write #${writes}`)
    }
  }
  let store: ReplicaStore
  for (;;) {
    try {
      store = await Store.open(db, { ...options.store, beforeWrite })
      break
    } catch (error) {
      if (!(error instanceof SimulatedCrash)) throw error // a crash while initialising a new store
    }
  }
  let world = createTwoReplicaWorld({ ...options.world, store })
  const remotes: { crm: MemoryRemote; mailbox: MemoryRemote } = { crm: world.crm, mailbox: world.mailbox }

  const restart = async () => {
    // Close and reopen the database: only what was durably written survives.
    await db.close()
    db = await openDb()
    store = await Store.open(db, { ...options.store, beforeWrite }) // an existing store needs no write to open
    world = createTwoReplicaWorld({ ...options.world, store, remotes })
  }

  for (let step = 0; step <= scenario.steps; step++) {
    if (step < scenario.steps) scenario.edit(world, step)
    for (;;) {
      try {
        await syncUntilQuiet(world)
        break
      } catch (error) {
        if (!(error instanceof SimulatedCrash)) throw error
        await restart()
      }
    }
  }
  return { world, writes, crashed }
}
