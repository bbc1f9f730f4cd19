import { getEventListeners } from 'node:events'
import { silentLogger, SyncError } from '@concord/engine'
import { startDataverseEmulator, type DataverseEmulator } from '@concord/emulator-dataverse'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { WebApiClient } from './http.js'

let emu: DataverseEmulator
let http: WebApiClient
beforeAll(async () => {
  emu = await startDataverseEmulator({ users: ['alice@contoso.test'] })
  http = new WebApiClient({ orgUrl: emu.url, tokenUrl: emu.tokenUrl, clientId: emu.clientId, clientSecret: emu.clientSecret }, fetch, silentLogger)
})
afterAll(async () => {
  await emu.close()
})

test('300 requests sharing one long-lived signal leave no abort listener behind on it', async () => {
  const caller = new AbortController()
  const before = getEventListeners(caller.signal, 'abort').length
  for (let i = 0; i < 300; i++) {
    const res = await http.raw('GET', 'WhoAmI', { signal: caller.signal })
    expect(res.status).toBe(200)
  }
  // a failed request (HTTP 404) also releases its listener
  expect((await http.raw('GET', 'nosuchtable', { signal: caller.signal })).status).toBe(404)
  expect(getEventListeners(caller.signal, 'abort').length).toBe(before)
  expect(http.requestCount).toBe(301)
})

test('aborting the caller signal still aborts an in-flight request (Aborted), and a pre-aborted signal never sends', async () => {
  const caller = new AbortController()
  const pending = http.raw('GET', 'WhoAmI', { signal: caller.signal })
  caller.abort()
  const err = await pending.then(() => null, (e: unknown) => e)
  // The request may already have completed before the abort landed; when it did not, it is an Aborted SyncError.
  if (err !== null) {
    expect(err).toBeInstanceOf(SyncError)
    expect((err as SyncError).code).toBe('Aborted')
  }
  expect(getEventListeners(caller.signal, 'abort').length).toBe(0)
  const sent = http.requestCount
  const again = await http.raw('GET', 'WhoAmI', { signal: caller.signal }).then(() => null, (e: unknown) => e)
  expect((again as SyncError).code).toBe('Aborted')
  expect(http.requestCount).toBe(sent)
})
