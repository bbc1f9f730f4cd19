/** The admin API: bearer-token auth, validation that names the field, and the documented routes. */
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type World, startWorld } from './test/world.js'

let w: World
let mailboxId: string
beforeAll(async () => {
  w = await startWorld({ users: [{ email: 'alice@contoso.test' }] })
  mailboxId = w.users[0]!.mailboxid!
  await w.syncUntilQuiet(mailboxId)
})
afterAll(async () => {
  await w?.stop()
})

test('every route but /health refuses a request without the token, or with a wrong one (401)', async () => {
  for (const [method, path] of [['GET', '/api/mailboxes'], ['GET', `/api/mailboxes/${mailboxId}/conflicts`], ['POST', `/api/mailboxes/${mailboxId}/resync`], ['GET', '/metrics'], ['PUT', '/api/directions']] as const) {
    expect((await w.api(method, path, undefined, null)).status, `${method} ${path} without a token`).toBe(401)
    expect((await w.api(method, path, undefined, 'wrong-token-wrong-token')).status, `${method} ${path} with a wrong token`).toBe(401)
  }
  expect((await w.api('GET', '/health', undefined, null)).status).toBe(200)
})

test('bad input gets 400 naming the field; unknown mailboxes 404', async () => {
  const direction = await w.api('PUT', '/api/directions', { kind: 'contact', field: 'jobTitle', direction: 'sideways' })
  expect(direction.status).toBe(400)
  expect(direction.body.field).toBe('body.direction')
  const kind = await w.api('PUT', '/api/directions', { kind: 'lead', field: 'x', direction: 'both' })
  expect(kind.body.field).toBe('body.kind')
  const resolve = await w.api('POST', `/api/mailboxes/${mailboxId}/conflicts/resolve`, { concordId: 'c1', field: 'subject', winner: 'nobody' })
  expect([resolve.status, resolve.body.field]).toEqual([400, 'body.winner'])
  const explain = await w.api('GET', `/api/mailboxes/${mailboxId}/explain?item=c1`)
  expect([explain.status, explain.body.field]).toEqual([400, 'query.field'])
  const history = await w.api('GET', `/api/mailboxes/${mailboxId}/history?limit=-3`)
  expect([history.status, history.body.field]).toEqual([400, 'query.limit'])
  const filters = await w.api('PUT', `/api/users/${w.users[0]!.systemuserid}/filters`, { filters: { contact: { op: 'nonsense' } } })
  expect([filters.status, filters.body.field]).toEqual([400, 'body.filters'])
  const notJson = await w.api('PUT', '/api/directions', '{not json')
  expect(notJson.status).toBe(400)
  expect((await w.api('GET', '/api/mailboxes/nope')).status).toBe(404)
  expect((await w.api('GET', '/api/mailboxes/nope/conflicts')).status).toBe(404)
})

test('mailboxes, history, scheduler explanation, explain, conflicts, quarantine and metrics answer', async () => {
  const list = await w.api('GET', '/api/mailboxes')
  expect(list.body.mailboxes[0]).toMatchObject({ mailboxId, state: 'enabled', email: 'alice@contoso.test' })
  const history = await w.api('GET', `/api/mailboxes/${mailboxId}/history?limit=2`)
  expect(history.body.history.length).toBeGreaterThanOrEqual(1)
  expect(history.body.history.length).toBeLessThanOrEqual(2)
  expect(history.body.history[0]).toMatchObject({ outcome: 'ok' })
  const schedule = await w.api('GET', `/api/mailboxes/${mailboxId}/schedule`)
  expect(schedule.body.explanation.length).toBeGreaterThan(0)
  expect((await w.api('GET', `/api/mailboxes/${mailboxId}/conflicts`)).body).toEqual({ conflicts: [] })
  expect((await w.api('GET', `/api/mailboxes/${mailboxId}/quarantine`)).body).toEqual({ quarantine: [] })
  expect((await w.api('GET', `/api/mailboxes/${mailboxId}/explain?item=unknown&field=subject`)).status).toBe(404)
  const metrics = await w.api('GET', '/metrics')
  expect(metrics.status).toBe(200)
  for (const name of ['concord_sync_cycles_total', 'concord_items_total', 'concord_conflicts_total', 'concord_api_calls_total', 'concord_throttles_total', 'concord_mailbox_staleness_seconds', 'concord_mailboxes']) {
    expect(metrics.body, name).toContain(name)
  }
  expect(metrics.body).toMatch(/concord_api_calls_total\{side="crm"\} [1-9]/)
})

test('changing a direction is validated, stored and applied to every mailbox', async () => {
  const r = await w.api('PUT', '/api/directions', { kind: 'contact', field: 'jobTitle', direction: 'toExchange' })
  expect(r.status).toBe(200)
  expect(r.body.directions.contact.jobTitle).toBe('toExchange')
  expect((await w.server.state.getDirections()).contact).toEqual({ jobTitle: 'toExchange' })
})

test('the CLI lists mailboxes and explains the schedule through the admin API', async () => {
  const { main } = await import('./cli.js')
  const out: string[] = []
  const io = { out: (s: string) => void out.push(s), err: (s: string) => void out.push(s) }
  const auth = ['--url', w.server.adminUrl, '--token', w.config.admin.token]
  expect(await main([...auth, 'mailboxes'], io)).toBe(0)
  expect(out.join('')).toMatch(/alice@contoso\.test\s+enabled/)
  out.length = 0
  expect(await main([...auth, 'history', mailboxId], io)).toBe(0)
  expect(JSON.parse(out.join('')).history[0].outcome).toBe('ok')
  out.length = 0
  expect(await main(['--url', w.server.adminUrl, '--token', 'wrong-token-wrong-token', 'mailboxes'], io)).toBe(1)
  expect(out.join('')).toMatch(/401/)
})

test('secrets never appear in the logs', async () => {
  const lines: string[] = []
  const { createLogger } = await import('./logging.js')
  const log = createLogger('info', { write: (s: string) => void lines.push(s) })
  log.info({ config: { crm: { clientSecret: 's3cret-crm' }, admin: { token: 'tok-123' } }, headers: { authorization: 'Bearer abc' } }, 'config loaded')
  expect(lines.join('')).not.toMatch(/s3cret-crm|tok-123|Bearer abc/)
})
