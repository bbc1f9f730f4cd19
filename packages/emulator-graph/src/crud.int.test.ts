import { afterAll, beforeAll, expect, test } from 'vitest'
import type { GraphEmulator } from './index.js'
import { A, B, type Client, setup } from './test/helpers.js'

let em: GraphEmulator
let c: Client

beforeAll(async () => {
  ;({ em, c } = await setup())
})
afterAll(async () => {
  await em.close()
})

const PS = 'String {66f5a359-4659-4830-9070-00040ec6ac6e} Name CrmId'

test('mail folders: well-known names, user folders, child folders', async () => {
  const inbox = await c.get(`users/${A}/mailFolders/inbox`)
  expect(inbox.status).toBe(200)
  expect(inbox.body.displayName).toBe('Inbox')
  for (const wk of ['sentitems', 'drafts', 'deleteditems']) expect((await c.get(`users/${A}/mailFolders('${wk}')`)).status).toBe(200)
  const created = await c.post(`users/${A}/mailFolders`, { displayName: 'Projects' })
  expect(created.status).toBe(201)
  const id = created.body.id as string
  expect((await c.post(`users/${A}/mailFolders`, { displayName: 'Projects' })).status).toBe(409)
  const child = await c.post(`users/${A}/mailFolders/${id}/childFolders`, { displayName: 'Alpha' })
  expect(child.status).toBe(201)
  expect(child.body.parentFolderId).toBe(id)
  const renamed = await c.patch(`users/${A}/mailFolders/${id}`, { displayName: 'Projects 2' })
  expect(renamed.body.displayName).toBe('Projects 2')
  const list = await c.get(`users/${A}/mailFolders?$top=50`)
  expect(list.body.value.map((f: { displayName: string }) => f.displayName)).toContain('Projects 2')
  expect((await c.del(`users/${A}/mailFolders/inbox`)).status).toBe(403)
  expect((await c.del(`users/${A}/mailFolders/${id}`)).status).toBe(204)
  expect((await c.get(`users/${A}/mailFolders/${id}`)).status).toBe(404)
})

test('messages: create, read, list, update with etag change, delete', async () => {
  const created = await c.post(`users/${A}/mailFolders/inbox/messages`, {
    subject: 'Hello',
    body: { contentType: 'html', content: '<p>Hi <b>there</b></p>' },
    toRecipients: [{ emailAddress: { address: 'x@fabrikam.test', name: 'X' } }],
    internetMessageId: '<m1@fabrikam.test>',
    categories: ['Blue category'],
    singleValueExtendedProperties: [{ id: PS, value: 'crm-1' }],
  })
  expect(created.status).toBe(201)
  const m = created.body
  expect(m['@odata.etag']).toBe(`W/"${m.changeKey}"`)
  expect(m.bodyPreview).toBe('Hi there')
  expect(m.internetMessageId).toBe('<m1@fabrikam.test>')
  expect(m.singleValueExtendedProperties).toBeUndefined()
  const got = await c.get(`users/${A}/messages/${m.id}`)
  expect(got.body.subject).toBe('Hello')
  expect(got.body.parentFolderId).toBe((await c.get(`users/${A}/mailFolders/inbox`)).body.id)
  const sel = await c.get(`users/${A}/messages/${m.id}?$select=subject`)
  expect(Object.keys(sel.body).sort()).toEqual(['@odata.context', '@odata.etag', 'id', 'subject'])
  const upd = await c.patch(`users/${A}/messages/${m.id}`, { isRead: true })
  expect(upd.status).toBe(200)
  expect(upd.body.isRead).toBe(true)
  expect(upd.body.changeKey).not.toBe(m.changeKey)
  const byFilter = await c.get(`users/${A}/messages?$filter=internetMessageId eq '<m1@fabrikam.test>'`)
  expect(byFilter.body.value).toHaveLength(1)
  const byCat = await c.get(`users/${A}/messages?$filter=categories/any(x:x eq 'blue category')`)
  expect(byCat.body.value.map((x: { id: string }) => x.id)).toContain(m.id)
  expect((await c.del(`users/${A}/messages/${m.id}`)).status).toBe(204)
  const gone = await c.get(`users/${A}/messages/${m.id}`)
  expect(gone.status).toBe(404)
  expect(gone.body.error.code).toBe('ErrorItemNotFound')
})

test('If-Match with a stale etag gives 412 ErrorIrresolvableConflict', async () => {
  const m = (await c.post(`users/${A}/messages`, { subject: 'draft' })).body
  expect(m.isDraft).toBe(true)
  const ok = await c.patch(`users/${A}/messages/${m.id}`, { subject: 'v2' }, { 'if-match': m['@odata.etag'] })
  expect(ok.status).toBe(200)
  const stale = await c.patch(`users/${A}/messages/${m.id}`, { subject: 'v3' }, { 'if-match': m['@odata.etag'] })
  expect(stale.status).toBe(412)
  expect(stale.body.error.code).toBe('ErrorIrresolvableConflict')
  expect(stale.body.error.message).toBe(
    'The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.',
  )
  const staleDelete = await c.del(`users/${A}/messages/${m.id}`, { 'if-match': m['@odata.etag'] })
  expect(staleDelete.status).toBe(412)
  expect((await c.del(`users/${A}/messages/${m.id}`, { 'if-match': ok.body['@odata.etag'] })).status).toBe(204)
})

test('move changes the id unless Prefer IdType="ImmutableId"; translateExchangeIds maps both', async () => {
  const m = (await c.post(`users/${A}/mailFolders/inbox/messages`, { subject: 'to move' })).body
  const moved = await c.post(`users/${A}/messages/${m.id}/move`, { destinationId: 'archive' })
  expect(moved.status).toBe(201)
  expect(moved.body.id).not.toBe(m.id)
  expect((await c.get(`users/${A}/messages/${m.id}`)).status).toBe(404)
  const imm = await c.get(`users/${A}/messages/${moved.body.id}`, { prefer: 'IdType="ImmutableId"' })
  const immutableId = imm.body.id as string
  expect(immutableId).not.toBe(moved.body.id)
  const moved2 = await c.post(`users/${A}/messages/${immutableId}/move`, { destinationId: 'inbox' }, { prefer: 'IdType="ImmutableId"' })
  expect(moved2.body.id).toBe(immutableId)
  expect(moved2.body.parentFolderId).toBe((await c.get(`users/${A}/mailFolders/inbox`)).body.id)
  const restNow = (await c.get(`users/${A}/messages/${immutableId}`)).body.id as string
  const tr = await c.post(`users/${A}/translateExchangeIds`, { inputIds: [restNow, 'AAMkAbogus'], sourceIdType: 'restId', targetIdType: 'restImmutableEntryId' })
  expect(tr.status).toBe(200)
  expect(tr.body.value[0]).toEqual({ targetId: immutableId, sourceId: restNow })
  expect(tr.body.value[1].errorDetails.code).toBe('ErrorInvalidIdMalformed')
  const back = await c.post(`users/${A}/translateExchangeIds`, { inputIds: [immutableId], sourceIdType: 'restImmutableEntryId', targetIdType: 'restId' })
  expect(back.body.value[0].targetId).toBe(restNow)
  // ids are case-sensitive
  expect((await c.get(`users/${A}/messages/${immutableId.toLowerCase()}`)).status).toBe(404)
})

test('single-value extended properties: stored, not echoed, $expand with $filter, $filter Any()', async () => {
  const e1 = await c.post(`users/${A}/events`, {
    subject: 'linked',
    start: { dateTime: '2030-01-01T10:00:00', timeZone: 'UTC' },
    end: { dateTime: '2030-01-01T11:00:00', timeZone: 'UTC' },
    singleValueExtendedProperties: [{ id: PS, value: 'CRM-42' }],
  })
  expect(e1.status).toBe(201)
  expect(e1.body.singleValueExtendedProperties).toBeUndefined()
  const plain = await c.get(`users/${A}/events/${e1.body.id}`)
  expect(plain.body.singleValueExtendedProperties).toBeUndefined()
  const expanded = await c.get(`users/${A}/events/${e1.body.id}?$expand=singleValueExtendedProperties($filter=id eq '${PS}')`)
  expect(expanded.body.singleValueExtendedProperties).toEqual([{ id: PS, value: 'CRM-42' }])
  const lowerGuid = PS.replace('66f5a359', '66F5A359').replace('String', 'string')
  const viaCase = await c.get(`users/${A}/events?$filter=singleValueExtendedProperties/Any(ep: ep/id eq '${lowerGuid}' and ep/value eq 'crm-42')`)
  expect(viaCase.body.value.map((x: { id: string }) => x.id)).toEqual([e1.body.id])
  const wrongName = await c.get(`users/${A}/events?$filter=singleValueExtendedProperties/Any(ep: ep/id eq '${PS.replace('CrmId', 'crmid')}' and ep/value eq 'CRM-42')`)
  expect(wrongName.body.value).toEqual([])
  await c.patch(`users/${A}/events/${e1.body.id}`, { singleValueExtendedProperties: [{ id: PS, value: 'CRM-43' }] })
  const after = await c.get(`users/${A}/events/${e1.body.id}?$expand=singleValueExtendedProperties($filter=id eq '${PS}')`)
  expect(after.body.singleValueExtendedProperties[0].value).toBe('CRM-43')
})

test('events: transactionId deduplicates creates; calendarView needs a window', async () => {
  const body = {
    subject: 'Meeting',
    transactionId: 'tx-123',
    start: { dateTime: '2030-02-01T09:00:00', timeZone: 'UTC' },
    end: { dateTime: '2030-02-01T10:00:00', timeZone: 'UTC' },
    attendees: [{ type: 'required', emailAddress: { address: 'y@fabrikam.test' } }],
  }
  const first = await c.post(`users/${A}/calendar/events`, body)
  const second = await c.post(`users/${A}/calendar/events`, body)
  expect(first.status).toBe(201)
  expect(second.body.id).toBe(first.body.id)
  expect(first.body.start).toEqual({ dateTime: '2030-02-01T09:00:00.0000000', timeZone: 'UTC' })
  const changeTx = await c.patch(`users/${A}/events/${first.body.id}`, { transactionId: 'other' })
  expect(changeTx.status).toBe(400)
  const noWindow = await c.get(`users/${A}/calendarView`)
  expect(noWindow.status).toBe(400)
  expect(noWindow.body.error.code).toBe('ErrorInvalidParameter')
  const view = await c.get(`users/${A}/calendarView?startDateTime=2030-02-01T00:00:00Z&endDateTime=2030-02-02T00:00:00Z`)
  expect(view.body.value.map((e: { id: string }) => e.id)).toEqual([first.body.id])
  const cal = await c.post(`users/${A}/calendars`, { name: 'Second' })
  const inCal = await c.post(`users/${A}/calendars/${cal.body.id}/events`, { subject: 'x', start: body.start, end: body.end })
  expect((await c.get(`users/${A}/calendars/${cal.body.id}/events/${inCal.body.id}`)).status).toBe(200)
  expect((await c.get(`users/${A}/calendar/events/${inCal.body.id}`)).status).toBe(404)
  const bad = await c.post(`users/${A}/events`, { subject: 'bad', start: { dateTime: 'tomorrow' }, end: body.end })
  expect(bad.status).toBe(400)
})

test('contacts and contact folders', async () => {
  const ct = await c.post(`users/${A}/contacts`, { givenName: 'Ada', surname: 'Lovelace', emailAddresses: [{ address: 'ada@x.test', name: 'Ada' }] })
  expect(ct.status).toBe(201)
  expect(ct.body.displayName).toBe('Ada Lovelace')
  const folder = await c.post(`users/${A}/contactFolders`, { displayName: 'CRM' })
  const inF = await c.post(`users/${A}/contactFolders/${folder.body.id}/contacts`, { displayName: 'Bob' })
  expect(inF.body.parentFolderId).toBe(folder.body.id)
  const upd = await c.patch(`users/${A}/contacts/${ct.body.id}`, { jobTitle: 'Engineer' })
  expect(upd.body.jobTitle).toBe('Engineer')
  const list = await c.get(`users/${A}/contactFolders/${folder.body.id}/contacts`)
  expect(list.body.value).toHaveLength(1)
  expect((await c.del(`users/${A}/contacts/${ct.body.id}`)).status).toBe(204)
})

test('To Do lists, tasks and linkedResources', async () => {
  const list = await c.post(`users/${A}/todo/lists`, { displayName: 'CRM tasks' })
  expect(list.status).toBe(201)
  const lists = await c.get(`users/${A}/todo/lists`)
  expect(lists.body.value.find((l: { wellknownListName: string }) => l.wellknownListName === 'defaultList')).toBeDefined()
  const t = await c.post(`users/${A}/todo/lists/${list.body.id}/tasks`, {
    title: 'Call back',
    importance: 'high',
    dueDateTime: { dateTime: '2030-03-01T00:00:00', timeZone: 'UTC' },
    linkedResources: [{ applicationName: 'Concord', displayName: 'CRM task', externalId: 'act-1', webUrl: 'https://crm.test/act-1' }],
  })
  expect(t.status).toBe(201)
  expect(t.body.status).toBe('notStarted')
  const lrs = await c.get(`users/${A}/todo/lists/${list.body.id}/tasks/${t.body.id}/linkedResources`)
  expect(lrs.body.value[0].externalId).toBe('act-1')
  const lr2 = await c.post(`users/${A}/todo/lists/${list.body.id}/tasks/${t.body.id}/linkedResources`, { applicationName: 'Other', externalId: 'ext-2' })
  expect(lr2.status).toBe(201)
  const expanded = await c.get(`users/${A}/todo/lists/${list.body.id}/tasks/${t.body.id}?$expand=linkedResources`)
  expect(expanded.body.linkedResources).toHaveLength(2)
  const done = await c.patch(`users/${A}/todo/lists/${list.body.id}/tasks/${t.body.id}`, { status: 'completed' })
  expect(done.body.completedDateTime).toBeDefined()
  expect((await c.del(`users/${A}/todo/lists/${list.body.id}/tasks/${t.body.id}/linkedResources/${lr2.body.id}`)).status).toBe(204)
  expect((await c.del(`users/${A}/todo/lists/${list.body.id}/tasks/${t.body.id}`)).status).toBe(204)
  const badStatus = await c.post(`users/${A}/todo/lists/${list.body.id}/tasks`, { title: 'x', status: 'done' })
  expect(badStatus.status).toBe(400)
  expect(badStatus.body.error.message).toContain('status')
})

test('master categories', async () => {
  const before = await c.get(`users/${B}/outlook/masterCategories`)
  expect(before.body.value.length).toBeGreaterThan(0)
  const cat = await c.post(`users/${B}/outlook/masterCategories`, { displayName: 'Tracked to Dynamics 365', color: 'preset9' })
  expect(cat.status).toBe(201)
  expect((await c.post(`users/${B}/outlook/masterCategories`, { displayName: 'tracked to dynamics 365' })).status).toBe(409)
  const m = await c.post(`users/${B}/messages`, { subject: 's', categories: ['Tracked to Dynamics 365'] })
  const untrack = await c.patch(`users/${B}/messages/${m.body.id}`, { categories: [] })
  expect(untrack.body.categories).toEqual([])
  expect((await c.del(`users/${B}/outlook/masterCategories/${cat.body.id}`)).status).toBe(204)
})

test('list paging with $top and nextLink', async () => {
  const seeded = em.control.seed(B, 'message', Array.from({ length: 25 }, (_, i) => ({ subject: `s${i}` })), 'sentitems')
  expect(seeded).toHaveLength(25)
  const seen: string[] = []
  let url: string | undefined = `users/${B}/mailFolders/sentitems/messages?$select=subject`
  for (let i = 0; i < 10 && url; i++) {
    const r = await c.get(url)
    seen.push(...r.body.value.map((m: { subject: string }) => m.subject))
    url = r.body['@odata.nextLink']
  }
  expect(seen).toHaveLength(25)
  expect(new Set(seen).size).toBe(25)
  const top = await c.get(`users/${B}/mailFolders/sentitems/messages?$top=20`)
  expect(top.body.value).toHaveLength(20)
})

test('sendMail and draft send: Sent Items copy, delivery to emulated recipients with the same internetMessageId', async () => {
  const r = await c.post(`users/${A}/sendMail`, {
    message: { subject: 'Proposal', toRecipients: [{ emailAddress: { address: B } }, { emailAddress: { address: 'ext@fabrikam.test' } }] },
  })
  expect(r.status).toBe(202)
  const sent = await c.get(`users/${A}/mailFolders/sentitems/messages?$filter=subject eq 'Proposal'`)
  expect(sent.body.value).toHaveLength(1)
  const got = await c.get(`users/${B}/mailFolders/inbox/messages?$filter=subject eq 'Proposal'`)
  expect(got.body.value).toHaveLength(1)
  expect(got.body.value[0].internetMessageId).toBe(sent.body.value[0].internetMessageId)
  expect(got.body.value[0].from.emailAddress.address).toBe(A)
  expect((await c.post(`users/${A}/sendMail`, { message: { subject: 'nobody' } })).status).toBe(400)

  const draft = await c.post(`users/${A}/messages`, { subject: 'Draft to send', toRecipients: [{ emailAddress: { address: B } }] })
  expect((await c.post(`users/${A}/messages/${draft.body.id}/send`, undefined)).status).toBe(202)
  expect((await c.get(`users/${A}/messages/${draft.body.id}`)).status).toBe(404)
  const sent2 = await c.get(`users/${A}/mailFolders/sentitems/messages?$filter=subject eq 'Draft to send'`)
  expect(sent2.body.value[0].isDraft).toBe(false)
  expect((await c.get(`users/${B}/mailFolders/inbox/messages?$filter=subject eq 'Draft to send'`)).body.value).toHaveLength(1)
})

test('delta honours the $expand of its first request on every page (extended properties, linkedResources)', async () => {
  const folder = await c.post(`users/${A}/mailFolders`, { displayName: 'Expand delta' })
  for (let i = 0; i < 3; i++) {
    await c.post(`users/${A}/mailFolders/${folder.body.id}/messages`, { subject: `m${i}`, singleValueExtendedProperties: [{ id: PS, value: `CRM-${i}` }] })
  }
  const expand = encodeURIComponent(`singleValueExtendedProperties($filter=id eq '${PS}')`)
  let page = await c.get(`users/${A}/mailFolders/${folder.body.id}/messages/delta?$expand=${expand}`, { Prefer: 'odata.maxpagesize=2' })
  const seen: unknown[] = []
  for (;;) {
    expect(page.status).toBe(200)
    for (const m of page.body.value as Array<{ singleValueExtendedProperties?: unknown }>) seen.push(m.singleValueExtendedProperties)
    const next = page.body['@odata.nextLink'] as string | undefined
    if (!next) break
    page = await c.get(next.slice(next.indexOf('/v1.0/') + '/v1.0/'.length))
  }
  expect(seen).toHaveLength(3)
  for (const props of seen) expect(props).toEqual([{ id: PS, value: expect.stringMatching(/^CRM-\d$/) }])
  expect((await c.get(`users/${A}/mailFolders/${folder.body.id}/messages/delta?$expand=bogus`)).status).toBe(400)
})

test('without immutable ids, an item moved out and back within one round is reported removed under its old id', async () => {
  em.control.reset()
  em.control.seed(A, 'message', [{ subject: 'round trip' }], 'inbox')
  const first = await c.get(`users/${A}/mailFolders/inbox/messages/delta`)
  const oldId = (first.body.value as Array<{ id: string }>)[0]!.id
  const deltaLink = first.body['@odata.deltaLink'] as string
  em.control.moveItem(A, oldId, 'archive')
  const archived = (await c.get(`users/${A}/mailFolders/archive/messages?$select=id`)).body.value as Array<{ id: string }>
  em.control.moveItem(A, archived[0]!.id, 'inbox')
  const second = await c.get(deltaLink.slice(deltaLink.indexOf('/v1.0/') + '/v1.0/'.length))
  const value = second.body.value as Array<{ id: string; '@removed'?: unknown }>
  expect(value.filter((v) => v['@removed']).map((v) => v.id)).toEqual([oldId])
  expect(value.filter((v) => !v['@removed']).map((v) => v.id)).not.toContain(oldId)
})
