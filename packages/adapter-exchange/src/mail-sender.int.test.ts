/** MailSender and testMailboxAccess over HTTPS against the Graph emulator. */
import { ThrottledError, ValidationError } from '@concord/engine'
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import { CRM_ID_PROPERTY_ID, MailSender } from './mail-sender.js'
import { testMailboxAccess } from './mailbox-test.js'
import { SendBudget } from './send-budget.js'
import { startEmulatorEnv, UPN, type EmulatorEnv } from './test/emulator-env.js'

const BOB = 'bob@contoso.test'
const CRM_ID = '0f8fad5b-d9cb-469f-a165-70867728950e'
let env: EmulatorEnv

beforeAll(async () => {
  // The emulator's daily recipient limit is lowered so its own refusal is reached without depending on
  // how fast 30 sends run (the per-minute limit is real time).
  env = await startEmulatorEnv({ mailboxes: [UPN, BOB], sending: { recipientsPerDay: 40 } })
})
afterAll(async () => {
  await env.close()
})
beforeEach(() => {
  env.em.control.reset()
})

const mail = (n: number, extra: Record<string, unknown> = {}) => ({
  internetMessageId: `<crm-${n}@contoso.test>`,
  crmEmailId: CRM_ID.replace(/e$/, String(n % 10)),
  subject: `Offer ${n}`,
  body: `<p>Offer number ${n}</p>`,
  bodyType: 'html' as const,
  to: [{ address: BOB, name: 'Bob' }],
  ...extra,
})

async function count(upn: string, folder: string, internetMessageId: string): Promise<number> {
  const q = encodeURIComponent(`internetMessageId eq '${internetMessageId}'`)
  const r = await env.fetch(`${env.em.url}/v1.0/users/${upn}/mailFolders/${folder}/messages?$filter=${q}`, { headers: { authorization: `Bearer ${await token()}` } })
  const body = (await r.json()) as { value: unknown[] }
  return body.value.length
}
async function token(): Promise<string> {
  const r = await env.fetch(env.em.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'concord-test', client_secret: 'test-secret', scope: 'https://graph.microsoft.com/.default' }),
  })
  return ((await r.json()) as { access_token: string }).access_token
}

test('send, then a crash-simulated re-send with the same Message-ID: exactly one copy in Sent Items and one in the recipient Inbox', async () => {
  const adapter = env.adapter()
  const first = await new MailSender(adapter).send(mail(1))
  expect(first).toEqual({ status: 'sent', internetMessageId: '<crm-1@contoso.test>' })
  // "crash": a new process, new sender, new budget, same CRM e-mail
  const again = await new MailSender(env.adapter()).send(mail(1))
  expect(again.status).toBe('already-sent')
  expect(await count(UPN, 'sentitems', '<crm-1@contoso.test>')).toBe(1)
  expect(await count(BOB, 'inbox', '<crm-1@contoso.test>')).toBe(1)
  // the Sent Items copy carries the CRM e-mail id as the crmid property
  const sender = new MailSender(adapter)
  const found = await sender.findSent('<unknown@contoso.test>', mail(1).crmEmailId)
  expect(found?.messageId).toBe(again.status === 'already-sent' ? again.messageId : '')
  expect(CRM_ID_PROPERTY_ID).toContain('Name crmid')
})

test('the CRM id stamp alone also prevents a resend (Message-ID rewritten by a relay)', async () => {
  const adapter = env.adapter()
  await new MailSender(adapter).send(mail(2))
  const r = await new MailSender(adapter).send(mail(2, { internetMessageId: '<other-2@contoso.test>' }))
  expect(r.status).toBe('already-sent')
  expect(await count(BOB, 'inbox', '<crm-2@contoso.test>')).toBe(1)
  expect(await count(BOB, 'inbox', '<other-2@contoso.test>')).toBe(0)
})

test('the client budget defers the 31st message within a minute; the emulator refuses over-limit sends itself', async () => {
  let now = 1_000_000
  const adapter = env.adapter()
  const sender = new MailSender(adapter, { now: () => now })
  for (let i = 0; i < 30; i++) {
    expect((await sender.send(mail(100 + i, { crmEmailId: `0f8fad5b-d9cb-469f-a165-${String(708677280000 + i)}` }))).status).toBe('sent')
    now += 100
  }
  const deferred = await sender.send(mail(130, { crmEmailId: '0f8fad5b-d9cb-469f-a165-708677289999' }))
  expect(deferred).toMatchObject({ status: 'deferred', reason: 'messagesPerMinute' })
  expect(deferred.status === 'deferred' && deferred.retryAfterMs).toBeGreaterThan(0)
  expect(await count(BOB, 'inbox', '<crm-130@contoso.test>')).toBe(0)
  // a sender with a too generous budget hits the emulator's own limit (30 + 11 recipients > 40 a day): 429 → ThrottledError
  const reckless = new MailSender(adapter, { budget: new SendBudget({ messagesPerMinute: 1000 }) })
  const eleven = Array.from({ length: 11 }, (_, i) => ({ address: i === 0 ? BOB : `r${i}@fabrikam.test` }))
  const err = await reckless.send(mail(131, { crmEmailId: '0f8fad5b-d9cb-469f-a165-708677289998', to: eleven })).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(ThrottledError)
  expect((err as ThrottledError).retryAfterMs).toBeGreaterThan(0)
  expect((err as ThrottledError).message).toContain('ErrorSubmissionQuotaExceeded')
  expect(await count(BOB, 'inbox', '<crm-131@contoso.test>')).toBe(0)
  // the refused reservation was given back
  expect(reckless.budget.usage().messagesLastMinute).toBe(0)
})

test('the daily recipient budget defers a message that would exceed it', async () => {
  const now = 5_000_000
  const sender = new MailSender(env.adapter(), { now: () => now, limits: { recipientsPerDay: 3 } })
  const to = [{ address: BOB }, { address: 'x@fabrikam.test' }]
  expect((await sender.send(mail(200, { to }))).status).toBe('sent')
  const r = await sender.send(mail(201, { to, crmEmailId: '0f8fad5b-d9cb-469f-a165-708677280201' }))
  expect(r).toMatchObject({ status: 'deferred', reason: 'recipientsPerDay' })
  expect(r.status === 'deferred' && r.retryAfterMs).toBe(86_400_000)
})

test('bad input is a ValidationError naming the field', async () => {
  const sender = new MailSender(env.adapter())
  const err = await sender.send(mail(3, { internetMessageId: 'no-brackets' })).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(ValidationError)
  expect((err as Error).message).toContain('internetMessageId')
  const none = await sender.send(mail(3, { to: [] })).catch((e: unknown) => e)
  expect((none as Error).message).toContain('at least one recipient')
})

test('testMailboxAccess: a known mailbox succeeds on every workload; an unknown one fails with a reason', async () => {
  const ok = await testMailboxAccess(env.adapter())
  expect(ok).toMatchObject({ incoming: { status: 'success' }, outgoing: { status: 'success' }, act: { status: 'success' } })
  expect(ok.checks.map((c) => c.name)).toEqual(['inbox', 'sentitems', 'calendar', 'contacts', 'todoLists'])
  const missing = await testMailboxAccess(env.adapter({ mailbox: 'nobody@contoso.test' }))
  expect(missing.incoming.status).toBe('failure')
  expect(missing.outgoing.status).toBe('failure')
  expect(missing.act.status).toBe('failure')
  expect(missing.incoming.reason).toContain('not found')
  expect(missing.checks).toEqual([{ name: 'inbox', ok: false, status: 404, code: 'ErrorInvalidUser' }])
})

test('testMailboxAccess: 403 on one resource fails only that workload; 503 means the test did not run', async () => {
  // The emulator has no per-resource access policies; this fetch answers 403 for contacts like an
  // application access policy would, everything else goes to the emulator.
  const denyContacts: typeof fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    if (/\/contacts\?/.test(url)) {
      return new Response(JSON.stringify({ error: { code: 'ErrorAccessDenied', message: 'Access is denied. Check credentials and try again.' } }), { status: 403, headers: { 'content-type': 'application/json' } })
    }
    return env.fetch(input, init)
  }
  const r = await testMailboxAccess(env.adapter({}, { fetch: denyContacts }))
  expect(r.incoming.status).toBe('success')
  expect(r.outgoing.status).toBe('success')
  expect(r.act.status).toBe('failure')
  expect(r.act.reason).toContain('403 ErrorAccessDenied')
  env.em.control.failNext({ status: 503, retryAfterSeconds: 2 })
  const err = await testMailboxAccess(env.adapter()).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(ThrottledError)
  expect((err as ThrottledError).retryAfterMs).toBe(2000)
})
