/**
 * Messages per second pulled from a real Dovecot over IMAP (full listing of a 10,000-message
 * mailbox, MIME parsed to the engine's e-mail fields). Run:
 *
 *   npx tsx packages/adapter-mailserver/bench/mailserver-bench.ts [messages]
 */
import { pathToFileURL } from 'node:url'
import { pullAll } from '@concord/engine/testing'
import { bulkAppend, rawMail, startMailEnv } from '../src/test/env.js'

export interface MailserverBenchResult {
  /** Full IMAP listing throughput: messages fetched, MIME-parsed and mapped per second. */
  imapPullMessagesPerSec: number
  /** Size of the mailbox pulled. */
  imapPullMailboxMessages: number
}

/** Fills a mailbox (parallel APPEND over 4 connections) and times a full IMAP pull of it. */
export async function runMailserverBench(options: { messages?: number; pageSize?: number; print?: boolean } = {}): Promise<MailserverBenchResult> {
  const messages = options.messages ?? 10_000
  const pageSize = options.pageSize ?? 500
  const env = await startMailEnv()
  try {
    const box = await env.mailbox()
    await fillMailbox(env, box, messages)
    const adapter = env.adapter(env.imapOptions(box))
    const started = performance.now()
    const { changes } = await pullAll(adapter, null, pageSize)
    const seconds = (performance.now() - started) / 1000
    if (changes.length !== messages) throw new Error(`expected ${messages} changes, pulled ${changes.length}`)
    const result: MailserverBenchResult = { imapPullMessagesPerSec: Math.round(messages / seconds), imapPullMailboxMessages: messages }
    if (options.print === true) console.log(JSON.stringify(result))
    return result
  } finally {
    await env.close()
  }
}

/** Delivers `messages` test messages to INBOX (pipelined APPEND, chunks of 1,000). */
export async function fillMailbox(env: Awaited<ReturnType<typeof startMailEnv>>, box: { user: string; password: string }, messages: number): Promise<void> {
  await env.client(box) // waits until Dovecot knows the new account
  for (let start = 0; start < messages; start += 1000) {
    const batch = Array.from({ length: Math.min(1000, messages - start) }, (_, k) => {
      const i = start + k
      return rawMail({ messageId: `<bench${i}@fabrikam.test>`, subject: `Bench ${i}`, body: `Message ${i}\r\n${'lorem ipsum '.repeat(40)}` })
    })
    await bulkAppend(env.dovecot.host, env.dovecot.imapPort, box, 'INBOX', batch)
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const n = process.argv[2] ? Number(process.argv[2]) : undefined
  runMailserverBench({ print: true, ...(n ? { messages: n } : {}) }).catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
}
