import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startDataverseEmulator, type DataverseEmulator } from './index.js'
import { Throttle } from './throttle.js'
import { apiClient, type ApiClient } from './test-support.js'

describe('Throttle (unit, injected clock)', () => {
  test('sliding request window gives 0x80072322 with Retry-After until the window slides', () => {
    let now = 0
    const t = new Throttle({ requestsPerWindow: 3, windowMs: 10_000, concurrent: 10 }, () => now)
    for (let i = 0; i < 3; i++) t.admit('u')()
    now = 4_000
    let err: unknown
    try {
      t.admit('u')
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ status: 429, code: '0x80072322', headers: { 'Retry-After': '6' } })
    t.admit('other')()
    now = 10_001
    expect(() => t.admit('u')()).not.toThrow()
    expect(t.stats().find((s) => s.caller === 'u')).toMatchObject({ total: 4, throttled: 1 })
  })

  test('concurrency limit gives 0x80072326 immediately', () => {
    const t = new Throttle({ concurrent: 2 }, () => 0)
    const r1 = t.admit('u')
    t.admit('u')
    expect(() => t.admit('u')).toThrow(expect.objectContaining({ status: 429, code: '0x80072326' }))
    r1()
    expect(() => t.admit('u')).not.toThrow()
  })

  test('execution time limit gives 0x80072321', () => {
    let now = 0
    const t = new Throttle({ executionMsPerWindow: 100 }, () => now)
    const release = t.admit('u')
    now = 150
    release()
    expect(() => t.admit('u')).toThrow(expect.objectContaining({ status: 429, code: '0x80072321' }))
  })
})

describe('service protection over HTTP', () => {
  let emu: DataverseEmulator
  let c: ApiClient
  beforeAll(async () => {
    emu = await startDataverseEmulator({ limits: { requestsPerWindow: 5, windowMs: 300_000, concurrent: 52 } })
    c = await apiClient(emu)
  })
  afterAll(async () => {
    await emu.close()
  })

  test('the 6th request in the window is a 429 with Retry-After and the documented body', async () => {
    for (let i = 0; i < 5; i++) {
      const ok = await c.get('WhoAmI')
      expect(ok.status).toBe(200)
      expect(ok.headers.get('x-ms-ratelimit-burst-remaining-xrm-requests')).toBe(String(4 - i))
    }
    const r = await c.get('WhoAmI')
    expect(r.status).toBe(429)
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(r.json).toEqual({ error: { code: '0x80072322', message: 'Number of requests exceeded the limit of 5 over time window of 300 seconds.' } })
    const stats = (await (await fetch(`${emu.url}/_emulator/stats`)).json()) as { callers: Array<{ total: number; throttled: number }> }
    expect(stats.callers[0]).toMatchObject({ total: 5, throttled: 1 })
  })

  test('concurrency limit over HTTP: the request over the limit is answered while the others are held', async () => {
    emu.admin.setLimits({ requestsPerWindow: 10_000, concurrent: 2 })
    emu.admin.throttleReset()
    const release = emu.admin.holdRequests()
    const pending = Array.from({ length: 3 }, () => c.get('WhoAmI'))
    const first = await Promise.race(pending)
    expect(first.status).toBe(429)
    expect(first.json.error.code).toBe('0x80072326')
    expect(first.headers.get('retry-after')).toBe('1')
    release()
    const all = await Promise.all(pending)
    expect(all.map((r) => r.status).sort()).toEqual([200, 200, 429])
  })

  test('injected 429 / 503 bursts, then normal service', async () => {
    const res = await fetch(`${emu.url}/_emulator/faults`, { method: 'POST', body: JSON.stringify({ status: 503, count: 2, retryAfterSeconds: 3 }) })
    expect(res.status).toBe(204)
    emu.admin.injectFaults({ status: 429, count: 1 })
    const a = await c.get('WhoAmI')
    const b = await c.get('WhoAmI')
    const d = await c.get('WhoAmI')
    const e = await c.get('WhoAmI')
    expect([a.status, b.status, d.status, e.status]).toEqual([503, 503, 429, 200])
    expect(a.headers.get('retry-after')).toBe('3')
    expect(d.json.error.code).toBe('0x80072322')
    const bad = await fetch(`${emu.url}/_emulator/faults`, { method: 'POST', body: JSON.stringify({ status: 418, count: 1 }) })
    expect(bad.status).toBe(400)
  })
})
