/**
 * Serves the App for Outlook (`@concord/adapter-outlook/addin`) on the admin API's HTTP server:
 * `GET /addin/<file>` (the task pane: html, js, css, icon) and `GET /addin/manifest.xml` with this
 * server's origin filled in. No admin token: the pane authenticates per user over `/client`.
 * The pane is built (esbuild, in memory) at the first request and kept.
 */
import { type AddinBuild, buildAddin } from '@concord/adapter-outlook/addin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ServerError } from '../errors.js'

/** Path prefix of the add-in (the admin API lets it through without the admin token). */
export const ADDIN_PREFIX = '/addin/'

export interface AddinRouteOptions {
  /** Builds the pane (default `buildAddin()`); called once, again only after a failed build. */
  build?: (() => Promise<AddinBuild>) | undefined
}

const FileParams = z.strictObject({ file: z.string().regex(/^[a-z0-9-]+\.[a-z]+$/, 'expected a file name such as taskpane.html') })
const HostHeader = z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/, 'expected host[:port]')

/** The origin the manifest points Outlook at: HTTPS (Office requires it; TLS ends at a proxy) unless forwarded as http. */
function originOf(req: FastifyRequest): string {
  const forwardedHost = req.headers['x-forwarded-host']
  const host = HostHeader.safeParse(typeof forwardedHost === 'string' ? forwardedHost : req.headers.host)
  if (!host.success) throw new ServerError('BadRequest', `headers.host: ${host.error.issues[0]!.message}`)
  const proto = req.headers['x-forwarded-proto'] === 'http' ? 'http' : 'https'
  return `${proto}://${host.data}`
}

export function mountAddin(app: FastifyInstance, options: AddinRouteOptions = {}): void {
  const build = options.build ?? (() => buildAddin())
  let built: Promise<AddinBuild> | undefined
  const current = (): Promise<AddinBuild> => {
    if (!built) {
      built = build()
      built.catch(() => (built = undefined)) // a failed build is retried at the next request
    }
    return built
  }
  app.get(`${ADDIN_PREFIX}:file`, async (req, reply) => {
    const parsed = FileParams.safeParse(req.params)
    if (!parsed.success) throw new ServerError('NotFound', `no add-in file ${JSON.stringify((req.params as { file?: unknown }).file)}`)
    const { file } = parsed.data
    const addin = await current()
    if (file === 'manifest.xml') return reply.header('Content-Type', 'application/xml; charset=utf-8').header('Cache-Control', 'no-cache').send(addin.manifestXml(originOf(req)))
    const found = addin.files.get(file)
    if (!found) throw new ServerError('NotFound', `no add-in file ${file}`)
    return reply.header('Content-Type', found.contentType).header('Cache-Control', 'no-cache').send(found.body)
  })
}
