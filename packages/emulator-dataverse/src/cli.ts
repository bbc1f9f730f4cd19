import { parseCliArgs } from './cli-args.js'
import { startDataverseEmulator } from './server.js'

async function main(): Promise<void> {
  const emu = await startDataverseEmulator(parseCliArgs(process.argv.slice(2)))
  process.stdout.write(`${JSON.stringify({ url: emu.url, tokenUrl: emu.tokenUrl })}\n`)
  const stop = (): void => {
    void emu.close().then(() => process.exit(0))
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

main().catch((err: unknown) => {
  const code = (err as { code?: string }).code
  if (code === 'commander.helpDisplayed' || code === 'commander.version') process.exit(0)
  process.stderr.write(`concord-dataverse-emulator: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
