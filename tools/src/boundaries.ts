import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs'
import { join, relative, resolve, sep } from 'node:path'
import ts from 'typescript'

/** A workspace package as the boundary check sees it. */
export interface WorkspacePackage {
  name: string
  dir: string
  tags: string[]
  dependencies: Set<string>
  devDependencies: Set<string>
}

export interface Violation {
  file: string
  line: number
  message: string
}

const INTERNAL = '@concord/'

/** Every module specifier a file imports or re-exports (static and dynamic), via the TypeScript scanner. */
function importsOf(text: string): Array<{ specifier: string; line: number }> {
  const info = ts.preProcessFile(text, true, true)
  const source = ts.createSourceFile('file.ts', text, ts.ScriptTarget.Latest)
  return info.importedFiles.map((ref) => ({ specifier: ref.fileName, line: source.getLineAndCharacterOfPosition(ref.pos).line + 1 }))
}

export function loadWorkspace(root: string): WorkspacePackage[] {
  const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { workspaces: string[] }
  const dirs: string[] = []
  for (const pattern of rootPkg.workspaces) {
    if (pattern.endsWith('/*')) {
      const parent = join(root, pattern.slice(0, -2))
      if (existsSync(parent)) for (const d of readdirSync(parent)) if (existsSync(join(parent, d, 'package.json'))) dirs.push(join(parent, d))
    } else if (existsSync(join(root, pattern, 'package.json'))) dirs.push(join(root, pattern))
  }
  return dirs.map((dir) => {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; nx?: { tags?: string[] }; dependencies?: Record<string, string>; devDependencies?: Record<string, string> }
    return { name: pkg.name, dir, tags: pkg.nx?.tags ?? [], dependencies: new Set(Object.keys(pkg.dependencies ?? {})), devDependencies: new Set(Object.keys(pkg.devDependencies ?? {})) }
  })
}

function sourceFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const entry of readdirSync(d)) {
      if (entry === 'node_modules' || entry === 'dist' || entry.startsWith('.')) continue
      const path = join(d, entry)
      if (statSync(path).isDirectory()) walk(path)
      else if (/\.(ts|tsx|mts|js|mjs)$/.test(entry) && !entry.endsWith('.d.ts')) out.push(path)
    }
  }
  for (const sub of ['src', 'bin', 'bench', 'test']) if (existsSync(join(dir, sub))) walk(join(dir, sub))
  return out
}

/** Test code may use devDependencies (an adapter's tests start an emulator); shipped code may not. */
function isTestFile(file: string): boolean {
  return /\.(test|prop\.test|int\.test|bench)\.[mc]?[tj]s$/.test(file) || file.split(sep).includes('test') || file.split(sep).includes('bench')
}

function packageOf(specifier: string): string {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!
}

/**
 * The dependency rule of DESIGN.md:
 * - scope:core (engine, scheduler) and scope:emulator import nothing internal, tests included;
 * - scope:adapter imports only @concord/engine from shipped code (emulators only in tests, as devDependencies);
 * - every internal import is declared in the package's package.json;
 * - no relative import reaches into another package.
 */
export function checkBoundaries(root: string): Violation[] {
  const packages = loadWorkspace(root)
  const byName = new Map(packages.map((p) => [p.name, p]))
  const violations: Violation[] = []
  for (const pkg of packages) {
    const scope = pkg.tags.find((t) => t.startsWith('scope:'))
    if (!scope) violations.push({ file: relative(root, join(pkg.dir, 'package.json')), line: 1, message: `${pkg.name} has no Nx scope tag (scope:core|adapter|emulator|app|tools)` })
    for (const file of sourceFiles(pkg.dir)) {
      const test = isTestFile(file)
      for (const { specifier, line } of importsOf(readFileSync(file, 'utf8'))) {
        const where = { file: relative(root, file), line }
        if (specifier.startsWith('.')) {
          const target = resolve(file, '..', specifier)
          if (!target.startsWith(pkg.dir + sep)) violations.push({ ...where, message: `relative import '${specifier}' leaves ${pkg.name}; import the package by name` })
          continue
        }
        if (!specifier.startsWith(INTERNAL)) continue
        const dep = packageOf(specifier)
        if (dep === pkg.name) continue
        const target = byName.get(dep)
        if (!target) {
          violations.push({ ...where, message: `unknown internal package ${dep}` })
          continue
        }
        const targetScope = target.tags.find((t) => t.startsWith('scope:'))
        if (scope === 'scope:core' || scope === 'scope:emulator') violations.push({ ...where, message: `${pkg.name} (${scope}) must not import internal packages, found ${dep}` })
        else if (scope === 'scope:adapter') {
          if (targetScope === 'scope:adapter') violations.push({ ...where, message: `adapter ${pkg.name} must not import another adapter (${dep})` })
          else if (targetScope === 'scope:emulator' && !test) violations.push({ ...where, message: `adapter ${pkg.name} may use emulator ${dep} only in tests` })
          else if (targetScope === 'scope:app') violations.push({ ...where, message: `adapter ${pkg.name} must not import app ${dep}` })
        }
        const declared = test ? pkg.dependencies.has(dep) || pkg.devDependencies.has(dep) : pkg.dependencies.has(dep)
        if (!declared) violations.push({ ...where, message: `${dep} is imported but not listed in ${pkg.name}'s ${test ? 'dependencies or devDependencies' : 'dependencies'}` })
      }
    }
    if (scope === 'scope:adapter') {
      for (const dep of pkg.dependencies) {
        const target = byName.get(dep)
        const targetScope = target?.tags.find((t) => t.startsWith('scope:'))
        if (targetScope === 'scope:emulator') violations.push({ file: relative(root, join(pkg.dir, 'package.json')), line: 1, message: `adapter ${pkg.name} lists emulator ${dep} as a runtime dependency; make it a devDependency` })
      }
    }
  }
  return violations
}
