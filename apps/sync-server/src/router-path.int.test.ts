/**
 * The e-mail router path: mailboxes whose CRM email server profile is POP3/IMAP + SMTP sync email with a
 * real Dovecot (delivery over LMTP) and send through an in-process SMTP sink, tracked and correlated
 * like Exchange mail.
 */
import { randomBytes } from 'node:crypto'
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

  test('broken MIME, wrong charsets, a missing Date, a 20 MB attachment, unparseable mail: each reported (admin API + one CRM alert), nothing else stops', async () => {
    await deliver(dovecot.host, dovecot.lmtpPort, IMAP.user, problemMail('imap'))
    await w.syncUntilQuiet(ina.mailboxid!)
    await expectProblemsReported(ina, 'imap', 'INBOX')
  })
})

/** A 20 MB attachment as base64 lines (built once). */
let bigAttachment: string | undefined
function twentyMegabytes(): string {
  if (bigAttachment === undefined) {
    const b64 = randomBytes(20 * 1024 * 1024).toString('base64')
    const lines: string[] = []
    for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76))
    bigAttachment = lines.join('\r\n')
  }
  return bigAttachment
}

/** One message per problem, then a normal one; `tag` keeps the Message-IDs apart per mailbox. */
function problemMail(tag: string): Buffer[] {
  const big = twentyMegabytes()
  return [
    rawMail({ messageId: `<${tag}-nodate@fabrikam.test>`, subject: 'No date', date: null }),
    rawMail({ messageId: `<${tag}-charset@fabrikam.test>`, subject: 'Odd charset', contentType: 'text/plain; charset=x-no-such-charset', bodyBytes: Buffer.from([0x48, 0xe9, 0xff, 0xfe, 0x0d, 0x0a]) }),
    rawMail({ messageId: `<${tag}-latin1@fabrikam.test>`, subject: 'Wrong charset', contentType: 'text/plain; charset=utf-8', bodyBytes: Buffer.from('Caf\xe9 cr\xe8me br\xfbl\xe9e\r\n', 'latin1') }),
    Buffer.from('\x00garbage without headers\r\n'),
    rawMail({ messageId: `<${tag}-broken-mime@fabrikam.test>`, subject: 'Broken multipart', contentType: 'multipart/mixed; boundary="never-closed"', body: '--never-closed\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!' }),
    rawMail({
      messageId: `<${tag}-big@fabrikam.test>`,
      subject: 'Drawings (20 MB)',
      contentType: 'multipart/mixed; boundary="b1"',
      body: `--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe drawings are attached.\r\n--b1\r\nContent-Type: application/octet-stream; name="drawings.bin"\r\nContent-Disposition: attachment; filename="drawings.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n${big}\r\n--b1--`,
    }),
    rawMail({ messageId: `<${tag}-after-broken@fabrikam.test>`, subject: 'After the broken ones' }),
  ]
}

async function expectProblemsReported(user: World['users'][number], tag: string, folder: string): Promise<void> {
  const mid = (n: string) => `<${tag}-${n}@fabrikam.test>`
  // Every message with a Message-ID reached the CRM once, the broken ones included.
  for (const n of ['nodate', 'charset', 'latin1', 'broken-mime', 'big', 'after-broken']) expect(crmEmails(mid(n)), n).toHaveLength(1)
  expect(String(crmEmails(mid('big'))[0]!.values['description'])).toContain('The drawings are attached.')
  expect(String(crmEmails(mid('latin1'))[0]!.values['description'])).toContain('Caf\uFFFD cr\uFFFDme')
  const { body } = await w.api('GET', `/api/mailboxes/${user.mailboxid}/problems`)
  type P = { nativeId: string; reason: string; folder: string; outcome: string; message: string }
  const got = (body.problems as P[]).map((p) => [p.nativeId.startsWith('mid:') ? p.nativeId.slice(4) : 'no Message-ID', p.reason, p.outcome, p.folder])
  expect(got.sort()).toEqual(
    [
      [mid('nodate'), 'missing-date', 'synced', folder],
      [mid('charset'), 'unknown-charset', 'synced', folder],
      [mid('latin1'), 'invalid-charset-data', 'synced', folder],
      ['no Message-ID', 'malformed-message', 'envelope', folder],
      [mid('broken-mime'), 'broken-mime', 'synced', folder],
      [mid('big'), 'attachment-too-large', 'synced', folder],
    ].sort(),
  )
  const big = (body.problems as P[]).find((p) => p.reason === 'attachment-too-large')!
  expect(big.message).toMatch(/"drawings\.bin" \(20\.0 MB\) is above the CRM's attachment limit \(5\.0 MB\)/)
  expect((body.problems as P[]).find((p) => p.reason === 'broken-mime')!.message).toMatch(/never closed.*not valid base64/)
  // One alert on the CRM mailbox per problem; the mailbox stays enabled.
  const alerts = w.dv.admin.rows('tracelogs').filter((r) => r.lookups['regardingobjectid']?.id === user.mailboxid && r.values['tracecode'] === AlertCodes.MessageUnreadable)
  expect(alerts).toHaveLength(got.length)
  expect(alerts.filter((a) => String(a.values['text']).includes('It was synced from its envelope'))).toHaveLength(1)
  expect((await w.api('GET', `/api/mailboxes/${user.mailboxid}`)).body.state).toBe('enabled')
}

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
  test('a thread reaches the CRM exactly once, tracked by the "all email" option as it is pulled; problem mail is reported as on IMAP', async () => {
    const t = (n: number) => `<pop3-thread-${n}@fabrikam.test>`
    await deliver(dovecot.host, dovecot.lmtpPort, POP3.user, [
      rawMail({ messageId: t(1), subject: 'Invoice 9', to: 'Pete <pete@contoso.test>' }),
      rawMail({ messageId: t(2), subject: 'RE: Invoice 9', to: 'Pete <pete@contoso.test>', inReplyTo: t(1), references: t(1) }),
      ...problemMail('pop3'),
    ])
    await w.syncUntilQuiet(pete.mailboxid!)
    for (let n = 1; n <= 2; n++) expect(crmEmails(t(n)), t(n)).toHaveLength(1)
    await expectProblemsReported(pete, 'pop3', 'INBOX')
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

/**
 * Volume: threads of 4 answering e-mails sent from the CRM (each regarding one of 10 accounts), tracked by
 * "all email". A thread's messages arrive one wave after another (an answer after the message it
 * answers, as mail does), delivered over LMTP; every message must reach the CRM once and take the
 * regarding record of its thread through In-Reply-To correlation.
 */
const VOLUME = Number(process.env['ROUTER_VOLUME'] ?? 1000)
const POP3_VOLUME = Number(process.env['ROUTER_POP3_VOLUME'] ?? 200)

async function threadedVolume(opts: { user: World['users'][number]; mailUser: string; to: string; tag: string; messages: number }): Promise<void> {
  const threads = Math.ceil(opts.messages / 4)
  const accounts = Array.from({ length: 10 }, (_, i) => w.dv.admin.createRecord('accounts', { name: `${opts.tag} account ${i}` }, opts.user.systemuserid).id)
  const crmMid = (t: number) => `<crm-${opts.tag}-${t}@contoso.test>`
  const mid = (t: number, k: number) => `<${opts.tag}-${t}-${k}@fabrikam.test>`
  for (let t = 0; t < threads; t++) {
    w.dv.admin.createRecord('emails', { subject: `${opts.tag} thread ${t}`, messageid: crmMid(t), directioncode: true, 'regardingobjectid_account_email@odata.bind': `/accounts(${accounts[t % 10]})` }, opts.user.systemuserid)
  }
  let delivered = 0
  for (let k = 0; delivered < opts.messages; k++) {
    const wave: Buffer[] = []
    for (let t = 0; t < threads && delivered + wave.length < opts.messages; t++) {
      const chain = [crmMid(t), ...Array.from({ length: k }, (_, j) => mid(t, j))]
      wave.push(rawMail({ messageId: mid(t, k), subject: `RE: ${opts.tag} thread ${t}`, to: opts.to, inReplyTo: chain.at(-1)!, references: chain.join(' ') }))
    }
    await deliver(dovecot.host, dovecot.lmtpPort, opts.mailUser, wave, 2)
    delivered += wave.length
    await w.syncUntilQuiet(opts.user.mailboxid!)
  }
  const rows = new Map<string, Array<ReturnType<World['dv']['admin']['rows']>[number]>>()
  for (const r of w.dv.admin.rows('emails')) {
    const id = r.values['messageid']
    if (typeof id === 'string' && id.startsWith(`<${opts.tag}-`)) rows.set(id, [...(rows.get(id) ?? []), r])
  }
  expect(rows.size).toBe(opts.messages)
  const wrong: string[] = []
  for (const [id, list] of rows) {
    const t = Number(id.split('-')[1])
    if (list.length !== 1) wrong.push(`${id}: ${list.length} CRM emails`)
    else if (list[0]!.lookups['regardingobjectid']?.id !== accounts[t % 10] || list[0]!.values['correlationmethod'] !== 3) wrong.push(`${id}: regarding ${list[0]!.lookups['regardingobjectid']?.id}, correlationmethod ${list[0]!.values['correlationmethod']}`)
  }
  expect(wrong).toEqual([])
}

test(`${VOLUME} threaded messages delivered to Dovecot (IMAP) reach the CRM exactly once and correlate to their thread's regarding record`, async () => {
  await threadedVolume({ user: ina, mailUser: IMAP.user, to: 'Ina <ina@contoso.test>', tag: 'vol', messages: VOLUME })
  // Quiet afterwards (that the bulk tracking keyword is not reported back is checked in adapter-mailserver's trackPulled test).
  await w.syncAndWait(ina.mailboxid!)
  expect((await w.server.history(ina.mailboxid!, 1))[0]?.pulled).toEqual({ crm: 0, mailbox: 0 })
}, 300_000)

test(`${POP3_VOLUME} threaded messages over POP3 (UIDL) reach the CRM exactly once and correlate`, async () => {
  await threadedVolume({ user: pete, mailUser: POP3.user, to: 'Pete <pete@contoso.test>', tag: 'pvol', messages: POP3_VOLUME })
}, 300_000)

test('a restart of the server re-imports nothing and sends nothing again', async () => {
  const alerts = () => w.dv.admin.rows('tracelogs').filter((r) => r.values['tracecode'] === AlertCodes.MessageUnreadable).length
  const before = { emails: w.dv.admin.rows('emails').length, sent: sink.messages.length, alerts: alerts() }
  await w.server.stop()
  await w.startServer()
  await w.syncUntilQuiet(ina.mailboxid!)
  await w.syncUntilQuiet(pete.mailboxid!)
  expect(w.dv.admin.rows('emails').length).toBe(before.emails)
  expect(sink.messages.length).toBe(before.sent)
  // The re-listing sees the problem mail again: counted, not alerted twice.
  expect(alerts()).toBe(before.alerts)
  const problems = (await w.api('GET', `/api/mailboxes/${pete.mailboxid}/problems`)).body.problems as Array<{ count: number }>
  expect(problems.length).toBeGreaterThan(0)
  expect(problems.every((p) => p.count >= 2)).toBe(true)
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

// Last: after the restart test (a restart re-decides untracked mail with the option then in force).
test('tracking option "in response to CRM email": a thread answering a CRM email is tracked whole, decided per page in batched lookups; other mail is not', async () => {
  await dataverseApi(w.dv, 'PATCH', `usersettingscollection(${ina.systemuserid})`, { incomingemailfilteringmethod: 1 })
  try {
    w.dv.admin.createRecord('emails', { subject: 'Proposal 5', messageid: '<crm-resp@contoso.test>', directioncode: true, 'regardingobjectid_account_email@odata.bind': `/accounts(${accountId})` }, ina.systemuserid)
    const r = (n: number) => `<resp-${n}@fabrikam.test>`
    await deliver(dovecot.host, dovecot.lmtpPort, IMAP.user, [
      rawMail({ messageId: r(1), subject: 'RE: Proposal 5', inReplyTo: '<crm-resp@contoso.test>', references: '<crm-resp@contoso.test>' }),
      rawMail({ messageId: r(2), subject: 'RE: Proposal 5', inReplyTo: r(1), references: `<crm-resp@contoso.test> ${r(1)}` }),
      rawMail({ messageId: r(3), subject: 'Unrelated', from: 'Friend <friend@example.test>' }),
    ])
    await w.syncUntilQuiet(ina.mailboxid!)
    expect(crmEmails(r(1))).toHaveLength(1)
    expect(crmEmails(r(1))[0]!.lookups['regardingobjectid']).toMatchObject({ table: 'account', id: accountId })
    expect(crmEmails(r(2))).toHaveLength(1) // answers r(1), tracked in the same page
    expect(crmEmails(r(3))).toHaveLength(0)
    // A later answer to the thread: In-Reply-To finds the CRM email of r(2).
    await deliver(dovecot.host, dovecot.lmtpPort, IMAP.user, [rawMail({ messageId: r(4), subject: 'RE: Proposal 5', inReplyTo: r(2), references: `<crm-resp@contoso.test> ${r(1)} ${r(2)}` })])
    await w.syncUntilQuiet(ina.mailboxid!)
    expect(crmEmails(r(4))).toHaveLength(1)
  } finally {
    await dataverseApi(w.dv, 'PATCH', `usersettingscollection(${ina.systemuserid})`, { incomingemailfilteringmethod: 0 })
  }
})
