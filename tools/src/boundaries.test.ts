import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { checkBoundaries } from './boundaries.js'

let root: string
afterEach(() => rmSync(root, { recursive: true, force: true }))

function workspace(packages: Record<string, { tag: string; deps?: string[]; devDeps?: string[]; files: Record<string, string> }>) {
  root = mkdtempSync(join(tmpdir(), 'concord-boundaries-'))
  writeFileSync(join(root, 'package.json'), JSON.stringify({ workspaces: ['packages/*'] }))
  for (const [dir, spec] of Object.entries(packages)) {
    const base = join(root, 'packages', dir)
    mkdirSync(join(base, 'src'), { recursive: true })
    const deps = Object.fromEntries((spec.deps ?? []).map((d) => [d, '*']))
    const devDeps = Object.fromEntries((spec.devDeps ?? []).map((d) => [d, '*']))
    writeFileSync(join(base, 'package.json'), JSON.stringify({ name: `@concord/${dir}`, dependencies: deps, devDependencies: devDeps, nx: { tags: [spec.tag] } }))
    for (const [file, text] of Object.entries(spec.files)) {
      mkdirSync(dirname(join(base, file)), { recursive: true })
      writeFileSync(join(base, file), text)
    }
  }
  return root
}

describe('dependency rule', () => {
  test('a clean layout passes', () => {
    workspace({
      engine: { tag: 'scope:core', files: { 'src/index.ts': "import { z } from 'zod'\n" } },
      'emulator-graph': { tag: 'scope:emulator', files: { 'src/index.ts': 'export {}\n' } },
      'adapter-exchange': {
        tag: 'scope:adapter',
        deps: ['@concord/engine'],
        devDeps: ['@concord/emulator-graph'],
        files: { 'src/index.ts': "import { SyncError } from '@concord/engine'\n", 'src/a.int.test.ts': "import { start } from '@concord/emulator-graph'\n" },
      },
    })
    expect(checkBoundaries(root)).toEqual([])
  })

  test('an adapter importing another adapter or an emulator from src/ fails', () => {
    workspace({
      engine: { tag: 'scope:core', files: { 'src/index.ts': 'export {}\n' } },
      'emulator-graph': { tag: 'scope:emulator', files: { 'src/index.ts': 'export {}\n' } },
      'adapter-crm': { tag: 'scope:adapter', deps: ['@concord/engine'], files: { 'src/index.ts': 'export {}\n' } },
      'adapter-exchange': {
        tag: 'scope:adapter',
        deps: ['@concord/engine', '@concord/adapter-crm', '@concord/emulator-graph'],
        files: { 'src/index.ts': "import { x } from '@concord/adapter-crm'\nimport { y } from '@concord/emulator-graph'\n" },
      },
    })
    const messages = checkBoundaries(root).map((v) => v.message)
    expect(messages).toEqual(expect.arrayContaining([expect.stringMatching(/must not import another adapter/), expect.stringMatching(/only in tests/), expect.stringMatching(/runtime dependency/)]))
  })

  test('engine, scheduler and emulators import nothing internal; undeclared and escaping imports fail', () => {
    workspace({
      engine: { tag: 'scope:core', files: { 'src/index.ts': "import { s } from '@concord/scheduler'\nconst m = await import('@concord/emulator-graph')\n" } },
      scheduler: { tag: 'scope:core', files: { 'src/index.ts': "export * from '../../engine/src/index.js'\n" } },
      'emulator-graph': { tag: 'scope:emulator', files: { 'src/index.ts': 'export {}\n' } },
    })
    const messages = checkBoundaries(root).map((v) => v.message)
    expect(messages).toEqual(expect.arrayContaining([expect.stringMatching(/scope:core\) must not import internal packages, found @concord\/scheduler/), expect.stringMatching(/found @concord\/emulator-graph/), expect.stringMatching(/not listed/), expect.stringMatching(/leaves @concord\/scheduler/)]))
  })
})

test('the real repository obeys the rule', () => {
  root = mkdtempSync(join(tmpdir(), 'unused-')) // keeps afterEach happy
  const repo = join(dirname(new URL(import.meta.url).pathname), '..', '..')
  expect(checkBoundaries(repo)).toEqual([])
})
