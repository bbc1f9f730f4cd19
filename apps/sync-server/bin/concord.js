#!/usr/bin/env node
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../src/cli.ts')
// Exit explicitly: once a command is done (a server stopped), a socket or timer left behind by a
// client library must not keep the process alive.
process.exit(await main(process.argv.slice(2)))
