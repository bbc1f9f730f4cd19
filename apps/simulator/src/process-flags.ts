/**
 * The Node flags every simulator process runs with, and the CLI's relaunch under them (a shebang cannot
 * pass V8 flags, and the heap limit cannot change once the process runs).
 */
import { spawn } from 'node:child_process'
import { constants, totalmem } from 'node:os'

const MIB = 2 ** 20
/** V8's own old-generation limit on a 64-bit machine with 16 GiB or more (≈ a quarter of the memory below that). */
const V8_DEFAULT_HEAP_MB = 4096

/**
 * The old-generation heap limit of a simulator process, in MiB: three quarters of the machine's memory
 * shared by the busy processes (by default two: the CLI and one policy child, `--jobs 2`; one when a scenario
 * fits only alone, see `planRealEngineRun`), never below V8's own default of ≈ 4 GiB, which it keeps however
 * much memory the machine has: 10,000 mailboxes ran out of heap at that default with 20 GiB of the machine
 * free. What a real-engine run needs: see `memory-budget.ts`.
 */
export function simulatorHeapLimitMb(machineBytes = totalmem(), processes = 2): number {
  return Math.max(V8_DEFAULT_HEAP_MB, Math.floor((machineBytes * 3) / 4 / processes / MIB))
}

/**
 * Node flags of a simulator process (the CLI and its policy children). Two busy processes on two cores
 * leave V8's background compiler threads no core of their own: optimised code arrives late and the main
 * threads run unoptimised code meanwhile. Compiling on the main thread instead cost about 10 % less CPU in
 * the default scenario at 200 mailboxes (7 runs each, alternated). A 64 MiB young-generation semi-space
 * (16 MiB by default) lets the engine's short-lived objects die young instead of being promoted: a fifth
 * less garbage-collection time in a real-engine run. The heap limit: {@link simulatorHeapLimitMb}.
 */
export const POLICY_PROCESS_FLAGS: readonly string[] = ['--no-concurrent-recompilation', '--max-semi-space-size=64', `--max-old-space-size=${simulatorHeapLimitMb()}`]

/** A flag's name as V8 reads it: without its value, dashes for underscores (V8 takes --max_old_space_size as well). */
const flagName = (flag: string): string => flag.split('=')[0]!.replace(/_/g, '-')

/** The flags of {@link POLICY_PROCESS_FLAGS} this process was started without (one the user gave with another value counts as given: it wins). */
export function missingProcessFlags(execArgv: readonly string[] = process.execArgv): string[] {
  const given = new Set(execArgv.map(flagName))
  return POLICY_PROCESS_FLAGS.filter((flag) => !given.has(flagName(flag)))
}

/** `execArgv` with `flags` in place of the ones of the same names. */
export function replaceFlags(execArgv: readonly string[], flags: readonly string[]): string[] {
  const replaced = new Set(flags.map(flagName))
  return [...execArgv.filter((flag) => !replaced.has(flagName(flag))), ...flags]
}

/**
 * Runs `script` with `args` in a new Node process with this one's flags, `flags` added or in place of the
 * ones of the same names (stdio shared), and resolves with the exit code it should end with. Ctrl-C reaches both processes (one process group): this
 * one waits for the other to clean up; a SIGTERM sent to this one alone is passed on.
 */
export function relaunchWithFlags(script: string, args: readonly string[], flags: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, [...replaceFlags(process.execArgv, flags), script, ...args], { stdio: 'inherit' })
  const waitForChild = () => undefined
  const passOn = () => child.kill('SIGTERM')
  process.on('SIGINT', waitForChild)
  process.on('SIGTERM', passOn)
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code, signal) => {
      process.off('SIGINT', waitForChild)
      process.off('SIGTERM', passOn)
      resolve(code ?? (signal ? 128 + constants.signals[signal] : 1)) // (a shell's code for a death by signal)
    })
  })
}
