import { CursorExpiredError, PreconditionFailedError, SyncError } from '@concord/engine'
import { expect, test } from 'vitest'
import { OutlookProtocolError, ProtocolErrorCodes, protocolCodeOf, syncErrorFromWire, syncErrorOf } from './errors.js'
import { ClientMessageSchema, HandshakeReplySchema, PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, ServerMessageSchema, decodeFrame, encodeFrame } from './protocol.js'

test('decodeFrame names the offending field and keeps the request id', () => {
  const bad = decodeFrame(JSON.stringify({ type: 'setInterval', id: 'r1', minutes: 'soon' }), ClientMessageSchema)
  expect(bad.ok).toBe(false)
  if (bad.ok) return
  expect(bad.id).toBe('r1')
  expect(bad.error.code).toBe('bad_request')
  expect(bad.error.message).toContain('minutes')
  const json = decodeFrame('{', ClientMessageSchema)
  expect(json).toMatchObject({ ok: false, error: { code: 'bad_request', message: 'frame is not valid JSON' } })
  expect(decodeFrame(JSON.stringify({ type: 'designate', id: 'x'.repeat(65) }), ClientMessageSchema)).toMatchObject({ ok: false, id: undefined })
})

test('messages are strict: unknown fields and unknown types are refused', () => {
  expect(ClientMessageSchema.safeParse({ type: 'designate', id: 'a', extra: 1 }).success).toBe(false)
  expect(ClientMessageSchema.safeParse({ type: 'shouldTrack', id: 'a', email: { from: { address: 'a@b' }, to: [], cc: [], subject: 's', body: 'b' } }).success).toBe(false)
  expect(ServerMessageSchema.safeParse({ type: 'pull', id: 'a', fencingToken: 1, cursor: null, limit: 0 }).success).toBe(false)
  expect(ServerMessageSchema.safeParse({ type: 'pull', id: 'a', fencingToken: 1, cursor: null, limit: 5 }).success).toBe(true)
  expect(ClientMessageSchema.safeParse({ type: 'error', code: 'teapot', message: 'x' }).success).toBe(false)
})

test('encodeFrame refuses a frame above the limit', () => {
  expect(() => encodeFrame({ type: 'result', id: 'a', result: 'x'.repeat(2000) }, 1024)).toThrow(OutlookProtocolError)
  expect(encodeFrame({ type: 'designate', id: 'a' }, 1024)).toBe('{"type":"designate","id":"a"}')
})

test('error codes map both ways between the protocol and the engine', () => {
  expect(syncErrorOf('cursor_expired', 'x')).toBeInstanceOf(CursorExpiredError)
  expect(syncErrorOf('timeout', 'x')).toMatchObject({ code: 'Transient', retryable: true })
  expect(syncErrorOf('fenced', 'x')).toMatchObject({ code: 'Forbidden', retryable: false })
  expect(syncErrorFromWire('PreconditionFailed', 'x')).toBeInstanceOf(PreconditionFailedError)
  expect(protocolCodeOf(new SyncError('NotFound', 'x'))).toBe('not_found')
  expect(protocolCodeOf(new Error('boom'))).toBe('internal')
  for (const code of ProtocolErrorCodes) expect(syncErrorOf(code, 'x')).toBeInstanceOf(SyncError)
})

test('protocol 2 sync scope: pull kinds, syncScope, welcome syncKinds are validated; out_of_scope survives the engine', () => {
  expect(ServerMessageSchema.safeParse({ type: 'pull', id: 'a', fencingToken: 1, cursor: null, limit: 5, kinds: ['contact', 'task'] }).success).toBe(true)
  expect(ServerMessageSchema.safeParse({ type: 'pull', id: 'a', fencingToken: 1, cursor: null, limit: 5, kinds: ['contact', 'contact'] }).success).toBe(false)
  expect(ServerMessageSchema.safeParse({ type: 'pull', id: 'a', fencingToken: 1, cursor: null, limit: 5, kinds: ['fax'] }).success).toBe(false)
  expect(ServerMessageSchema.safeParse({ type: 'syncScope', kinds: [] }).success).toBe(true)
  expect(ServerMessageSchema.safeParse({ type: 'syncScope', kinds: ['email'], extra: true }).success).toBe(false)
  const welcome = { type: 'welcome', protocol: 2, userId: 'u', clientId: 'c', designated: true, fencingToken: 1, intervalMinutes: 15, minIntervalMinutes: 5, maxFrameBytes: 1024 }
  expect(HandshakeReplySchema.safeParse(welcome).success).toBe(true) // protocol 1: no syncKinds
  expect(HandshakeReplySchema.safeParse({ ...welcome, syncKinds: ['appointment', 'contact', 'task'] }).success).toBe(true)
  expect(HandshakeReplySchema.safeParse({ ...welcome, syncKinds: 'email' }).success).toBe(false)
  expect(SUPPORTED_PROTOCOL_VERSIONS).toEqual([1, PROTOCOL_VERSION])
  const refused = syncErrorOf('out_of_scope', 'x', new OutlookProtocolError('out_of_scope', 'x'))
  expect(refused).toMatchObject({ code: 'Forbidden', retryable: false })
  expect(protocolCodeOf(refused)).toBe('out_of_scope')
  expect(protocolCodeOf(new SyncError('Forbidden', 'x'))).toBe('forbidden')
})
