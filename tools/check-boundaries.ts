import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { checkBoundaries } from './src/boundaries.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const violations = checkBoundaries(root)
if (violations.length > 0) {
  for (const v of violations) console.error(`${v.file}:${v.line}: ${v.message}`)
  console.error(`\nDependency rule: ${violations.length} violation(s). See DESIGN.md "Layout and the dependency rule".`)
  process.exit(1)
}
console.log('Dependency rule: OK')
