#!/usr/bin/env node
import { fileURLToPath } from 'node:url'
import { register } from 'tsx/esm/api'

register()
const { missingProcessFlags, relaunchWithFlags } = await import('../src/process-flags.ts')
const missing = missingProcessFlags()
if (missing.length === 0) {
  const [{ main }, { exitOnSignals }] = await Promise.all([import('../src/cli.ts'), import('../src/store-dirs.ts')])
  exitOnSignals()
  process.exitCode = await main(process.argv.slice(2))
} else {
  // V8 flags (the heap limit above all) only take effect at start: run again under them.
  process.exitCode = await relaunchWithFlags(fileURLToPath(import.meta.url), process.argv.slice(2), missing)
}
