import { asConcordId, asOpId, type Cursor } from '@concord/engine'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { rawMail, startMailEnv, type MailEnv } from './test/env.js'
// --- README snippet starts (imports as in the README) ---
import { FileSendLedger, MailServerAdapter } from './index.js'
// --- README snippet ends ---
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

let env: MailEnv
let dir: string
beforeAll(async () => {
  env = await startMailEnv()
  dir = await mkdtemp(join(tmpdir(), 'concord-mailserver-readme-'))
})
afterAll(async () => {
  await env?.close()
  await rm(dir, { recursive: true, force: true })
})

test('README example: pull a mailbox over IMAP and send a CRM e-mail over SMTP', async () => {
  const box = await env.mailbox()
  const c = await env.client(box)
  await c.append('INBOX', rawMail({ messageId: '<hello@fabrikam.test>', subject: 'Hello' }))
  const imapPort = env.dovecot.imapPort
  const smtpPort = env.sink.port
  const { user, password } = box
  const ledgerPath = join(dir, 'send-ledger.json')

  // --- README snippet ---
  const adapter = new MailServerAdapter(
    {
      replicaId: `imap:${user}`,
      incoming: { protocol: 'imap', host: '127.0.0.1', port: imapPort, user, password, folders: ['INBOX'], sentFolder: 'Sent' },
      outgoing: { host: '127.0.0.1', port: smtpPort },
    },
    { ledger: new FileSendLedger(ledgerPath) },
  )
  let cursor: Cursor | null = null
  const received = []
  for (;;) {
    const page = await adapter.pull(cursor, { limit: 100 })
    received.push(...page.changes)
    cursor = page.nextCursor
    if (!page.hasMore) break
  }
  const sent = await adapter.push([
    {
      opId: asOpId('op-1'),
      type: 'create',
      concordId: asConcordId('email-42'),
      kind: 'email',
      fields: { subject: 'Re: Hello', body: 'Hi!', from: { address: 'alice@contoso.test' }, to: [{ address: 'carol@fabrikam.test' }], inReplyTo: '<hello@fabrikam.test>' },
    },
  ])
  await adapter.close()
  // --- end of README snippet ---

  expect(received.map((ch) => ch.nativeId)).toEqual(['mid:<hello@fabrikam.test>'])
  expect(sent.rejected).toEqual([])
  expect(sent.applied[0]!.nativeId).toMatch(/^mid:<concord\.[0-9a-f]+@contoso\.test>$/)
  expect(env.sink.messages.some((m) => `mid:${m.messageId}` === sent.applied[0]!.nativeId)).toBe(true)
})
