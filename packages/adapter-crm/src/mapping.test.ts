import { CursorExpiredError, parseFields, PreconditionFailedError, SyncError, ThrottledError } from '@concord/engine'
import { describe, expect, test } from 'vitest'
import { buildBatch, classifyFailure, fieldsToPayload, fromUtcInstant, parseBatchResponse, parseCrmAdapterOptions, retryAfterMs, rowToFields, toUtcInstant } from './index.js'
import { RowSchema } from './mapping.js'

const all = { readable: () => true, contactAddresses: 'mailing' as const }

describe('time zones', () => {
  test('wall-clock times convert to the UTC instant Dataverse stores, across DST', () => {
    expect(toUtcInstant({ dateTime: '2026-01-15T09:30:00', timeZone: 'Europe/Berlin' })).toBe('2026-01-15T08:30:00Z')
    expect(toUtcInstant({ dateTime: '2026-07-15T09:30:00', timeZone: 'Europe/Berlin' })).toBe('2026-07-15T07:30:00Z')
    expect(toUtcInstant({ dateTime: '2026-07-15T09:30', timeZone: 'Pacific Standard Time' })).toBe('2026-07-15T16:30:00Z')
    expect(toUtcInstant({ dateTime: '2026-03-29T12:00:00', timeZone: 'UTC' })).toBe('2026-03-29T12:00:00Z')
    expect(fromUtcInstant('2026-07-15T07:30:00Z')).toEqual({ dateTime: '2026-07-15T07:30:00', timeZone: 'UTC' })
  })
  test('an unknown zone is a Validation error naming it', () => {
    expect(() => toUtcInstant({ dateTime: '2026-01-01T00:00:00', timeZone: 'Mars/Olympus' })).toThrow(/Mars\/Olympus/)
  })
})

describe('rows ⇄ canonical fields', () => {
  const row = RowSchema.parse({
    '@odata.etag': 'W/"7"',
    contactid: 'c0000000-0000-4000-8000-000000000001',
    firstname: 'Ann',
    lastname: 'Lee',
    fullname: 'Ann Lee',
    middlename: null,
    emailaddress1: 'ann@x.test',
    jobtitle: null,
    address1_line1: '1 Main St',
    address1_line2: 'Floor 2',
    address1_city: 'Springfield',
    birthdate: '1980-02-03T00:00:00Z',
    description: '',
  })

  test('null = cleared; a column the owner cannot read is absent', () => {
    const f = rowToFields('contact', row, [], all)
    expect(f).toMatchObject({ givenName: 'Ann', middleName: null, jobTitle: null, birthday: '1980-02-03', notes: null, businessAddress: { street: '1 Main St\nFloor 2', city: 'Springfield' } })
    expect(() => parseFields('contact', f)).not.toThrow()
    const secured = rowToFields('contact', row, [], { ...all, readable: (c) => c !== 'jobtitle' && c !== 'address1_city' })
    expect(secured).not.toHaveProperty('jobTitle')
    expect(secured).not.toHaveProperty('businessAddress') // one secured part hides the whole address
    expect(secured.givenName).toBe('Ann')
  })

  test('writes: secured fields dropped, read-only fields ignored, create-only fields only on create', () => {
    const p = fieldsToPayload('contact', { givenName: 'A', jobTitle: 'x', displayName: 'ignored', businessAddress: { street: 'a\nb\nc\nd' } }, { writable: (c) => c !== 'jobtitle', contactAddresses: 'mailing', create: false })
    expect(p.dropped).toEqual(['jobTitle'])
    expect(p.body).toMatchObject({ firstname: 'A', address1_line1: 'a', address1_line2: 'b', address1_line3: 'c, d', address1_city: null })
    expect(p.body).not.toHaveProperty('fullname')
    const e = (create: boolean) => fieldsToPayload('email', { internetMessageId: '<m@x>', subject: 's', to: [{ address: 'a@x' }] }, { writable: () => true, contactAddresses: 'mailing', create })
    expect(e(true).body).toMatchObject({ messageid: '<m@x>', subject: 's' })
    expect(e(false).body).not.toHaveProperty('messageid')
    expect(e(true).parties).toEqual([{ mask: 2, address: 'a@x' }])
  })

  test('task and appointment status mapping', () => {
    const t = fieldsToPayload('task', { status: 'completed', priority: 'high' }, { writable: () => true, contactAddresses: 'mailing', create: true })
    expect(t.body).toEqual({ statecode: 1, statuscode: 5, prioritycode: 2 })
    const a = fieldsToPayload('appointment', { showAs: 'oof', regarding: { table: 'account', id: 'a1' } }, { writable: () => true, contactAddresses: 'mailing', create: true })
    expect(a.body).toEqual({ statecode: 3, statuscode: 6, 'regardingobjectid_account_appointment@odata.bind': '/accounts(a1)' })
    expect(() => fieldsToPayload('task', { regarding: { table: 'spaceship', id: 'x' } }, { writable: () => true, contactAddresses: 'mailing', create: true })).toThrow(/spaceship/)
  })

  test('a malformed row is rejected at the edge', () => {
    expect(RowSchema.safeParse({ contactid: 'x' }).success).toBe(false)
    expect(RowSchema.safeParse({ '@odata.etag': 'W/"1"', statecode: 'open' }).success).toBe(false)
  })
})

describe('$batch multipart', () => {
  test('one change set per write; responses map back in order, failed change sets included', () => {
    const { contentType, body } = buildBatch([{ method: 'PATCH', url: 'contacts(1)', headers: { 'If-Match': 'W/"1"' }, body: '{}' }, { method: 'DELETE', url: 'tasks(2)' }], 'http://h/api/data/v9.2')
    expect(contentType).toMatch(/^multipart\/mixed; boundary=batch_/)
    expect(body).toContain('PATCH http://h/api/data/v9.2/contacts(1) HTTP/1.1')
    expect(body.match(/boundary=changeset_/g)).toHaveLength(2)
    const response = [
      '--b1',
      'Content-Type: multipart/mixed; boundary=cs1',
      '',
      '--cs1',
      'Content-Type: application/http',
      '',
      'HTTP/1.1 200 OK',
      'ETag: W/"2"',
      '',
      '{"a":1}',
      '--cs1--',
      '--b1',
      'Content-Type: application/http',
      '',
      'HTTP/1.1 412 Precondition Failed',
      'Content-Type: application/json',
      '',
      '{"error":{"code":"0x80060882","message":"x"}}',
      '--b1--',
    ].join('\r\n')
    const parsed = parseBatchResponse('multipart/mixed; boundary=b1', response)
    expect(parsed.map((r) => r.status)).toEqual([200, 412])
    expect(parsed[0]).toMatchObject({ headers: { etag: 'W/"2"' }, body: '{"a":1}' })
  })
})

describe('errors and options', () => {
  test('Web API failures are classified into the engine error set', () => {
    expect(classifyFailure({ status: 429, code: '0x80072322', message: 'x' }, '3')).toBeInstanceOf(ThrottledError)
    expect((classifyFailure({ status: 429, code: '', message: 'x' }, '3') as ThrottledError).retryAfterMs).toBe(3000)
    expect(classifyFailure({ status: 410, code: '0x80044352', message: 'expired' }, null)).toBeInstanceOf(CursorExpiredError)
    expect(classifyFailure({ status: 412, code: '0x80060882', message: 'x' }, null)).toBeInstanceOf(PreconditionFailedError)
    expect(classifyFailure({ status: 403, code: '0x80040220', message: 'x' }, null).code).toBe('Forbidden')
    expect(classifyFailure({ status: 503, code: '', message: 'x' }, null).code).toBe('Transient')
    expect(retryAfterMs(null)).toBe(1000)
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:10 GMT', Date.UTC(2026, 0, 1))).toBe(10_000)
  })
  test('bad options → a Config SyncError naming the field', () => {
    const err = (() => {
      try {
        parseCrmAdapterOptions({ orgUrl: 'not a url', tokenUrl: 'http://t', clientId: 'c', clientSecret: 's', impersonate: { callerObjectId: 'nope' } })
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(SyncError)
    expect((err as SyncError).code).toBe('Config')
    expect((err as SyncError).message).toMatch(/orgUrl/)
    expect((err as SyncError).message).toMatch(/impersonate/)
  })
})

test('read-only fields that are empty in the CRM are absent, not null', () => {
  const row = RowSchema.parse({ '@odata.etag': 'W/"1"', activityid: 'a', subject: 's', senton: null })
  const f = rowToFields('email', row, [], all)
  expect(f).not.toHaveProperty('sentAt')
  expect(f.subject).toBe('s')
  expect(rowToFields('email', RowSchema.parse({ '@odata.etag': 'W/"1"', senton: '2026-01-02T03:04:05Z' }), [], all).sentAt).toBe('2026-01-02T03:04:05.000Z')
})
