import { CursorExpiredError, PreconditionFailedError, ThrottledError, ValidationError } from '@concord/engine'
import { expect, test } from 'vitest'
import { classifyGraphFailure, parseRetryAfter } from './errors.js'
import { decodeNativeId, encodeNativeId } from './native-id.js'
import { parseExchangeOptions } from './options.js'

const f = (status: number, headers: Record<string, string> = {}, code?: string) => ({ status, headers, body: code ? { error: { code, message: 'm' } } : undefined, url: 'https://g/v1.0/x?$deltatoken=secret' })

test('Retry-After: fractional seconds and HTTP-dates become ms', () => {
  expect(parseRetryAfter('2.128')).toBe(2128)
  expect(parseRetryAfter('0')).toBe(0)
  expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000)
  expect(parseRetryAfter('soon')).toBeUndefined()
  expect(parseRetryAfter(undefined)).toBeUndefined()
})

test('classification: 429/503 throttle, 412 precondition, 410/400 on delta expire, tokens redacted', () => {
  const t = classifyGraphFailure(f(429, { 'retry-after': '3' }, 'TooManyRequests'))
  expect(t).toBeInstanceOf(ThrottledError)
  expect((t as ThrottledError).retryAfterMs).toBe(3000)
  expect(classifyGraphFailure(f(503))).toBeInstanceOf(ThrottledError)
  expect(classifyGraphFailure(f(412, {}, 'ErrorIrresolvableConflict'))).toBeInstanceOf(PreconditionFailedError)
  const gone = classifyGraphFailure(f(410, {}, 'SyncStateNotFound'), { delta: true })
  expect(gone).toBeInstanceOf(CursorExpiredError)
  expect(gone.details.url).not.toContain('secret')
  expect(classifyGraphFailure(f(400, {}, 'invalidRequest'), { delta: true })).toBeInstanceOf(CursorExpiredError)
  expect(classifyGraphFailure(f(400)).code).toBe('Validation')
  expect(classifyGraphFailure(f(404)).code).toBe('NotFound')
  expect(classifyGraphFailure(f(401)).code).toBe('Unauthorized')
  expect(classifyGraphFailure(f(504)).code).toBe('Transient')
})

test('options are validated and errors name the key', () => {
  const base = { replicaId: 'r', mailbox: 'a@b.test', tenantId: 't', clientId: 'c', clientSecret: 's' }
  const o = parseExchangeOptions(base)
  expect(o.mailFolders).toEqual(['inbox', 'sentitems'])
  expect(o.calendarWindow).toEqual({ pastDays: 30, futureDays: 365 })
  expect(() => parseExchangeOptions({ ...base, graphBaseUrl: 'http://localhost:1' })).toThrow(/graphBaseUrl/)
  expect(() => parseExchangeOptions({ ...base, calendarWindow: { pastDays: -1 } })).toThrow(/calendarWindow\.pastDays/)
  expect(() => parseExchangeOptions({ ...base, clientSecret: '' })).toThrow(ValidationError)
  expect(() => parseExchangeOptions({ ...base, colour: 'red' })).toThrow(/colour/)
})

test('native ids carry the kind and the To Do list', () => {
  expect(decodeNativeId(encodeNativeId('task', 'T1', 'L1'))).toEqual({ kind: 'task', listId: 'L1', graphId: 'T1' })
  expect(decodeNativeId(encodeNativeId('email', 'M1'))).toEqual({ kind: 'email', graphId: 'M1' })
  expect(() => decodeNativeId('crm-1')).toThrow(/native id/)
})
