// Runs the same code as the "Embedding example" in tools/README.md.
import { ImapFlow } from 'imapflow'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { useDovecot, useRedis, type DovecotService, type RedisService } from '@concord/tools'

let redis: RedisService
let dovecot: DovecotService
beforeAll(async () => {
  redis = await useRedis() // REDIS_URL (set by `npm test`), else a container, else redis-server on a free port
  dovecot = await useDovecot() // IMAP_PORT/POP3_PORT/LMTP_PORT, else a container, else the local dovecot
})
afterAll(async () => {
  await dovecot?.stop() // no-op when the service came from the environment
  await redis?.stop()
})

test('README example: Redis answers PING, alice logs in over IMAP', async () => {
  const client = new Redis(redis.url)
  expect(await client.ping()).toBe('PONG')
  await client.quit()

  const imap = new ImapFlow({
    host: dovecot.host,
    port: dovecot.imapPort,
    secure: false,
    auth: { user: 'alice', pass: 'alicepw' },
    logger: false,
  })
  await imap.connect()
  expect(await imap.status('INBOX', { messages: true })).toMatchObject({ path: 'INBOX' })
  await imap.logout()
})
