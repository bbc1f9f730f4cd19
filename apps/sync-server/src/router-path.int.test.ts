/**
 * The e-mail router path: mailboxes whose CRM email server profile is POP3/IMAP + SMTP sync email with a
 * real Dovecot (delivery over LMTP) and send through an in-process SMTP sink, tracked and correlated
 * like Exchange mail.
 */
import { type DovecotService, useDovecot } from '@concord/tools'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { AlertCodes } from './mailbox/directory.js'
import { EMAIL_ONLY_REASON } from './mailbox/profiles.js'
import { type SmtpSink, deliver, rawMail, startSmtpSink } from './test/mail-env.js'
import { type World, dataverseApi, startWorld, until } from './test/world.js'

const IMAP = { email: 'ina@contoso.test', user: 'ina', password: 'ina-imap-pw' }
const POP3 = { email: 'pete@contoso.test', user: 'pete', password: 'pete-pop3-pw' }
const STRAY = { email: 'olga@contoso.test' }
const WRONG = { email: 'wendy@contoso.test', user: 'pete', password: 'not-petes-password' }

let dovecot: DovecotService
let sink: SmtpSink
let w: World
let ina: World['users'][number]
let pete: World['users'][number]
let olga: World['users'][number]
let wendy: World['users'][number]
let accountId: string

beforeAll(async () => {
  // A Dovecot of this file's own (not the shared one `npm test` exports): these accounts exist only here.
  dovecot = await useDovecot({ via: ['local-binary'], users: [{ name: IMAP.user, password: IMAP.password }, { name: POP3.user, password: POP3.password }] })
  sink = await startSmtpSink()
  process.env['CONCORD_TEST_POP3_PASSWORD'] = POP3.password
  const smtp = { host: '127.0.0.1', port: sink.port }
  w = await startWorld({
    start: false,
    users: [{ email: IMAP.email, inGraph: false }, { email: POP3.email, inGraph: false }, { email: STRAY.email, inGraph: false }, { email: WRONG.email, inGraph: false }],
    config: {
      outgoing: { intervalMs: 1 },
      profiles: [
        { name: 'Contoso IMAP', type: 'imap', incoming: { host: dovecot.host, port: dovecot.imapPort }, outgoing: smtp, mailboxes: { [IMAP.email]: { user: IMAP.user, password: IMAP.password } } },
        { name: 'Contoso POP3', type: 'pop3', incoming: { host: dovecot.host, port: dovecot.pop3Port }, outgoing: smtp, mailboxes: { [POP3.email]: { user: POP3.user, password: { env: 'CONCORD_TEST_POP3_PASSWORD' } }, [WRONG.email]: { user: WRONG.user, password: WRONG.password } } },
      ],
    },
  })
  ;[ina, pete, olga, wendy] = w.users as [World['users'][number], World['users'][number], World['users'][number], World['users'][number]]
  const profile = (name: string) => w.dv.admin.createRecord('emailserverprofiles', { name, servertype: 1 }).id
  const bind = async (mailboxId: string, profileId: string) => dataverseApi(w.dv, 'PATCH', `mailboxes(${mailboxId})`, { 'emailserverprofile@odata.bind': `/emailserverprofiles(${profileId})` })
  await bind(ina.mailboxid!, profile('Contoso IMAP'))
  const pop3Profile = profile('Contoso POP3')
  await bind(pete.mailboxid!, pop3Profile)
  await bind(wendy.mailboxid!, pop3Profile)
  await bind(olga.mailboxid!, profile('Fabrikam Router'))
  // Tracking option "all email messages" (incomingemailfilteringmethod 0) for the router users.
  for (const u of [ina, pete]) await dataverseApi(w.dv, 'PATCH', `usersettingscollection(${u.systemuserid})`, { incomingemailfilteringmethod: 0 })
  accountId = w.dv.admin.createRecord('accounts', { name: 'Fabrikam', emailaddress1: 'info@fabrikam.test' }, ina.systemuserid).id
  w.dv.admin.createRecord('contacts', { firstname: 'Carol', lastname: 'Client', emailaddress1: 'carol@fabrikam.test' }, ina.systemuserid)
  await w.startServer()
}, 60_000)

afterAll(async () => {
  await w?.stop()
  await sink?.close()
  await dovecot?.stop()
  delete process.env['CONCORD_TEST_POP3_PASSWORD']
})

const crmEmails = (messageId: string) => w.dv.admin.rows('emails').filter((r) => r.values['messageid'] === messageId)
const emailRow = (id: string) => w.dv.admin.rows('emails').find((r) => r.id === id)!

/** The CRM user writes an email regarding an account and presses Send. */
function pressSend(owner: World['users'][number], subject: string, to: string): string {
  const row = w.dv.admin.createRecord(
    'emails',
    {
      subject,
      description: `<p>${subject}</p>`,
      'regardingobjectid_account_email@odata.bind': `/accounts(${accountId})`,
      email_activity_parties: [
        { 'partyid_systemuser@odata.bind': `/systemusers(${owner.systemuserid})`, participationtypemask: 1 },
        { addressused: to, participationtypemask: 2 },
      ],
    },
    owner.systemuserid,
  )
  w.dv.admin.sendEmail(row.id, owner.systemuserid)
  return row.id
}

describe('IMAP + SMTP profile', () => {
  test('the admin API shows the profile; only email syncs, with the reason', async () => {
    const m = (await w.api('GET', `/api/mailboxes/${ina.mailboxid}`)).body
    expect(m).toMatchObject({ state: 'enabled', kinds: ['email'], profile: { name: 'Contoso IMAP', type: 'imap' }, restrictions: [EMAIL_ONLY_REASON] })
    const p = (await w.api('GET', `/api/mailboxes/${pete.mailboxid}`)).body
    expect(p).toMatchObject({ state: 'enabled', kinds: ['email'], profile: { name: 'Contoso POP3', type: 'pop3' } })
  })

  test('a mailbox whose CRM profile is not configured is not synced, with a clear reason', async () => {
    const o = (await w.api('GET', `/api/mailboxes/${olga.mailboxid}`)).body
    expect(o.state).toBe('pending')
    expect(o.reason).toContain('email server profile "Fabrikam Router" is not configured')
    expect(o.kinds).toEqual([])
  })

  test('a thread delivered to Dovecot reaches the CRM exactly once; outgoing goes out once over SMTP; the reply correlates', async () => {
    const t = (n: number) => `<imap-thread-${n}@fabrikam.test>`
    await deliver(dovecot.host, dovecot.lmtpPort, IMAP.user, [
      rawMail({ messageId: t(1), subject: 'Order 2001' }),
      rawMail({ messageId: t(2), subject: 'RE: Order 2001', from: 'Ina <ina@contoso.test>', to: 'Carol Client <carol@fabrikam.test>', inReplyTo: t(1), references: t(1) }),
      rawMail({ messageId: t(3), subject: 'RE: Order 2001', inReplyTo: t(2), references: `${t(1)} ${t(2)}` }),
      rawMail({ messageId: t(4), subject: 'Lunch?', from: 'Friend <friend@example.test>' }),
    ])
    const sentId = pressSend(ina, 'Quote 77 for Fabrikam', 'carol@fabrikam.test')
    await w.syncUntilQuiet(ina.mailboxid!)
    for (let n = 1; n <= 4; n++) expect(crmEmails(t(n)), t(n)).toHaveLength(1)
    // Outgoing: sent once over SMTP, recorded Sent in the CRM with the Message-ID it went out with.
    await until(() => emailRow(sentId).values['statuscode'] === 3, 'the CRM email to show Sent')
    const messageId = String(emailRow(sentId).values['messageid'])
    expect(sink.messages.filter((m) => m.messageId === messageId)).toHaveLength(1)
    expect(sink.messages.find((m) => m.messageId === messageId)!.to).toEqual(['carol@fabrikam.test'])
    expect(sink.messages.find((m) => m.messageId === messageId)!.raw.toString('utf8')).not.toContain('<p>') // the HTML body goes out as its text
    // The sent copy was filed in Sent and read back as the same (untracked, outgoing) message: no second CRM email.
    const worker = w.server.workerOf(ina.mailboxid!)!
    const copy = (await worker.engineStore.readLog(worker.mailbox.replicaId, 0, 1000)).find((e) => e.nativeId === `mid:${messageId}`)
    expect(copy?.fields).toMatchObject({ direction: 'outgoing', internetMessageId: messageId })
    expect(crmEmails(messageId)).toHaveLength(1)

    // Carol answers the CRM email: the reply is tracked and correlated to the account (In-Reply-To).
    await deliver(dovecot.host, dovecot.lmtpPort, IMAP.user, [rawMail({ messageId: '<imap-answer-1@fabrikam.test>', subject: 'RE: Quote 77 for Fabrikam', inReplyTo: messageId, references: messageId })])
    await w.syncUntilQuiet(ina.mailboxid!)
    const [answer] = crmEmails('<imap-answer-1@fabrikam.test>')
    expect(answer?.lookups['regardingobjectid']).toMatchObject({ table: 'account', id: accountId })
    // …and a reply to the reply follows the same thread.
    await deliver(dovecot.host, dovecot.lmtpPort, IMAP.user, [rawMail({ messageId: '<imap-answer-2@fabrikam.test>', subject: 'RE: RE: Quote 77 for Fabrikam', inReplyTo: '<imap-answer-1@fabrikam.test>', references: `${messageId} <imap-answer-1@fabrikam.test>` })])
    await w.syncUntilQuiet(ina.mailboxid!)
    expect(crmEmails('<imap-answer-2@fabrikam.test>')[0]?.lookups['regardingobjectid']).toMatchObject({ table: 'account', id: accountId })
    expect(sink.messages.filter((m) => m.messageId === messageId)).toHaveLength(1)
  })

  test('unparseable mail is reported per message (admin API + one CRM alert); unknown charset, missing Date, broken multipart still sync; nothing stops', async () => {
    await deliver(dovecot.host, dovecot.lmtpPort, IMAP.user, [
      rawMail({ messageId: '<imap-nodate@fabrikam.test>', subject: 'No date', date: null }),
      rawMail({ messageId: '<imap-charset@fabrikam.test>', subject: 'Odd charset', contentType: 'text/plain; charset=x-no-such-charset', bodyBytes: Buffer.from([0x48, 0xe9, 0xff, 0xfe, 0x0d, 0x0a]) }),
      Buffer.from('\x00garbage without headers\r\n'),
      rawMail({ messageId: '<imap-broken-mime@fabrikam.test>', subject: 'Broken multipart', contentType: 'multipart/mixed; boundary="never-closed"', body: '--never-closed\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!' }),
      rawMail({ messageId: '<imap-after-broken@fabrikam.test>', subject: 'After the broken ones' }),
    ])
    await w.syncUntilQuiet(ina.mailboxid!)
    for (const id of ['<imap-nodate@fabrikam.test>', '<imap-charset@fabrikam.test>', '<imap-broken-mime@fabrikam.test>', '<imap-after-broken@fabrikam.test>']) expect(crmEmails(id), id).toHaveLength(1)
    const { body } = await w.api('GET', `/api/mailboxes/${ina.mailboxid}/problems`)
    // The message without any usable header is reported (and synced from its envelope); mailparser reads the
    // unknown charset, the missing Date and the unterminated multipart leniently, so those simply sync.
    expect(body.problems.map((p: { reason: string; folder: string; message: string }) => [p.reason, p.folder, p.message])).toEqual([['malformed-message', 'INBOX', expect.stringContaining('no usable header')]])
    const alerts = w.dv.admin.rows('tracelogs').filter((r) => r.lookups['regardingobjectid']?.id === ina.mailboxid && r.values['tracecode'] === AlertCodes.MessageUnreadable)
    expect(alerts).toHaveLength(1)
    expect((await w.api('GET', `/api/mailboxes/${ina.mailboxid}`)).body.state).toBe('enabled')
  })
})

test('Test & Enable of an IMAP mailbox logs in over IMAP and greets SMTP; ACT is not run', async () => {
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${ina.mailboxid})`, { testemailconfigurationscheduled: true, incomingemailstatus: 0, outgoingemailstatus: 0, actstatus: 0 })
  await w.api('POST', '/api/mailboxes/refresh')
  const row = w.dv.admin.rows('mailboxes').find((r) => r.id === ina.mailboxid)!
  expect([row.values['incomingemailstatus'], row.values['outgoingemailstatus'], row.values['actstatus']]).toEqual([1, 1, 0])
  const alerts = w.dv.admin.rows('tracelogs').filter((r) => r.lookups['regardingobjectid']?.id === ina.mailboxid && r.values['tracecode'] === AlertCodes.TestAndEnableSucceeded)
  expect(alerts).toHaveLength(1)
  expect((await w.api('GET', `/api/mailboxes/${ina.mailboxid}`)).body).toMatchObject({ state: 'enabled', kinds: ['email'] })
})

test('refused POP3 credentials: the mailbox is disabled at once with an alert; Test & Enable names the failed login, never the password', async () => {
  await until(async () => (await w.api('GET', `/api/mailboxes/${wendy.mailboxid}`)).body.state === 'disabled', 'the mailbox to be disabled')
  const m = (await w.api('GET', `/api/mailboxes/${wendy.mailboxid}`)).body
  expect(m.reason).toMatch(/^permanent error: .*login refused/)
  await dataverseApi(w.dv, 'PATCH', `mailboxes(${wendy.mailboxid})`, { testemailconfigurationscheduled: true })
  await w.api('POST', '/api/mailboxes/refresh')
  const row = w.dv.admin.rows('mailboxes').find((r) => r.id === wendy.mailboxid)!
  expect([row.values['incomingemailstatus'], row.values['outgoingemailstatus'], row.values['actstatus']]).toEqual([2, 1, 0])
  const alert = w.dv.admin.rows('tracelogs').find((r) => r.lookups['regardingobjectid']?.id === wendy.mailboxid && r.values['tracecode'] === AlertCodes.TestAndEnableFailed)
  expect(String(alert?.values['text'])).toContain('POP3 login of pete was refused')
  const texts = w.dv.admin.rows('tracelogs').map((r) => String(r.values['text']))
  expect(texts.some((t) => t.includes(WRONG.password))).toBe(false)
  expect(JSON.stringify(m)).not.toContain(WRONG.password)
})

describe('POP3 + SMTP profile (UIDL)', () => {
  test('a thread reaches the CRM exactly once, tracked by the "all email" option as it is pulled', async () => {
    const t = (n: number) => `<pop3-thread-${n}@fabrikam.test>`
    await deliver(dovecot.host, dovecot.lmtpPort, POP3.user, [
      rawMail({ messageId: t(1), subject: 'Invoice 9', to: 'Pete <pete@contoso.test>' }),
      rawMail({ messageId: t(2), subject: 'RE: Invoice 9', to: 'Pete <pete@contoso.test>', inReplyTo: t(1), references: t(1) }),
      Buffer.from('\x00garbage without headers\r\n'),
    ])
    await w.syncUntilQuiet(pete.mailboxid!)
    for (let n = 1; n <= 2; n++) expect(crmEmails(t(n)), t(n)).toHaveLength(1)
    const { body } = await w.api('GET', `/api/mailboxes/${pete.mailboxid}/problems`)
    expect(body.problems.map((p: { reason: string; folder: string }) => [p.reason, p.folder])).toEqual([['malformed-message', 'INBOX']])
    expect((await w.api('GET', '/api/mailboxes/no-such-mailbox/problems')).status).toBe(404)
  })

  test('outgoing CRM email goes out once over SMTP and the reply correlates to the regarding record', async () => {
    const sentId = pressSend(pete, 'Renewal for Fabrikam', 'carol@fabrikam.test')
    await w.syncUntilQuiet(pete.mailboxid!)
    await until(() => emailRow(sentId).values['statuscode'] === 3, 'the CRM email to show Sent')
    const messageId = String(emailRow(sentId).values['messageid'])
    expect(sink.messages.filter((m) => m.messageId === messageId)).toHaveLength(1)
    await deliver(dovecot.host, dovecot.lmtpPort, POP3.user, [rawMail({ messageId: '<pop3-answer@fabrikam.test>', subject: 'RE: Renewal for Fabrikam', to: 'Pete <pete@contoso.test>', inReplyTo: messageId, references: messageId })])
    await w.syncUntilQuiet(pete.mailboxid!)
    expect(crmEmails('<pop3-answer@fabrikam.test>')[0]?.lookups['regardingobjectid']).toMatchObject({ table: 'account', id: accountId })
  })
})

/** Volume: threads of 4 (In-Reply-To + References), all tracked by "all email". */
const VOLUME = Number(process.env['ROUTER_VOLUME'] ?? 200)

test(`${VOLUME} threaded messages delivered to Dovecot reach the CRM exactly once`, async () => {
  const raws: Buffer[] = []
  for (let n = 0; n < VOLUME; n++) {
    const root = `<vol-${n - (n % 4)}@fabrikam.test>`
    const prev = `<vol-${n - 1}@fabrikam.test>`
    raws.push(rawMail({ messageId: `<vol-${n}@fabrikam.test>`, subject: `${n % 4 ? 'RE: ' : ''}Volume thread ${n - (n % 4)}`, ...(n % 4 ? { inReplyTo: prev, references: n % 4 === 1 ? root : `${root} ${prev}` } : {}) }))
  }
  await deliver(dovecot.host, dovecot.lmtpPort, IMAP.user, raws)
  await w.syncUntilQuiet(ina.mailboxid!)
  const byId = new Map<string, number>()
  for (const r of w.dv.admin.rows('emails')) {
    const id = r.values['messageid']
    if (typeof id === 'string' && id.startsWith('<vol-')) byId.set(id, (byId.get(id) ?? 0) + 1)
  }
  expect(byId.size).toBe(VOLUME)
  expect([...byId.values()].every((c) => c === 1)).toBe(true)
})

test('a restart of the server re-imports nothing and sends nothing again', async () => {
  const before = { emails: w.dv.admin.rows('emails').length, sent: sink.messages.length }
  await w.server.stop()
  await w.startServer()
  await w.syncUntilQuiet(ina.mailboxid!)
  await w.syncUntilQuiet(pete.mailboxid!)
  expect(w.dv.admin.rows('emails').length).toBe(before.emails)
  expect(sink.messages.length).toBe(before.sent)
  const ids = w.dv.admin.rows('emails').map((r) => r.values['messageid']).filter((m) => typeof m === 'string')
  expect(new Set(ids).size).toBe(ids.length)
  // A new message after the restart still arrives, once.
  await deliver(dovecot.host, dovecot.lmtpPort, POP3.user, [rawMail({ messageId: '<pop3-after-restart@fabrikam.test>', subject: 'After restart', to: 'Pete <pete@contoso.test>' })])
  await deliver(dovecot.host, dovecot.lmtpPort, IMAP.user, [rawMail({ messageId: '<imap-after-restart@fabrikam.test>', subject: 'After restart' })])
  await w.syncUntilQuiet(pete.mailboxid!)
  await w.syncUntilQuiet(ina.mailboxid!)
  expect(crmEmails('<pop3-after-restart@fabrikam.test>')).toHaveLength(1)
  expect(crmEmails('<imap-after-restart@fabrikam.test>')).toHaveLength(1)
})
