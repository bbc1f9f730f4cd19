import { runReplicaAdapterContract } from '@concord/engine/contract-suite'
import { afterAll, beforeAll } from 'vitest'
import { imapRemote } from './test/remote.js'
import { mailSampleFields, startMailEnv, type MailEnv } from './test/env.js'

let env: MailEnv
beforeAll(async () => {
  env = await startMailEnv()
})
afterAll(async () => {
  await env?.close()
})

for (const useCondstore of [true, false]) {
  runReplicaAdapterContract(`MailServerAdapter over IMAP + SMTP against Dovecot (${useCondstore ? 'CONDSTORE/QRESYNC' : 'plain scans'})`, async () => {
    const box = await env.mailbox()
    const client = await env.client(box)
    await client.mailboxCreate('Work')
    const remote = imapRemote(client, 'Work')
    return {
      adapter: env.adapter(env.imapOptions(box, { folders: ['Work'], useCondstore })),
      kinds: ['email'],
      sampleFields: (_kind, n) => mailSampleFields(n),
      remote: { create: remote.create, update: remote.update, remove: remote.remove, expireCursors: remote.resetUidValidity },
      teardown: async () => {
        await client.logout().catch(() => client.close())
      },
    }
  })
}
