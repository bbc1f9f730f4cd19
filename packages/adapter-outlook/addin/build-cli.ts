/** `npm run build:addin [outDir] [origin]`: writes the built App for Outlook (default `addin/dist`, git-ignored). */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildAddin } from './build.js'

const outDir = process.argv[2] ?? join(fileURLToPath(new URL('.', import.meta.url)), 'dist')
const built = await buildAddin({ outDir, origin: process.argv[3] })
console.log(`built ${built.files.size + 1} files into ${outDir}`)
