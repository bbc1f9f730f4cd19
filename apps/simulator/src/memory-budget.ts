/**
 * How a real-engine scenario fits in memory, planned before it starts: a run that does not fit ran for
 * 20–26 minutes at 7,000–10,000 mailboxes before V8 gave up at its heap limit.
 */
import { totalmem } from 'node:os'
import { getHeapStatistics } from 'node:v8'
import { SimulatorError } from './errors.js'
import { simulatorHeapLimitMb } from './process-flags.js'

const MIB = 2 ** 20

/**
 * Peak live heap of one real-engine process per simulated mailbox-day (warm-up included), with a margin: the
 * remotes, the reference model, the store's read cache and log tails, the workload, and the start's blocks —
 * in the second half of a `--jobs 2` run each process holds both blocks of the start and its run's fork, so
 * the figure does not fall with more processes. Measured (session 21, five policies, `--jobs 2`, 9 GB heaps):
 * 7,000 mailboxes × 2 days ran out of heap after 20 minutes with 8,126 MB live (≥ 0.58 MB per mailbox-day),
 * 10,000 × 2 after 26 minutes with 8,957 MB live; 1,000 × 2 in one process held ≈ 1 GB.
 */
export const REAL_ENGINE_BYTES_PER_MAILBOX_DAY = 0.75 * MIB

/** The peak live heap a real-engine process needs for a scenario (see {@link REAL_ENGINE_BYTES_PER_MAILBOX_DAY}). */
const heapDemandBytes = (demand: Pick<MemoryDemand, 'mailboxes' | 'days'>): number => demand.mailboxes * demand.days * REAL_ENGINE_BYTES_PER_MAILBOX_DAY

/** A store's read cache per mailbox when the heap has room: every record it writes stays (≈ 1,000 keys per mailbox over two days). */
const CACHE_ENTRIES_ROOMY = 4_000
/** … and when it has not: the records of the day's changes and their echoes, about a seventh of them. */
const CACHE_ENTRIES_TIGHT = 150
/** The share of a process's heap a scenario's demand may take before the caches shrink. */
const CACHE_ROOM_SHARE = 0.4

/**
 * Read-cache entries per mailbox of a real-engine run's stores. The cache spares reads from LevelDB, but on a heap
 * that is large and far from empty it costs more in collection than it saves: each major collection marks every
 * cached record. Measured, five policies, `--jobs 2`, 9 GB heaps (the reports byte-identical either way): at 3,000
 * mailboxes 150 entries per mailbox ran 13 % faster (554 s against 639 s) and peaked at 4.9 GB of RSS per process
 * instead of 7.1; at 1,000 mailboxes, a smaller heap, a cache that small cost 17 % (125 s against 106 s). So the cache
 * is cut to {@link CACHE_ENTRIES_TIGHT} only when the scenario's demand ({@link REAL_ENGINE_BYTES_PER_MAILBOX_DAY}) is
 * over {@link CACHE_ROOM_SHARE} of the heap limit: from ≈ 2,400 mailboxes × 2 days on this machine (9 GB heaps).
 */
export function storeCacheEntriesPerMailbox(demand: Pick<MemoryDemand, 'mailboxes' | 'days'>, heapLimitBytes = getHeapStatistics().heap_size_limit): number {
  return heapDemandBytes(demand) > CACHE_ROOM_SHARE * heapLimitBytes ? CACHE_ENTRIES_TIGHT : CACHE_ENTRIES_ROOMY
}

/** What a real-engine scenario asks of the machine. */
export interface MemoryDemand {
  mailboxes: number
  /** Simulated days, warm-up included. */
  days: number
  /** Processes asked to run policies at once (`--jobs`). */
  processes: number
}

/** How a real-engine scenario runs on a machine. */
export interface RunPlan {
  /** Processes running policies at once: the ones asked for, or fewer when they do not fit. */
  processes: number
  /**
   * Each one's share of three quarters of the machine, in MiB ({@link simulatorHeapLimitMb}): the heap limit of a
   * process that runs alone; policy children keep `POLICY_PROCESS_FLAGS`' limit, the two-process share, never less.
   */
  heapLimitMb: number
  /** The peak live heap each process needs (see {@link REAL_ENGINE_BYTES_PER_MAILBOX_DAY}). */
  heapDemandBytes: number
  /** Why fewer processes than asked for, for the user; absent when the plan is the one asked for. */
  note?: string | undefined
}

/** The share of a heap limit a scenario's demand may take (the rest: garbage between collections). */
const HEAP_SHARE = 0.9
/** … and of the machine's memory, for all processes together (the rest: LevelDB, code, the system). */
const MACHINE_SHARE = 0.8

const gb = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GB`

/**
 * The processes a real-engine scenario runs in. As many as asked for when each one's demand fits in its share of
 * the machine's memory; otherwise fewer, each with a larger share, down to one process with three quarters of the
 * machine: slower, the same report (a run's result does not depend on the process it runs in). Heap limits are
 * fixed when a process starts, so a plan whose limit is over this process's own runs in a process started again
 * under it (the CLI does so). Throws a `Usage` error naming the figures when not even one process fits.
 */
export function planRealEngineRun(demand: MemoryDemand, machineBytes = totalmem()): RunPlan {
  const perProcess = heapDemandBytes(demand)
  const scenario = `${demand.mailboxes} mailboxes × ${demand.days} days (warm-up included) with the real engine need ≈ ${gb(perProcess)} of heap per process (≈ ${REAL_ENGINE_BYTES_PER_MAILBOX_DAY / MIB} MB per mailbox-day)`
  for (let processes = Math.max(1, demand.processes); processes >= 1; processes--) {
    const heapLimitMb = simulatorHeapLimitMb(machineBytes, processes)
    if (perProcess > HEAP_SHARE * heapLimitMb * MIB || perProcess * processes > MACHINE_SHARE * machineBytes) continue
    if (processes === demand.processes) return { processes, heapLimitMb, heapDemandBytes: perProcess }
    const how = processes === 1 ? `the policies run one at a time, in one process with a ${gb(heapLimitMb * MIB)} heap` : `${processes} processes run them, with ${gb(heapLimitMb * MIB)} of heap each`
    return { processes, heapLimitMb, heapDemandBytes: perProcess, note: `${scenario}: ${demand.processes} processes (--jobs ${demand.processes}) do not fit in the machine's ${gb(machineBytes)}, so ${how} (slower; the same report)` }
  }
  throw new SimulatorError(
    'Usage',
    `${scenario}, over the ${gb(simulatorHeapLimitMb(machineBytes, 1) * MIB)} a process gets alone (three quarters of the machine's ${gb(machineBytes)}): ` +
      `use fewer mailboxes or days, --engine stub (the scheduler kernel alone, at any scale), or a machine with more memory`,
  )
}

/** Whether a plan's processes need a larger heap than `heapLimitBytes` (by default this process's): then it runs in a process started under {@link RunPlan.heapLimitMb}. */
export function needsLargerHeap(plan: RunPlan, heapLimitBytes = getHeapStatistics().heap_size_limit): boolean {
  return plan.heapDemandBytes > HEAP_SHARE * heapLimitBytes
}
