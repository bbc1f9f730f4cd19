import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { correlateEmail, getAutoTrackOption, setRegarding, shouldTrack, stopTracking, trackingLookups, trackItem, type CrmAdapter } from './index.js'
import { startCrmWorld, type CrmWorld } from '../test/harness.js'

let w: CrmWorld
let contactId: string
let accountId: string
beforeEach(async () => {
  w = await startCrmWorld({ kinds: ['email', 'appointment', 'task'] })
  contactId = w.emu.admin.createRecord('contacts', { firstname: 'Ann', lastname: 'Lee', emailaddress1: 'ann@customer.test' }, w.alice.systemuserid).id
  accountId = w.emu.admin.createRecord('accounts', { name: 'Contoso Ltd', emailaddress1: 'info@contoso-ltd.test' }, w.alice.systemuserid).id
})
afterEach(async () => {
  await w.close()
})

const guid = (nativeId: string) => nativeId.slice(nativeId.indexOf('(') + 1, -1)
const email = (n: number, extra: Record<string, unknown> = {}) => ({
  subject: `Offer ${n}`,
  body: 'hi',
  from: { address: 'ann@customer.test' },
  to: [{ address: 'alice@contoso.test' }],
  internetMessageId: `<offer-${n}@customer.test>`,
  direction: 'incoming',
  ...extra,
})

describe('Track, Set Regarding, Stop tracking', () => {
  test('Track creates the CRM activity once (idempotent on the Concord id and on the Message-ID), with regarding', async () => {
    const first = await trackItem(w.adapter, { kind: 'email', concordId: 'mail-1', fields: email(1), regarding: { table: 'contact', id: contactId } })
    expect(first.created).toBe(true)
    const again = await trackItem(w.adapter, { kind: 'email', concordId: 'mail-1', fields: email(1) })
    expect(again).toMatchObject({ nativeId: first.nativeId, created: false })
    // Bob tracks the same message from his mailbox: the CRM keeps one e-mail activity.
    const bob = await trackItem(w.adapterFor(w.bob), { kind: 'email', concordId: 'mail-1-bob', fields: email(1) })
    expect(bob).toMatchObject({ nativeId: first.nativeId, created: false })
    const rows = (await w.api('GET', `emails?$filter=${encodeURIComponent("messageid eq '<offer-1@customer.test>'")}`)).json.value
    expect(rows).toHaveLength(1)
    const record = await w.adapter.getRecord(first.nativeId)
    expect(record?.fields.regarding).toEqual({ table: 'contact', id: contactId, name: 'Ann Lee' })
    // Parties were resolved by address: the sender is the contact, the recipient the user.
    const parties = (await w.api('GET', `emails(${guid(first.nativeId)})/email_activity_parties`)).json.value
    expect(parties.map((p: Record<string, unknown>) => [p.participationtypemask, p._partyid_value, p.addressused])).toEqual([
      [1, contactId, 'ann@customer.test'],
      [2, w.alice.systemuserid, 'alice@contoso.test'],
    ])
  })

  test('unresolved addresses stay plain addressused parties', async () => {
    const t = await trackItem(w.adapter, { kind: 'email', concordId: 'mail-x', fields: email(2, { from: { address: 'stranger@nowhere.test' } }) })
    const parties = (await w.api('GET', `emails(${guid(t.nativeId)})/email_activity_parties`)).json.value
    expect(parties[0]).toMatchObject({ participationtypemask: 1, _partyid_value: null, addressused: 'stranger@nowhere.test' })
    expect((await w.adapter.getRecord(t.nativeId))?.fields.from).toEqual({ address: 'stranger@nowhere.test' })
  })

  test('Set Regarding links an appointment or task to a contact or account, and clears it', async () => {
    const t = await trackItem(w.adapter, { kind: 'task', concordId: 'task-1', fields: { subject: 'Call back' } })
    await setRegarding(w.adapter, t.nativeId, { table: 'account', id: accountId })
    expect((await w.adapter.getRecord(t.nativeId))?.fields.regarding).toEqual({ table: 'account', id: accountId, name: 'Contoso Ltd' })
    await setRegarding(w.adapter, t.nativeId, null)
    expect((await w.adapter.getRecord(t.nativeId))?.fields.regarding).toBeNull()
    await expect(setRegarding(w.adapter, t.nativeId, { table: 'spaceship', id: accountId })).rejects.toThrow(/spaceship/)
  })

  test('Stop tracking as the owner deletes the CRM copy', async () => {
    const t = await trackItem(w.adapter, { kind: 'appointment', concordId: 'appt-1', fields: { subject: 'Demo', organizer: { address: 'alice@contoso.test' } } })
    expect(await stopTracking(w.adapter, t.nativeId)).toEqual({ action: 'deleted', remoteUnlinked: true })
    expect(await w.adapter.getRecord(t.nativeId)).toBeNull()
  })

  test('Stop tracking as a non-owner only unlinks: the CRM copy stays', async () => {
    const t = await trackItem(w.adapter, { kind: 'email', concordId: 'mail-3', fields: email(3) })
    // Bob may write Alice's e-mail through sharing; he still must not delete it.
    w.emu.admin.share({ table: 'email', id: guid(t.nativeId), userId: w.bob.systemuserid, rights: ['Read', 'Write', 'Delete'] })
    expect(await stopTracking(w.adapterFor(w.bob), t.nativeId)).toEqual({ action: 'unlinked', remoteUnlinked: true })
    const record = await w.adapter.getRecord(t.nativeId)
    expect(record?.fields.subject).toBe('Offer 3')
    expect(record?.concordId).toBeUndefined()
    // Without write access the unlink is local only.
    const t2 = await trackItem(w.adapter, { kind: 'email', concordId: 'mail-4', fields: email(4) })
    expect(await stopTracking(w.adapterFor(w.bob), t2.nativeId)).toEqual({ action: 'unlinked', remoteUnlinked: false })
    expect((await w.adapter.getRecord(t2.nativeId))?.concordId).toBe('mail-4')
  })
})

describe('correlation, in the documented order', () => {
  async function tracked(adapter: CrmAdapter, n: number, extra: Record<string, unknown> = {}) {
    return trackItem(adapter, { kind: 'email', concordId: `corr-${n}`, fields: email(n, extra), regarding: { table: 'contact', id: contactId } })
  }

  test('In-Reply-To', async () => {
    const t = await tracked(w.adapter, 10)
    const r = await correlateEmail(w.adapter, { subject: 'Something else', from: 'x@y.test', inReplyTo: '<offer-10@customer.test>' })
    expect(r).toEqual({ method: 'InReplyTo', code: 3, activityId: t.nativeId, regarding: { table: 'contact', id: contactId, name: 'Ann Lee' } })
  })

  test('tracking token at the end of the subject', async () => {
    const t = await tracked(w.adapter, 11)
    expect((await w.api('PATCH', `emails(${guid(t.nativeId)})`, { trackingtoken: 'CRM:0001005', subject: 'Offer 11 CRM:0001005' })).status).toBe(200)
    const r = await correlateEmail(w.adapter, { subject: 'RE: Offer 11 CRM:0001005', from: 'x@y.test', inReplyTo: '<unknown@x>' })
    expect(r).toMatchObject({ method: 'TrackingToken', code: 4, activityId: t.nativeId })
  })

  test('conversation', async () => {
    const t = await tracked(w.adapter, 12, { conversationId: 'AQHXconv12' })
    const r = await correlateEmail(w.adapter, { subject: 'Different', from: 'x@y.test', conversationId: 'AQHXconv12' })
    expect(r).toMatchObject({ method: 'ConversationIndex', code: 5, activityId: t.nativeId })
  })

  test('smart matching: normalized subject and enough shared addresses', async () => {
    const t = await tracked(w.adapter, 13, { subject: 'Quarterly review', to: [{ address: 'alice@contoso.test' }, { address: 'carol@customer.test' }] })
    const hit = await correlateEmail(w.adapter, { subject: 'RE: Fw: quarterly REVIEW', from: 'carol@customer.test', to: ['ann@customer.test'] })
    expect(hit).toMatchObject({ method: 'SmartMatching', code: 6, activityId: t.nativeId })
    // Same subject, only one shared address: below the default overlap of 2.
    const miss = await correlateEmail(w.adapter, { subject: 'RE: Quarterly review', from: 'ann@customer.test', to: ['zed@else.test'] })
    expect(miss).toEqual({ method: 'None', code: 0 })
  })

  test('the earlier method wins; tracking a correlated e-mail records correlationmethod and regarding', async () => {
    const parent = await tracked(w.adapter, 14, { conversationId: 'conv-14' })
    const r = await correlateEmail(w.adapter, { subject: 'RE: Offer 14', from: 'ann@customer.test', to: ['alice@contoso.test'], inReplyTo: '<offer-14@customer.test>', conversationId: 'conv-14' })
    expect(r.method).toBe('InReplyTo')
    const reply = await trackItem(w.adapter, { kind: 'email', concordId: 'reply-14', fields: email(15, { subject: 'RE: Offer 14', inReplyTo: '<offer-14@customer.test>' }), correlation: r })
    const row = (await w.api('GET', `emails(${guid(reply.nativeId)})?$select=correlationmethod,_correlatedactivityid_value,_parentactivityid_value,_regardingobjectid_value,inreplyto`)).json
    expect(row).toMatchObject({ correlationmethod: 3, _correlatedactivityid_value: guid(parent.nativeId), _parentactivityid_value: guid(parent.nativeId), _regardingobjectid_value: contactId, inreplyto: '<offer-14@customer.test>' })
  })

  test('automatic tracking end to end: option from user settings, lookups from the CRM, decision pure', async () => {
    await tracked(w.adapter, 16)
    const option = await getAutoTrackOption(w.adapter)
    expect(option).toBe('responsesToCrmEmail')
    const header = { sender: 'ann@customer.test', recipients: ['alice@contoso.test'], subject: 'RE: Offer 16' }
    const reply = await correlateEmail(w.adapter, { subject: header.subject, from: header.sender, to: header.recipients, inReplyTo: '<offer-16@customer.test>' })
    const lookups = await trackingLookups(w.adapter, header, reply)
    expect(lookups).toEqual({ senderRecordTypes: ['contact'], respondsToTrackedEmail: true })
    expect(shouldTrack(header, option, lookups).track).toBe(true)
    const cold = await trackingLookups(w.adapter, { ...header, subject: 'New topic' }, await correlateEmail(w.adapter, { subject: 'New topic', from: header.sender }))
    expect(shouldTrack(header, option, cold).track).toBe(false)
    expect(shouldTrack(header, 'fromLeadsContactsAccounts', cold).track).toBe(true)
  })
})
