import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { formatDeltaToken, parseDeltaToken, startDataverseEmulator, type DataverseEmulator } from './index.js'
import { apiClient, idFrom, type ApiClient } from './test-support.js'

let emu: DataverseEmulator
let c: ApiClient
let now = Date.UTC(2026, 10, 20, 8, 10, 44)

beforeAll(async () => {
  emu = await startDataverseEmulator({ users: ['alice@contoso.test'], now: () => now, changeTrackingRetentionDays: 7 })
  c = await apiClient(emu)
})
afterAll(async () => {
  await emu.close()
})

type Item = Record<string, unknown>

async function pullAll(url: string, headers: Record<string, string>): Promise<{ items: Item[]; deltaLink: string; pages: number; contexts: string[] }> {
  const items: Item[] = []
  const contexts: string[] = []
  let r = await c.get(url, headers)
  let pages = 0
  for (;;) {
    expect(r.status, r.text).toBe(200)
    pages++
    contexts.push(r.json['@odata.context'])
    items.push(...r.json.value)
    if (r.json['@odata.deltaLink']) return { items, deltaLink: r.json['@odata.deltaLink'], pages, contexts }
    r = await c.get(r.json['@odata.nextLink'], { Prefer: headers.Prefer?.replace('odata.track-changes,', '') ?? '' })
  }
}

describe('delta token format', () => {
  test('{version}!{MM/dd/yyyy HH:mm:ss} round-trips', () => {
    const t = formatDeltaToken(919042, new Date(Date.UTC(2017, 7, 22, 8, 10, 44)))
    expect(t).toBe('919042!08/22/2017 08:10:44')
    expect(parseDeltaToken(t)).toEqual({ version: 919042, issuedAt: Date.UTC(2017, 7, 22, 8, 10, 44) })
  })
})

describe('change tracking rounds', () => {
  test('initial round, then new/changed rows before $deletedEntity entries; created-then-deleted still reported', async () => {
    const a = idFrom(await c.post('accounts', { name: 'A' }))
    const b = idFrom(await c.post('accounts', { name: 'B' }))
    const first = await c.get('accounts?$select=name', { Prefer: 'odata.track-changes' })
    expect(first.status).toBe(200)
    expect(first.headers.get('preference-applied')).toBe('odata.track-changes')
    expect(first.json['@odata.context']).toBe(`${emu.apiUrl}/$metadata#accounts(name)`)
    expect(first.json.value.map((v: Item) => v.name)).toEqual(['A', 'B'])
    const deltaLink = first.json['@odata.deltaLink'] as string
    expect(deltaLink).toMatch(/\$deltatoken=\d+%2108%2F|\$deltatoken=\d+%2111%2F/)
    expect(decodeURIComponent(new URL(deltaLink).searchParams.get('$deltatoken') ?? '')).toMatch(/^\d+!11\/20\/2026 08:10:44$/)
    expect(new URL(deltaLink).searchParams.get('$select')).toBe('name')

    // changes: update a, delete b, create c, create-then-delete d
    await c.patch(`accounts(${a})`, { name: 'A2' })
    await c.del(`accounts(${b})`)
    const cc = idFrom(await c.post('accounts', { name: 'C' }))
    const d = idFrom(await c.post('accounts', { name: 'D' }))
    await c.del(`accounts(${d})`)
    await c.patch(`accounts(${a})`, { name: 'A3' })

    const second = await c.get(deltaLink)
    expect(second.status).toBe(200)
    expect(second.json['@odata.context']).toBe(`${emu.apiUrl}/$metadata#accounts(name)/$delta`)
    const value = second.json.value as Item[]
    expect(value.slice(0, 2).map((v) => [v.accountid, v.name])).toEqual([
      [cc, 'C'],
      [a, 'A3'],
    ])
    expect(value[0]?.['@odata.etag']).toMatch(/^W\/"\d+"$/)
    expect(value.slice(2)).toEqual([
      { '@odata.context': `${emu.apiUrl}/$metadata#accounts/$deletedEntity`, id: b, reason: 'deleted' },
      { '@odata.context': `${emu.apiUrl}/$metadata#accounts/$deletedEntity`, id: d, reason: 'deleted' },
    ])
    const count = await c.get(`accounts/$count?$deltatoken=${new URL(deltaLink).searchParams.get('$deltatoken')}`)
    expect(count.text).toBe('4')

    const third = await c.get(second.json['@odata.deltaLink'])
    expect(third.json.value).toEqual([])
    expect(third.json['@odata.deltaLink']).toBeDefined()
  })

  test('paging inside a round with maxpagesize: nextLink pages, deltaLink only on the last page', async () => {
    for (let i = 0; i < 23; i++) await c.post('tasks', { subject: `T${i}` })
    const initial = await pullAll('tasks?$select=subject', { Prefer: 'odata.track-changes,odata.maxpagesize=10' })
    expect(initial.pages).toBe(3)
    expect(initial.items).toHaveLength(23)
    const ids = initial.items.map((i) => i.activityid as string)
    for (const id of ids.slice(0, 12)) await c.patch(`tasks(${id})`, { percentcomplete: 10 })
    for (const id of ids.slice(12, 20)) await c.del(`tasks(${id})`)
    const delta = await pullAll(initial.deltaLink, { Prefer: 'odata.maxpagesize=5' })
    expect(delta.pages).toBe(4)
    expect(delta.items.filter((i) => i.reason === undefined)).toHaveLength(12)
    expect(delta.items.filter((i) => i.reason === 'deleted').map((i) => i.id)).toEqual(ids.slice(12, 20))
    expect(delta.contexts.every((ctx) => ctx.endsWith('/$delta'))).toBe(true)
  })

  test('$filter, $orderby, $expand and $top are rejected with the documented message', async () => {
    for (const opt of ['filter', 'orderby', 'expand', 'top']) {
      const value = opt === 'filter' ? "name eq 'x'" : opt === 'top' ? '5' : opt === 'expand' ? 'ownerid' : 'name'
      const r = await c.get(`accounts?$select=name&$${opt}=${value}`, { Prefer: 'odata.track-changes' })
      expect(r.status).toBe(400)
      expect(r.json.error.message).toBe(`The "${opt}" query parameter isn't supported when Change Tracking is enabled.`)
    }
  })

  test('expired tokens (retention) and admin-expired tokens get 410 0x80044352; malformed tokens 400', async () => {
    const first = await c.get('contacts?$select=lastname', { Prefer: 'odata.track-changes' })
    const link = first.json['@odata.deltaLink'] as string
    expect((await c.get(link)).status).toBe(200)
    now += 8 * 86_400_000
    c = await apiClient(emu) // the old bearer token expired with the clock jump too
    const expired = await c.get(link)
    expect(expired.status).toBe(410)
    expect(expired.json.error.code).toBe('0x80044352')
    expect(expired.json.error.message).toBe('Version stamp associated with the client has expired. Please perform a full sync.')

    const fresh = (await c.get('contacts?$select=lastname', { Prefer: 'odata.track-changes' })).json['@odata.deltaLink'] as string
    expect((await c.get(fresh)).status).toBe(200)
    emu.admin.expireChangeTracking()
    expect((await c.get(fresh)).status).toBe(410)
    const restarted = (await c.get('contacts?$select=lastname', { Prefer: 'odata.track-changes' })).json['@odata.deltaLink'] as string
    expect((await c.get(restarted)).status).toBe(200)

    const garbage = await c.get('contacts?$deltatoken=banana')
    expect(garbage.status).toBe(400)
    expect(garbage.json.error.code).toBe('0x80044353')
  })

  test('requires organization-level read', async () => {
    const alice = emu.users[0]!
    const asAlice = c.as({ CallerObjectId: alice.azureactivedirectoryobjectid })
    const r = await asAlice.get('contacts?$select=lastname', { Prefer: 'odata.track-changes' })
    expect(r.status).toBe(403)
    expect(r.json.error.code).toBe('0x80040220')
    expect((await asAlice.get('contacts?$select=lastname')).status).toBe(200)
  })
})
