import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** This process's store directories live under one directory while any exists; it is removed when the process exits. */
let root: Promise<string> | undefined
let rootPath: string | undefined
let live = 0
let exitHook = false

/**
 * A new directory for a run's LevelDB store; delete it with {@link removeStoreDir}. Whatever a run cut
 * short leaves (an error, Ctrl-C in the CLI: see {@link exitOnSignals}) goes when the process exits.
 */
export async function newStoreDir(prefix: string): Promise<string> {
  live++
  if (root === undefined) {
    root = mkdtemp(join(tmpdir(), 'concord-sim-'))
    if (!exitHook) process.once('exit', () => rootPath !== undefined && rmSync(rootPath, { recursive: true, force: true }))
    exitHook = true
  }
  rootPath = await root
  return mkdtemp(join(rootPath, prefix))
}

/** Deletes a directory made by {@link newStoreDir} (and their common directory with the last one). */
export async function removeStoreDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
  if (--live > 0 || rootPath === undefined) return
  const last = rootPath
  root = rootPath = undefined
  await rm(last, { recursive: true, force: true })
}

/** The directory that holds this process's store directories, while there are any. */
export function storeDirsRoot(): string | undefined {
  return rootPath
}

/** Ctrl-C and SIGTERM end the process through `exit`, so its store directories are removed (a program's entry point calls this). */
export function exitOnSignals(): void {
  process.once('SIGINT', () => process.exit(130))
  process.once('SIGTERM', () => process.exit(143))
}
