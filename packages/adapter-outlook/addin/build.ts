/**
 * Builds the App for Outlook (the task pane) into static files with esbuild: `taskpane.html`,
 * `taskpane.js` (one browser bundle), `taskpane.css`, `icon-80.png`, and `manifest.xml` with the
 * server's origin filled in. In memory by default (the sync server serves it); `outDir` also writes it.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { deflateSync } from 'node:zlib'
import { build } from 'esbuild'
import { z } from 'zod'
import { OutlookProtocolError } from '../src/errors.js'
import { checkManifest } from './manifest-check.js'

export { type ManifestProblem, assertValidManifest, checkManifest } from './manifest-check.js'

const HERE = fileURLToPath(new URL('.', import.meta.url))

export interface AddinFile {
  contentType: string
  body: Buffer
}
/** The built pane: file name → content (the manifest is templated per origin by `manifestXml`). */
export interface AddinBuild {
  files: Map<string, AddinFile>
  /** The manifest for a server origin (`https://host[:port]`). */
  manifestXml(origin: string): string
}

export interface BuildAddinOptions {
  /** Also write the files here (the manifest with `origin`, default `https://localhost:8787`). */
  outDir?: string | undefined
  origin?: string | undefined
  /** Minify the bundle (default true). */
  minify?: boolean | undefined
}

const OriginSchema = z.string().regex(/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$|^https?:\/\/\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/, 'expected an origin such as https://crm-sync.example.com[:port]')

/** Fills the manifest template's `{{origin}}`; a bad origin is `bad_request` naming it. */
export function fillManifest(template: string, origin: string): string {
  const parsed = OriginSchema.safeParse(origin)
  if (!parsed.success) throw new OutlookProtocolError('bad_request', `origin: ${JSON.stringify(origin).slice(0, 200)}: ${parsed.error.issues[0]!.message}`)
  return template.replaceAll('{{origin}}', parsed.data)
}

export async function buildAddin(options: BuildAddinOptions = {}): Promise<AddinBuild> {
  const result = await build({
    entryPoints: [join(HERE, 'src/taskpane.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: options.minify ?? true,
    sourcemap: false,
    logLevel: 'silent',
    outfile: 'taskpane.js',
    plugins: [
      {
        // The pane needs only the engine's schemas; its CRDT merge (Automerge, WebAssembly) is never
        // called in the pane, so it is replaced by an empty module instead of shipping the .wasm.
        name: 'no-automerge',
        setup(b) {
          b.onResolve({ filter: /^@automerge\/automerge/ }, (args) => ({ path: args.path, namespace: 'concord-stub' }))
          b.onLoad({ filter: /.*/, namespace: 'concord-stub' }, () => ({ contents: 'module.exports = {}', loader: 'js' }))
        },
      },
    ],
  })
  const js = result.outputFiles.find((f) => f.path.endsWith('taskpane.js'))
  if (!js) throw new OutlookProtocolError('internal', 'esbuild produced no taskpane.js')
  const template = await readFile(join(HERE, 'manifest.xml'), 'utf8')
  // A broken manifest never ships: it is checked (offline, see manifest-check.ts) at every build.
  const problems = checkManifest(fillManifest(template, 'https://localhost:8787'))
  if (problems.length > 0) throw new OutlookProtocolError('internal', `addin/manifest.xml is invalid: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`.slice(0, 1900))
  const files = new Map<string, AddinFile>([
    ['taskpane.html', { contentType: 'text/html; charset=utf-8', body: await readFile(join(HERE, 'src/taskpane.html')) }],
    ['taskpane.css', { contentType: 'text/css; charset=utf-8', body: await readFile(join(HERE, 'src/taskpane.css')) }],
    ['taskpane.js', { contentType: 'text/javascript; charset=utf-8', body: Buffer.from(js.contents) }],
    ['icon-80.png', { contentType: 'image/png', body: solidPng(80, [11, 92, 173]) }],
  ])
  const out: AddinBuild = { files, manifestXml: (origin) => fillManifest(template, origin) }
  if (options.outDir !== undefined) {
    await mkdir(options.outDir, { recursive: true })
    for (const [name, file] of files) await writeFile(join(options.outDir, name), file.body)
    await writeFile(join(options.outDir, 'manifest.xml'), out.manifestXml(options.origin ?? 'https://localhost:8787'))
  }
  return out
}

// A square PNG of one colour (the add-in's icon), without an image library.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
function crc32(data: Buffer): number {
  let c = 0xffffffff
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}
function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([len, body, crc])
}
function solidPng(size: number, [r, g, b]: [number, number, number]): Buffer {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(size, 0)
  header.writeUInt32BE(size, 4)
  header.set([8, 2, 0, 0, 0], 8) // 8-bit RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: size }, () => [r, g, b]).flat())])
  const pixels = Buffer.concat(Array.from({ length: size }, () => row))
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', deflateSync(pixels)), chunk('IEND', Buffer.alloc(0))])
}
