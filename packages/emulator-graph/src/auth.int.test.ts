import { afterAll, beforeAll, expect, test } from 'vitest'
import { startGraphEmulator, type GraphEmulator } from './index.js'
import { A, Client, getToken } from './test/helpers.js'

let em: GraphEmulator

beforeAll(async () => {
  em = await startGraphEmulator({ mailboxes: [A], clientId: 'app-1', clientSecret: 's3cret', tokenLifetimeSeconds: 60 })
})
afterAll(async () => {
  await em.close()
})

test('token endpoint issues a bearer token for client credentials', async () => {
  const res = await fetch(em.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'app-1', client_secret: 's3cret', scope: 'https://graph.microsoft.com/.default' }),
  })
  expect(res.status).toBe(200)
  const body = (await res.json()) as Record<string, unknown>
  expect(body['token_type']).toBe('Bearer')
  expect(body['expires_in']).toBe(60)
  expect(typeof body['access_token']).toBe('string')
  const c = new Client(em.url, body['access_token'] as string)
  const me = await c.get(`users/${A}`)
  expect(me.status).toBe(200)
  expect(me.body.userPrincipalName).toBe(A)
})

test('wrong secret, wrong grant type and bad scope are OAuth errors', async () => {
  const post = (form: Record<string, string>) =>
    fetch(em.tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) })
  const wrongSecret = await post({ grant_type: 'client_credentials', client_id: 'app-1', client_secret: 'nope', scope: 'https://graph.microsoft.com/.default' })
  expect(wrongSecret.status).toBe(401)
  expect(((await wrongSecret.json()) as { error: string }).error).toBe('invalid_client')
  const grant = await post({ grant_type: 'password', client_id: 'app-1', client_secret: 's3cret', scope: 'https://graph.microsoft.com/.default' })
  expect(grant.status).toBe(400)
  expect(((await grant.json()) as { error: string }).error).toBe('unsupported_grant_type')
  const scope = await post({ grant_type: 'client_credentials', client_id: 'app-1', client_secret: 's3cret', scope: 'Mail.Read' })
  expect(((await scope.json()) as { error: string }).error).toBe('invalid_scope')
  const missing = await post({ grant_type: 'client_credentials' })
  expect(missing.status).toBe(400)
})

test('requests without or with a bad bearer token get 401 InvalidAuthenticationToken', async () => {
  const anon = new Client(em.url, undefined)
  const r1 = await anon.get(`users/${A}/messages`)
  expect(r1.status).toBe(401)
  expect(r1.body.error.code).toBe('InvalidAuthenticationToken')
  expect(r1.body.error.innerError['request-id']).toBe(r1.headers.get('request-id'))
  expect(Object.keys(r1.body.error.innerError).sort()).toEqual(['client-request-id', 'date', 'request-id'])
  expect(typeof r1.body.error.innerError.date).toBe('string')
  const bad = new Client(em.url, 'not-a-token')
  const r2 = await bad.get(`users/${A}/messages`)
  expect(r2.status).toBe(401)
  expect(r2.body.error.code).toBe('InvalidAuthenticationToken')
  const good = await getToken(em, 'app-1', 's3cret')
  const forged = new Client(em.url, `${good.slice(0, -4)}AAAA`)
  expect((await forged.get(`users/${A}/messages`)).status).toBe(401)
})

test('expired tokens are rejected', async () => {
  const token = await getToken(em, 'app-1', 's3cret')
  const c = new Client(em.url, token)
  expect((await c.get(`users/${A}/mailFolders`)).status).toBe(200)
  em.control.advanceClock(61_000)
  const r = await c.get(`users/${A}/mailFolders`)
  expect(r.status).toBe(401)
  expect(r.body.error.code).toBe('InvalidAuthenticationToken')
  expect(r.body.error.message).toMatch(/expired/)
  const fresh = new Client(em.url, await getToken(em, 'app-1', 's3cret'))
  expect((await fresh.get(`users/${A}/mailFolders`)).status).toBe(200)
  em.control.expireAccessTokens()
  expect((await fresh.get(`users/${A}/mailFolders`)).status).toBe(401)
})

test('client-request-id is echoed, /me is rejected for app-only, unknown users are 404', async () => {
  const c = new Client(em.url, await getToken(em, 'app-1', 's3cret'))
  const r = await c.get(`users/${A}/mailFolders`, { 'client-request-id': 'abc-123' })
  expect(r.headers.get('client-request-id')).toBe('abc-123')
  const me = await c.get('me/messages', { 'client-request-id': 'x-1' })
  expect(me.status).toBe(400)
  expect(me.body.error.innerError['client-request-id']).toBe('x-1')
  const nobody = await c.get('users/nobody@contoso.test/messages')
  expect(nobody.status).toBe(404)
  expect(nobody.body.error.code).toBe('ErrorInvalidUser')
})
