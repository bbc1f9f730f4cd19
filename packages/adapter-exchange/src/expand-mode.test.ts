/**
 * `stampLookup: 'expand'` (the default for a real tenant): the Concord stamp comes from the delta page
 * itself, no extra GETs. The emulator's delta ignores $expand, so this runs over a recorded transport.
 */
import { expect, test } from 'vitest'
import { ExchangeAdapter } from './adapter.js'
import { CONCORD_PROPERTY_ID, IN_REPLY_TO_PROPERTY_ID } from './options.js'

test('delta asks to $expand the stamp and reads RemoteUpsert.concordId from the page', async () => {
  const calls: string[] = []
  const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
  const fakeFetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input)
    calls.push(`${init?.method ?? 'GET'} ${url}`)
    if (url.startsWith('https://login.test/')) return json({ access_token: 'tok', expires_in: 3600, token_type: 'Bearer' })
    expect(new Headers(init?.headers).get('authorization')).toBe('Bearer tok')
    if (url.includes('/$batch')) {
      const req = JSON.parse(String(init?.body)) as { requests: Array<{ id: string; url: string }> }
      return json({ responses: req.requests.map((r) => ({ id: r.id, status: 200, body: { id: `folder:${r.url.split('/')[4]?.split('?')[0]}` } })) })
    }
    if (url.includes('/messages/delta')) {
      return json({
        '@odata.deltaLink': 'https://graph.test/v1.0/users/a%40b.test/mailFolders/inbox/messages/delta?$deltatoken=t1',
        value: [
          { id: 'M1', '@odata.etag': 'W/"k1"', subject: 'stamped', singleValueExtendedProperties: [{ id: CONCORD_PROPERTY_ID, value: 'c_42' }] },
          { id: 'M2', '@odata.etag': 'W/"k2"', subject: 'not stamped' },
        ],
      })
    }
    return json({ error: { code: 'BadRequest', message: `unexpected ${url}` } }, 400)
  }) as typeof fetch
  const adapter = new ExchangeAdapter(
    { replicaId: 'r', mailbox: 'a@b.test', tenantId: 't', clientId: 'c', clientSecret: 's', tokenUrl: 'https://login.test/t/oauth2/v2.0/token', graphBaseUrl: 'https://graph.test', kinds: ['email'], mailFolders: ['inbox'] },
    { fetch: fakeFetch },
  )
  const page = await adapter.pull(null, { limit: 50 })
  expect(page.hasMore).toBe(false)
  expect(page.fullListing).toBe(true)
  const delta = calls.find((c) => c.includes('/messages/delta'))!
  expect(decodeURIComponent(delta)).toContain(`$expand=singleValueExtendedProperties($filter=id eq '${CONCORD_PROPERTY_ID}' or id eq '${IN_REPLY_TO_PROPERTY_ID}')`)
  expect(page.changes.map((c) => (c.type === 'upsert' ? [c.nativeId, c.concordId, c.fields['direction']] : null))).toEqual([
    ['m~M1', 'c_42', 'incoming'],
    ['m~M2', undefined, 'incoming'],
  ])
  // No per-item GETs for stamps: only the token, the folder lookup batch and the delta page.
  expect(calls.filter((c) => c.includes('/messages/M'))).toEqual([])
})
