/** sendMail: client internetMessageId, extended properties on the Sent Items copy, and the Exchange sending limits. */
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import type { GraphEmulator } from './index.js'
import { A, B, getToken, setup, type Client } from './test/helpers.js'

const CRMID = 'String {00020329-0000-0000-C000-000000000046} Name crmid'
let em: GraphEmulator
let c: Client

beforeAll(async () => {
  ;({ em, c } = await setup({ sending: { messagesPerMinute: 3, recipientsPerDay: 10 } }))
})
afterAll(async () => {
  await em.close()
})
beforeEach(() => {
  em.control.reset()
})

const message = (subject: string, to: string[], extra: Record<string, unknown> = {}) => ({
  message: { subject, toRecipients: to.map((address) => ({ emailAddress: { address } })), ...extra },
  saveToSentItems: true,
})

test('a client internetMessageId and extended properties stay on the Sent Items copy; $filter finds them', async () => {
  const id = '<crm-1@contoso.test>'
  const r = await c.post(`users/${A}/sendMail`, message('Quote', [B], { internetMessageId: id, singleValueExtendedProperties: [{ id: CRMID, value: 'E-1' }] }))
  expect(r.status).toBe(202)
  const byId = await c.get(`users/${A}/mailFolders/sentitems/messages?$filter=${encodeURIComponent(`internetMessageId eq '${id}'`)}`)
  expect(byId.body.value).toHaveLength(1)
  const byProp = await c.get(
    `users/${A}/mailFolders/sentitems/messages?$filter=${encodeURIComponent(`singleValueExtendedProperties/Any(ep: ep/id eq '${CRMID}' and ep/value eq 'E-1')`)}`,
  )
  expect(byProp.body.value.map((m: { id: string }) => m.id)).toEqual([byId.body.value[0].id])
  const expanded = await c.get(`users/${A}/messages/${byId.body.value[0].id}?$expand=${encodeURIComponent(`singleValueExtendedProperties($filter=id eq '${CRMID}')`)}`)
  expect(expanded.body.singleValueExtendedProperties).toEqual([{ id: CRMID, value: 'E-1' }])
  // the recipient's copy has the same Message-ID but not the sender's MAPI property
  const inbox = await c.get(`users/${B}/mailFolders/inbox/messages?$filter=${encodeURIComponent(`internetMessageId eq '${id}'`)}`)
  expect(inbox.body.value).toHaveLength(1)
  const theirs = await c.get(`users/${B}/messages/${inbox.body.value[0].id}?$expand=${encodeURIComponent(`singleValueExtendedProperties($filter=id eq '${CRMID}')`)}`)
  expect(theirs.body.singleValueExtendedProperties).toBeUndefined()
})

test('more messages per minute than allowed → 429 ErrorSubmissionQuotaExceeded with Retry-After; nothing is delivered', async () => {
  for (let i = 0; i < 3; i++) expect((await c.post(`users/${A}/sendMail`, message(`m${i}`, [B]))).status).toBe(202)
  const over = await c.post(`users/${A}/sendMail`, message('m3', [B]))
  expect(over.status).toBe(429)
  expect(over.body.error.code).toBe('ErrorSubmissionQuotaExceeded')
  expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0)
  expect(Number(over.headers.get('retry-after'))).toBeLessThanOrEqual(60)
  expect((await c.get(`users/${B}/mailFolders/inbox/messages?$filter=subject eq 'm3'`)).body.value).toHaveLength(0)
  // limits are per mailbox
  expect((await c.post(`users/${B}/sendMail`, message('from b', [A]))).status).toBe(202)
  // after the minute has passed the mailbox may send again
  em.control.advanceClock(61_000)
  expect((await c.post(`users/${A}/sendMail`, message('m4', [B]))).status).toBe(202)
})

test('more recipients per day than allowed → 429 ErrorSubmissionQuotaExceeded; the window rolls after 24 hours', async () => {
  const six = Array.from({ length: 6 }, (_, i) => `r${i}@fabrikam.test`)
  expect((await c.post(`users/${A}/sendMail`, message('six', six))).status).toBe(202)
  em.control.advanceClock(61_000)
  const over = await c.post(`users/${A}/sendMail`, message('six more', six))
  expect(over.status).toBe(429)
  expect(over.body.error.code).toBe('ErrorSubmissionQuotaExceeded')
  expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(3600)
  expect((await c.post(`users/${A}/sendMail`, message('four', six.slice(0, 4)))).status).toBe(202)
  em.control.advanceClock(86_400_000)
  c.token = await getToken(em) // the old token expired with the clock
  expect((await c.post(`users/${A}/sendMail`, message('six later', six))).status).toBe(202)
})
