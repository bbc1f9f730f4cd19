/** `concord-graph-emulator`: starts the emulator and prints one JSON line {url, tokenUrl, tenant}. */
import { parseCliArgs } from './cli-options.js'
import { startGraphEmulator } from './server.js'

export async function main(argv: string[]): Promise<void> {
  const emulator = await startGraphEmulator(parseCliArgs(argv))
  process.stdout.write(`${JSON.stringify({ url: emulator.url, tokenUrl: emulator.tokenUrl, tenant: emulator.tenant })}\n`)
  const stop = (): void => {
    void emulator.close().then(() => process.exit(0))
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

main(process.argv).catch((err: unknown) => {
  const code = (err as { code?: unknown }).code
  if (code === 'commander.helpDisplayed' || code === 'commander.version') process.exit(0)
  process.stderr.write(`concord-graph-emulator: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})

