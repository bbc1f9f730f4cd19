import { ValidationError, asConcordId, asOpId, type PushOp, type RemoteUpsert } from '@concord/engine'
import { pullAll } from '@concord/engine/testing'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { simpleParser } from 'mailparser'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { MailServerError } from './errors.js'
import { FileSendLedger, MemorySendLedger, type SendLedger, type SendLedgerEntry } from './ledger.js'
import { startMailEnv, type MailEnv, type Mailbox } from './test/env.js'

let env: MailEnv
let dir: string
beforeAll(async () => {
  env = await startMailEnv()
  dir = await mkdtemp(join(tmpdir(), 'concord-mailserver-'))
})
afterAll(async () => {
  await env?.close()
  await rm(dir, { recursive: true, force: true })
})

let seq = 0
function sendOp(concordId: string, extra: Record<string, unknown> = {}): Extract<PushOp, { type: 'create' }> {
  return {
    opId: asOpId(`op-${++seq}`),
    type: 'create',
    concordId: asConcordId(concordId),
    kind: 'email',
    fields: {
      subject: 'Your quote CRM:0001001',
      body: 'Dear Bob,\nhere is the quote.',
      from: { name: 'Alice Adams', address: 'alice@contoso.test' },
      to: [{ name: 'Bob Brown', address: 'bob@fabrikam.test' }],
      bcc: [{ address: 'audit@contoso.test' }],
      direction: 'outgoing',
      ...extra,
    },
  }
}

const sinkCount = (messageId: string) => env.sink.messages.filter((m) => m.messageId === messageId).length

async function sentCopies(box: Mailbox, messageId: string): Promise<Buffer[]> {
  const c = await env.client(box)
  const mb = await c.mailboxOpen('Sent')
  if (mb.exists === 0) return []
  const uids = (await c.search({ header: { 'message-id': messageId } }, { uid: true })) || []
  const out: Buffer[] = []
  for (const uid of uids) {
    const m = await c.fetchOne(String(uid), { uid: true, source: true }, { uid: true })
    if (m && m.source) out.push(m.source)
  }
  return out
}

/** A ledger that "crashes" (throws) once on a chosen transition, like a process dying right there. */
class CrashingLedger implements SendLedger {
  crashed = false
  constructor(
    private readonly inner: SendLedger,
    private readonly crashOn: SendLedgerEntry['state'],
    private readonly when: 'before' | 'after',
  ) {}
  get(id: string) {
    return this.inner.get(id)
  }
  delete(id: string) {
    return this.inner.delete(id)
  }
  async put(entry: SendLedgerEntry) {
    if (!this.crashed && entry.state === this.crashOn && this.when === 'before') {
      this.crashed = true
      throw new Error(`simulated crash before recording "${entry.state}"`)
    }
    await this.inner.put(entry)
    if (!this.crashed && entry.state === this.crashOn && this.when === 'after') {
      this.crashed = true
      throw new Error(`simulated crash after recording "${entry.state}"`)
    }
  }
}

describe('outgoing e-mail over SMTP (smtp-server sink) with the Sent copy on Dovecot', () => {
  test('a CRM e-mail goes out once, with its Message-ID, and its copy is appended to Sent', async () => {
    const box = await env.mailbox()
    const adapter = env.adapter(env.imapOptions(box))
    const op = sendOp('crm-email-1', { internetMessageId: '<crm-email-1@contoso.test>', categories: ['Tracked to Dynamics 365'] })
    const first = await adapter.push([op])
    expect(first.rejected).toEqual([])
    expect(first.applied[0]).toMatchObject({ opId: op.opId, nativeId: 'mid:<crm-email-1@contoso.test>' })
    expect(first.applied[0]!.version).toBeTruthy()
    // a replay (same op, then a new op for the same Concord id) sends nothing more
    await adapter.push([op])
    await adapter.push([{ ...op, opId: asOpId('op-replay') }])
    expect(sinkCount('<crm-email-1@contoso.test>')).toBe(1)
    const wire = env.sink.messages.find((m) => m.messageId === '<crm-email-1@contoso.test>')!
    expect(wire.from).toBe('alice@contoso.test')
    expect(wire.to.sort()).toEqual(['audit@contoso.test', 'bob@fabrikam.test'])
    const parsedWire = await simpleParser(wire.raw)
    expect(parsedWire.bcc).toBeUndefined() // Bcc is not on the wire
    expect(parsedWire.headers.get('x-concord-id')).toBe('crm-email-1')

    const copies = await sentCopies(box, '<crm-email-1@contoso.test>')
    expect(copies).toHaveLength(1)
    expect((await simpleParser(copies[0]!)).bcc).toBeDefined() // the Sent copy keeps Bcc

    const { changes } = await pullAll(adapter, null)
    const sent = changes.find((c): c is RemoteUpsert => c.type === 'upsert' && c.nativeId === 'mid:<crm-email-1@contoso.test>')!
    expect(sent.concordId).toBe('crm-email-1')
    expect(sent.version).toBe(first.applied[0]!.version) // the engine recognises its own echo
    expect(sent.fields).toMatchObject({ direction: 'outgoing', subject: 'Your quote CRM:0001001', body: 'Dear Bob,\nhere is the quote.', categories: ['Tracked to Dynamics 365'] })
    expect(sent.meta?.tracked).toBe(true)
    expect((await adapter.sendState('crm-email-1'))?.state).toBe('filed')
  })

  test('without a Message-ID one is assigned before sending (deterministic per Concord id) and recorded', async () => {
    const box = await env.mailbox()
    const ledger = new MemorySendLedger()
    const adapter = env.adapter(env.imapOptions(box), { ledger })
    const res = await adapter.push([sendOp('crm-email-noid')])
    const entry = await ledger.get('crm-email-noid')
    expect(entry?.messageId).toMatch(/^<concord\.[0-9a-f]{32}@contoso\.test>$/)
    expect(res.applied[0]!.nativeId).toBe(`mid:${entry!.messageId}`)
    expect(sinkCount(entry!.messageId)).toBe(1)
  })

  test('a crash between SMTP accepting the message and recording it does not send it twice', async () => {
    const box = await env.mailbox()
    const path = join(dir, `ledger-${box.user}.json`)
    const op = sendOp('crm-email-crash', { internetMessageId: '<crm-email-crash@contoso.test>' })

    const crashing = env.adapter(env.imapOptions(box), { ledger: new CrashingLedger(new FileSendLedger(path), 'sent', 'before') })
    const first = await crashing.push([op])
    expect(first.applied).toEqual([])
    expect(first.rejected[0]!.error.message).toMatch(/simulated crash/)
    expect(sinkCount('<crm-email-crash@contoso.test>')).toBe(1)

    // the process restarts: a new adapter over the same ledger file
    const restarted = env.adapter(env.imapOptions(box), { ledger: new FileSendLedger(path) })
    const replay = await restarted.push([op])
    expect(replay.applied).toEqual([])
    const err = replay.rejected[0]!.error as MailServerError
    expect(err).toBeInstanceOf(MailServerError)
    expect(err.reason).toBe('send-uncertain')
    expect(err.retryable).toBe(false)
    expect(err.message).toContain('<crm-email-crash@contoso.test>')
    expect(sinkCount('<crm-email-crash@contoso.test>')).toBe(1)

    // an operator confirms it went out: the copy is filed, still nothing is sent again
    await restarted.resolveUncertainSend('crm-email-crash', 'mark-sent')
    const resolved = await restarted.push([op])
    expect(resolved.rejected).toEqual([])
    expect(resolved.applied[0]!.nativeId).toBe('mid:<crm-email-crash@contoso.test>')
    expect(sinkCount('<crm-email-crash@contoso.test>')).toBe(1)
    expect(await sentCopies(box, '<crm-email-crash@contoso.test>')).toHaveLength(1)
  })

  test('a crash after recording the send but before filing the Sent copy: the replay files it once, sends nothing', async () => {
    const box = await env.mailbox()
    const path = join(dir, `ledger2-${box.user}.json`)
    const op = sendOp('crm-email-file', { internetMessageId: '<crm-email-file@contoso.test>' })
    const crashing = env.adapter(env.imapOptions(box), { ledger: new CrashingLedger(new FileSendLedger(path), 'sent', 'after') })
    expect((await crashing.push([op])).rejected).toHaveLength(1)
    expect(await sentCopies(box, '<crm-email-file@contoso.test>')).toHaveLength(0)
    const restarted = env.adapter(env.imapOptions(box), { ledger: new FileSendLedger(path) })
    expect((await restarted.push([op])).rejected).toEqual([])
    expect((await restarted.push([op])).rejected).toEqual([])
    expect(sinkCount('<crm-email-file@contoso.test>')).toBe(1)
    expect(await sentCopies(box, '<crm-email-file@contoso.test>')).toHaveLength(1)
  })

  test('a lost ledger: the Sent copy stamped with the Concord id proves the send, nothing goes out again', async () => {
    const box = await env.mailbox()
    const op = sendOp('crm-email-lost', { internetMessageId: '<crm-email-lost@contoso.test>' })
    await env.adapter(env.imapOptions(box)).push([op])
    const fresh = env.adapter(env.imapOptions(box), { ledger: new MemorySendLedger() })
    const res = await fresh.push([{ ...op, opId: asOpId('op-lost-2') }])
    expect(res.applied[0]!.nativeId).toBe('mid:<crm-email-lost@contoso.test>')
    expect(sinkCount('<crm-email-lost@contoso.test>')).toBe(1)
    // the Concord id is matched exactly: "crm-email-lo" is not "crm-email-lost"
    const other = await fresh.push([sendOp('crm-email-lo', { internetMessageId: '<crm-email-lo@contoso.test>' })])
    expect(other.applied[0]!.nativeId).toBe('mid:<crm-email-lo@contoso.test>')
    expect(sinkCount('<crm-email-lo@contoso.test>')).toBe(1)
  })

  test('bad e-mail to send: a clear error naming the field, nothing sent', async () => {
    const box = await env.mailbox()
    const adapter = env.adapter(env.imapOptions(box))
    const before = env.sink.messages.length
    const res = await adapter.push([
      sendOp('bad-1', { to: [], bcc: [] }),
      sendOp('bad-2', { direction: 'incoming' }),
      sendOp('bad-3', { subject: 42 }),
      sendOp('bad-4', { from: null }),
    ])
    expect(res.applied).toEqual([])
    expect((res.rejected[0]!.error as MailServerError).reason).toBe('invalid-email')
    expect((res.rejected[1]!.error as MailServerError).reason).toBe('unsupported-operation')
    expect(res.rejected[2]!.error).toBeInstanceOf(ValidationError)
    expect(res.rejected[2]!.error.message).toContain('subject')
    expect(res.rejected[3]!.error.message).toContain('"from"')
    expect(env.sink.messages.length).toBe(before)
  })

  test('manual tracking on IMAP sets the tracking category; on a POP3/SMTP profile it is refused', async () => {
    const box = await env.mailbox()
    const imap = env.adapter(env.imapOptions(box))
    await imap.push([sendOp('crm-email-track', { internetMessageId: '<crm-email-track@contoso.test>' })])
    const first = await pullAll(imap, null)
    await imap.setTracked('mid:<crm-email-track@contoso.test>' as never, true)
    const next = await pullAll(imap, first.cursor)
    expect(next.changes).toHaveLength(1)
    expect((next.changes[0] as RemoteUpsert).fields.categories).toEqual(['Tracked to Dynamics 365'])
    expect((next.changes[0] as RemoteUpsert).meta?.tracked).toBe(true)

    const pop = env.adapter(env.pop3Options(box))
    await expect(pop.setTracked('mid:<crm-email-track@contoso.test>' as never, true)).rejects.toMatchObject({ reason: 'manual-tracking-unsupported' })
    const upd = await pop.push([
      { opId: asOpId('pu1'), type: 'update', concordId: asConcordId('x'), kind: 'email', nativeId: 'mid:<crm-email-track@contoso.test>' as never, fields: { categories: ['Tracked to Dynamics 365'] } },
    ])
    expect((upd.rejected[0]!.error as MailServerError).reason).toBe('manual-tracking-unsupported')
    // a POP3/SMTP profile still sends (no Sent folder to file into)
    const sent = await pop.push([sendOp('crm-email-pop', { internetMessageId: '<crm-email-pop@contoso.test>' })])
    expect(sent.rejected).toEqual([])
    expect(sinkCount('<crm-email-pop@contoso.test>')).toBe(1)
    expect(await sentCopies(box, '<crm-email-pop@contoso.test>')).toHaveLength(0)
  })
})
