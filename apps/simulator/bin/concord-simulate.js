#!/usr/bin/env node
import { register } from 'tsx/esm/api'

register()
const [{ main }, { exitOnSignals }] = await Promise.all([import('../src/cli.ts'), import('../src/store-dirs.ts')])
exitOnSignals()
process.exitCode = await main(process.argv.slice(2))
