import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startDataverseEmulator, type DataverseEmulator } from './index.js'
import { apiClient, idFrom, type ApiClient } from './test-support.js'

let emu: DataverseEmulator
let c: ApiClient

beforeAll(async () => {
  emu = await startDataverseEmulator({ users: ['alice@contoso.test'] })
  c = await apiClient(emu)
})
afterAll(async () => {
  await emu.close()
})

describe('authentication', () => {
  test('client credentials token flow; 401 without or with a bad token', async () => {
    const bad = await fetch(emu.tokenUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: emu.clientId, client_secret: 'wrong' }),
    })
    expect(bad.status).toBe(401)
    expect(((await bad.json()) as { error: string }).error).toBe('invalid_client')
    const noGrant = await fetch(emu.tokenUrl, { method: 'POST', body: 'client_id=x' })
    expect(noGrant.status).toBe(400)

    const tenantForm = await fetch(`${emu.url}/contoso.onmicrosoft.com/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: emu.clientId, client_secret: emu.clientSecret, scope: `${emu.url}/.default` }),
    })
    expect(tenantForm.status).toBe(200)
    const token = await emu.getToken()
    expect(token.length).toBeGreaterThan(10)
    const none = await fetch(`${emu.apiUrl}/contacts`)
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toContain('Bearer')
    const wrong = await fetch(`${emu.apiUrl}/contacts`, { headers: { Authorization: 'Bearer nope' } })
    expect(wrong.status).toBe(401)
    const ok = await fetch(`${emu.apiUrl}/WhoAmI`, { headers: { Authorization: `Bearer ${token}` } })
    expect(ok.status).toBe(200)
    const who = (await ok.json()) as { UserId: string; BusinessUnitId: string; OrganizationId: string }
    expect(who.UserId).toMatch(/^[0-9a-f-]{36}$/)
  })
})

describe('CRUD', () => {
  test('POST returns 204 with OData-EntityId; return=representation gives 201 and the row', async () => {
    const r = await c.post('contacts', { firstname: 'Ann', lastname: 'Lee', emailaddress1: 'ann@crud.test' })
    expect(r.status).toBe(204)
    expect(r.headers.get('odata-entityid')).toMatch(new RegExp(`^${emu.apiUrl}/contacts\\([0-9a-f-]{36}\\)$`))
    const rep = await c.post('accounts?$select=name', { name: 'Contoso' }, { Prefer: 'return=representation' })
    expect(rep.status).toBe(201)
    expect(rep.json.name).toBe('Contoso')
    expect(rep.json['@odata.etag']).toMatch(/^W\/"\d+"$/)
    expect(rep.json['@odata.context']).toContain('$metadata#accounts(name)/$entity')
  })

  test.each([
    ['contacts', { firstname: 'T', lastname: 'One' }, { jobtitle: 'CTO' }],
    ['accounts', { name: 'A1' }, { telephone1: '123' }],
    ['emails', { subject: 'Hello' }, { description: '<p>body</p>' }],
    ['appointments', { subject: 'Meet', scheduledstart: '2026-12-01T10:00:00Z', scheduledend: '2026-12-01T11:00:00Z' }, { location: 'Room 1' }],
    ['tasks', { subject: 'Do it', scheduledend: '2026-12-02T00:00:00Z' }, { percentcomplete: 50 }],
    ['queues', { name: 'Support', emailaddress: 'support@contoso.test' }, { description: 'q' }],
  ])('create, read, update and delete %s', async (set, create, update) => {
    const r = await c.post(set, create)
    expect(r.status).toBe(204)
    const id = idFrom(r)
    const got = await c.get(`${set}(${id})`)
    expect(got.status).toBe(200)
    for (const [k, v] of Object.entries(create)) expect(got.json[k]).toBe(v)
    const p = await c.patch(`${set}(${id})`, update, { Prefer: 'return=representation' })
    expect(p.status).toBe(200)
    for (const [k, v] of Object.entries(update)) expect(p.json[k]).toBe(v)
    expect(Number(/\d+/.exec(p.json['@odata.etag'])?.[0])).toBeGreaterThan(Number(/\d+/.exec(got.json['@odata.etag'])?.[0]))
    expect((await c.patch(`${set}(${id})`, update)).status).toBe(204)
    expect((await c.del(`${set}(${id})`)).status).toBe(204)
    const gone = await c.get(`${set}(${id})`)
    expect(gone.status).toBe(404)
    expect(gone.json.error.code).toBe('0x80040217')
    expect(gone.json.error.message).toContain('Does Not Exist')
  })

  test('computed columns: fullname, createdon, ownerid, default state', async () => {
    const r = await c.post('contacts', { firstname: 'Zoe', lastname: 'Quinn' }, { Prefer: 'return=representation' })
    expect(r.json.fullname).toBe('Zoe Quinn')
    expect(r.json.statecode).toBe(0)
    expect(r.json.statuscode).toBe(1)
    expect(r.json._ownerid_value).toMatch(/^[0-9a-f-]{36}$/)
    expect(r.json.createdon).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/)
  })
})

describe('queries', () => {
  beforeAll(async () => {
    for (let i = 0; i < 12; i++) {
      await c.post('contacts', { firstname: `Q${String(i).padStart(2, '0')}`, lastname: i % 2 ? 'Odd' : 'Even', emailaddress1: `q${i}@query.test`, department: 'query' })
    }
  })

  test('$filter, $select, $orderby, $top, $count', async () => {
    const r = await c.get("contacts?$select=firstname,lastname&$filter=department eq 'query' and lastname eq 'Odd'&$orderby=firstname desc&$top=3&$count=true")
    expect(r.status).toBe(200)
    expect(r.json['@odata.count']).toBe(6)
    expect(r.json.value.map((v: { firstname: string }) => v.firstname)).toEqual(['Q11', 'Q09', 'Q07'])
    expect(Object.keys(r.json.value[0]).sort()).toEqual(['@odata.etag', 'contactid', 'firstname', 'lastname'])
    expect(r.json['@odata.nextLink']).toBeUndefined()
  })

  test('Microsoft.Dynamics.CRM.In over HTTP', async () => {
    const f = encodeURIComponent("Microsoft.Dynamics.CRM.In(PropertyName='emailaddress1',PropertyValues=['q1@query.test','Q3@query.test','none@x.test'])")
    const r = await c.get(`contacts?$select=firstname&$filter=${f}&$orderby=firstname`)
    expect(r.json.value.map((v: { firstname: string }) => v.firstname)).toEqual(['Q01', 'Q03'])
  })

  test('paging with odata.maxpagesize follows @odata.nextLink with a paging-cookie $skiptoken', async () => {
    const seen: string[] = []
    let r = await c.get("contacts?$select=firstname&$filter=department eq 'query'&$orderby=firstname", { Prefer: 'odata.maxpagesize=5' })
    expect(r.headers.get('preference-applied')).toBe('odata.maxpagesize=5')
    let pages = 0
    for (;;) {
      pages++
      seen.push(...r.json.value.map((v: { firstname: string }) => v.firstname))
      const next = r.json['@odata.nextLink'] as string | undefined
      if (!next) break
      expect(Object.keys(r.json).at(-1)).toBe('@odata.nextLink')
      expect(decodeURIComponent(new URL(next).searchParams.get('$skiptoken') ?? '')).toMatch(/^<cookie pagenumber="\d+" pagingcookie=".*" istracking="False" \/>$/)
      r = await c.get(next, { Prefer: 'odata.maxpagesize=5' })
    }
    expect(pages).toBe(3)
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => `Q${String(i).padStart(2, '0')}`))
  })

  test('$expand single-valued lookups with nested $select', async () => {
    const acc = idFrom(await c.post('accounts', { name: 'Fabrikam' }))
    const con = idFrom(await c.post('contacts', { lastname: 'Child', 'parentcustomerid_account@odata.bind': `/accounts(${acc})` }))
    const r = await c.get(`contacts(${con})?$select=lastname,_parentcustomerid_value&$expand=parentcustomerid_account($select=name)`)
    expect(r.json._parentcustomerid_value).toBe(acc)
    expect(r.json.parentcustomerid_account).toMatchObject({ name: 'Fabrikam', accountid: acc })
    const bad = await c.get('contacts?$expand=nope')
    expect(bad.status).toBe(400)
    const nested = await c.get('contacts?$expand=parentcustomerid_account($expand=primarycontactid)')
    expect(nested.status).toBe(400)
  })

  test('unsupported and malformed options give Dataverse-style 400s', async () => {
    for (const q of ['contacts?$skip=1', 'contacts?$select=nope', 'contacts?$orderby=firstname sideways', 'contacts?$top=-1', 'contacts?$filter=firstname eq', 'contacts?$skiptoken=garbage', 'contacts?$apply=x']) {
      const r = await c.get(q)
      expect(r.status, q).toBe(400)
      expect(r.json.error.code, q).toMatch(/^0x[0-9a-f]{8}$/)
      expect(r.json.error.message.length, q).toBeGreaterThan(5)
    }
    expect((await c.get('nosuchset')).status).toBe(404)
  })
})

describe('writes: validation, concurrency, upsert, alternate keys', () => {
  test('bad bodies are 400 naming the field, never a crash', async () => {
    const cases: Array<[unknown, string]> = [
      [{ nosuch: 1 }, "'nosuch'"],
      [{ firstname: 5 }, "'firstname'"],
      [{ birthdate: 'not a date' }, "'birthdate'"],
      [{ _ownerid_value: 'x' }, '_ownerid_value'],
      [{ 'regardingobjectid_contact@odata.bind': '/contacts(1)' }, 'regardingobjectid_contact'],
      [[1, 2], 'JSON object'],
    ]
    for (const [body, needle] of cases) {
      const r = await c.post('contacts', body)
      expect(r.status, JSON.stringify(body)).toBe(400)
      expect(r.json.error.message).toContain(needle)
    }
    const raw = await c.request('POST', 'contacts', { raw: '{not json', headers: { 'Content-Type': 'application/json' } })
    expect(raw.status).toBe(400)
    expect(raw.json.error.message).toContain('not valid JSON')
    const badKey = await c.get("contacts(fullname='x')")
    expect(badKey.status).toBe(400)
    const badState = await c.post('emails', { subject: 's', statecode: 0, statuscode: 3 })
    expect(badState.status).toBe(400)
  })

  test('If-Match mismatch → 412 0x80060882; If-None-Match → 304', async () => {
    const r = await c.post('contacts', { lastname: 'Etag' }, { Prefer: 'return=representation' })
    const id = r.json.contactid as string
    const etag = r.json['@odata.etag'] as string
    const notModified = await c.get(`contacts(${id})`, { 'If-None-Match': etag })
    expect(notModified.status).toBe(304)
    expect((await c.get(`contacts(${id})`, { 'If-None-Match': 'null' })).status).toBe(200)
    const ok = await c.patch(`contacts(${id})`, { jobtitle: 'a' }, { 'If-Match': etag })
    expect(ok.status).toBe(204)
    const stale = await c.patch(`contacts(${id})`, { jobtitle: 'b' }, { 'If-Match': etag })
    expect(stale.status).toBe(412)
    expect(stale.json.error.code).toBe('0x80060882')
    expect(stale.json.error.message).toBe("The version of the existing record doesn't match the RowVersion property provided.")
    const staleDelete = await c.del(`contacts(${id})`, { 'If-Match': etag })
    expect(staleDelete.status).toBe(412)
    expect((await c.get(`contacts(${id})`, { 'If-None-Match': etag })).status).toBe(200)
  })

  test('upsert: PATCH creates, If-Match:* only updates, If-None-Match:* only creates', async () => {
    const id = 'a0000000-0000-4000-8000-000000000001'
    const missing = await c.patch(`contacts(${id})`, { lastname: 'Up' }, { 'If-Match': '*' })
    expect(missing.status).toBe(404)
    expect(missing.json.error.message).toBe(`contact With Id = ${id} Does Not Exist`)
    const created = await c.patch(`contacts(${id})`, { lastname: 'Up' }, { Prefer: 'return=representation' })
    expect(created.status).toBe(201)
    expect(created.json.contactid).toBe(id)
    const dup = await c.patch(`contacts(${id})`, { lastname: 'Up2' }, { 'If-None-Match': '*' })
    expect(dup.status).toBe(412)
    expect(dup.json.error.message).toBe('A record with matching key values already exists.')
    const upd = await c.patch(`contacts(${id})`, { lastname: 'Up3' }, { 'If-Match': '*' })
    expect(upd.status).toBe(204)
    expect((await c.get(`contacts(${id})?$select=lastname`)).json.lastname).toBe('Up3')
  })

  test('alternate keys: read and upsert by emailaddress1 and concord_linkid; duplicates rejected', async () => {
    const up = await c.patch("contacts(emailaddress1='alt@key.test')", { lastname: 'Alt' }, { Prefer: 'return=representation' })
    expect(up.status).toBe(201)
    expect(up.json.emailaddress1).toBe('alt@key.test')
    const byKey = await c.get("contacts(emailaddress1='ALT@key.test')?$select=lastname")
    expect(byKey.json.lastname).toBe('Alt')
    const again = await c.patch("contacts(emailaddress1='alt@key.test')", { jobtitle: 'x' })
    expect(again.status).toBe(204)
    expect(idFrom(again)).toBe(up.json.contactid)
    const dup = await c.post('contacts', { lastname: 'Dup', emailaddress1: 'alt@key.test' })
    expect(dup.status).toBe(412)
    const link = await c.patch("emails(concord_linkid='link-1')", { subject: 'linked' })
    expect(link.status).toBe(204)
    expect((await c.get("emails(concord_linkid='link-1')?$select=subject")).json.subject).toBe('linked')
    const quoted = await c.patch("contacts(concord_linkid='it''s (1)')", { lastname: 'Q' })
    expect(quoted.status).toBe(204)
    expect((await c.get("contacts(concord_linkid='it''s (1)')?$select=concord_linkid")).json.concord_linkid).toBe("it's (1)")
  })
})

describe('metadata', () => {
  test('$metadata is CSDL describing entity sets, navigation and change tracking', async () => {
    const r = await c.get('$metadata?annotations=true')
    expect(r.status).toBe(200)
    expect(r.text).toContain('<EntitySet Name="contacts" EntityType="mscrm.contact">')
    expect(r.text).toContain('NavigationProperty Name="regardingobjectid_contact_email"')
    expect(r.text).toContain('NavigationProperty Name="email_activity_parties"')
    expect(r.text).toContain('Org.OData.Capabilities.V1.ChangeTracking')
  })
})

describe('hostile input', () => {
  test('odd paths, methods, encodings and bodies are answered with 4xx JSON errors', async () => {
    const cases: Array<[string, string, string | undefined]> = [
      ['GET', 'contacts(%E0%A4%A)', undefined],
      ['GET', 'contacts(not-a-guid)', undefined],
      ['GET', "contacts(emailaddress1='unterminated)", undefined],
      ['GET', 'contacts(00000000-0000-0000-0000-000000000001)/nosuchnav/deeper', undefined],
      ['PUT', 'contacts(00000000-0000-0000-0000-000000000001)', '{}'],
      ['DELETE', 'contacts', undefined],
      ['POST', 'contacts', '[]'],
      ['POST', 'contacts', 'null'],
      ['POST', 'contacts', '"string"'],
      ['POST', 'contacts', '{"lastname":"x","statecode":"0"}'],
      ['POST', 'contacts', JSON.stringify({ lastname: 'x', birthdate: '2024-99-99' })],
      ['POST', 'contacts', `${'['.repeat(10_000)}${']'.repeat(10_000)}`],
      ['GET', `contacts?$filter=${encodeURIComponent('('.repeat(3_000))}`, undefined],
      ['GET', `contacts?$filter=${encodeURIComponent('('.repeat(20_000))}`, undefined],
      ['GET', `contacts?$select=${'a,'.repeat(5000)}`, undefined],
      ['GET', 'contacts?$orderby=', undefined],
      ['GET', 'contacts?$top=99999999999', undefined],
      ['GET', 'contacts?$deltatoken=1!99/99/2020 00:00:00', undefined],
      ['POST', 'WhoAmI', '{}'],
      ['GET', 'contacts?$select=constructor', undefined],
      ['GET', 'contacts?$filter=__proto__ eq null', undefined],
      ['GET', 'contacts?$orderby=toString', undefined],
      ['POST', 'contacts', '{"__proto__":{"x":1},"lastname":"p"}'],
      ['POST', 'contacts', '{"constructor":"x"}'],
      ['POST', 'GrantAccess', '{"Target":{"@odata.type":"Microsoft.Dynamics.CRM.nosuch"}}'],
    ]
    for (const [method, path, body] of cases) {
      const r = await c.request(method, path, body === undefined ? {} : { raw: body, headers: { 'Content-Type': 'application/json' } })
      expect(r.status, `${method} ${path.slice(0, 60)} → ${r.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400)
      expect(r.status, `${method} ${path.slice(0, 60)}`).toBeLessThan(500)
      expect(r.json?.error?.code, `${method} ${path.slice(0, 60)} → ${r.status} ${r.text.slice(0, 200)}`).toMatch(/^0x[0-9a-f]{8}$/)
    }
    const maxPage = await c.get('contacts?$select=lastname', { Prefer: 'odata.maxpagesize=abc' })
    expect(maxPage.status).toBe(400)
    // still healthy afterwards
    expect((await c.get('WhoAmI')).status).toBe(200)
  })
})
