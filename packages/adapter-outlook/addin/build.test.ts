import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { buildAddin, fillManifest } from './build.js'

test('buildAddin bundles the task pane into static files and templates the manifest with the origin', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'concord-addin-'))
  try {
    const built = await buildAddin({ outDir: dir, origin: 'https://crm-sync.contoso.test:8443' })
    expect([...built.files.keys()].sort()).toEqual(['icon-80.png', 'taskpane.css', 'taskpane.html', 'taskpane.js'])
    expect((await readdir(dir)).sort()).toEqual(['icon-80.png', 'manifest.xml', 'taskpane.css', 'taskpane.html', 'taskpane.js'])
    const js = built.files.get('taskpane.js')!.body.toString('utf8')
    // One browser bundle: no module loader, no Node built-ins, no WebAssembly.
    expect(js).not.toMatch(/require\("node:|\.wasm/)
    expect(js).toContain('App for Outlook')
    const manifest = await readFile(join(dir, 'manifest.xml'), 'utf8')
    expect(manifest).toContain('<SourceLocation DefaultValue="https://crm-sync.contoso.test:8443/addin/taskpane.html" />')
    expect(manifest).toContain('<Rule xsi:type="ItemIs" ItemType="Message" FormType="Read" />')
    expect(manifest).not.toContain('{{origin}}')
    expect(built.manifestXml('https://[::1]:9000')).toContain('https://[::1]:9000/addin/taskpane.html')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a bad origin is refused naming it (nothing is injected into the manifest)', () => {
  expect(() => fillManifest('{{origin}}', 'https://x.test/"><evil')).toThrow(/origin: .*expected an origin/)
  expect(() => fillManifest('{{origin}}', 'ftp://x.test')).toThrow(/origin/)
})
