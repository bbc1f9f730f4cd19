import { asConcordId, asOpId, asVersion, SyncError } from '@concord/engine'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { correlateEmail, setRegarding, shouldTrack, trackingLookups, trackItem, whoAmI } from './index.js'
import { startCrmWorld, type CrmWorld } from '../test/harness.js'

let w: CrmWorld
let leadId: string
let opportunityId: string
let contactId: string
beforeEach(async () => {
  w = await startCrmWorld({ kinds: ['email', 'appointment', 'task'] })
  leadId = w.emu.admin.createRecord('leads', { firstname: 'Lena', lastname: 'Park', companyname: 'Prospect Inc', emailaddress1: 'lena@prospect.test' }, w.alice.systemuserid).id
  contactId = w.emu.admin.createRecord('contacts', { firstname: 'Ann', lastname: 'Lee', emailaddress1: 'ann@customer.test' }, w.alice.systemuserid).id
  opportunityId = w.emu.admin.createRecord('opportunities', { name: 'Sensor rollout', 'customerid_contact@odata.bind': `/contacts(${contactId})` }, w.alice.systemuserid).id
})
afterEach(async () => {
  await w.close()
})

const guid = (nativeId: string) => nativeId.slice(nativeId.indexOf('(') + 1, -1)
const fromLead = (n: number, extra: Record<string, unknown> = {}) => ({
  subject: `Pricing question ${n}`,
  body: 'hello',
  from: { address: 'Lena@Prospect.test' },
  to: [{ address: 'alice@contoso.test' }],
  internetMessageId: `<lead-${n}@prospect.test>`,
  direction: 'incoming',
  ...extra,
})

describe('leads in automatic tracking', () => {
  test('"email messages from leads, contacts and accounts" matches a sender that is a lead (and only an open one)', async () => {
    const header = { sender: 'lena@prospect.test', recipients: ['alice@contoso.test'], subject: 'Pricing question' }
    const none = await correlateEmail(w.adapter, { subject: header.subject, from: header.sender, to: header.recipients })
    const lookups = await trackingLookups(w.adapter, header, none)
    expect(lookups).toEqual({ senderRecordTypes: ['lead'], respondsToTrackedEmail: false })
    expect(shouldTrack(header, 'fromLeadsContactsAccounts', lookups)).toEqual({ track: true, reason: 'sender lena@prospect.test is a CRM lead' })
    expect(shouldTrack(header, 'fromEmailEnabledRecords', lookups).track).toBe(true)
    expect(shouldTrack(header, 'responsesToCrmEmail', lookups).track).toBe(false)
    // a contact with the same address comes first (§5.8: SystemUser, Contact, Account, Lead)
    w.emu.admin.createRecord('contacts', { lastname: 'Same', emailaddress2: 'lena@prospect.test' }, w.alice.systemuserid)
    expect((await trackingLookups(w.adapter, header, none)).senderRecordTypes).toEqual(['contact', 'lead'])
    // a disqualified lead is not an active match
    const stranger = { ...header, sender: 'old@prospect.test' }
    const old = w.emu.admin.createRecord('leads', { lastname: 'Old', emailaddress1: 'old@prospect.test' }, w.alice.systemuserid).id
    expect((await trackingLookups(w.adapter, stranger, none)).senderRecordTypes).toEqual(['lead'])
    expect((await w.api('PATCH', `leads(${old})`, { statecode: 2, statuscode: 6 })).status).toBe(200)
    const after = await trackingLookups(w.adapter, stranger, none)
    expect(after.senderRecordTypes).toEqual([])
    expect(shouldTrack(stranger, 'fromLeadsContactsAccounts', after).track).toBe(false)
  })

  test('tracking an e-mail from a lead binds the lead as the sender party and can be regarding the lead', async () => {
    const t = await trackItem(w.adapter, { kind: 'email', concordId: 'lead-mail-1', fields: fromLead(1), regarding: { table: 'lead', id: leadId } })
    expect(t.created).toBe(true)
    const parties = (await w.api('GET', `emails(${guid(t.nativeId)})/email_activity_parties`, undefined, { Prefer: 'odata.include-annotations="*"' })).json.value
    const sender = parties.find((p: Record<string, unknown>) => p.participationtypemask === 1)
    expect(sender).toMatchObject({ _partyid_value: leadId, '_partyid_value@Microsoft.Dynamics.CRM.lookuplogicalname': 'lead' })
    const record = await w.adapter.getRecord(t.nativeId)
    expect(record?.fields.regarding).toEqual({ table: 'lead', id: leadId, name: 'Lena Park' })
    expect(record?.fields.from).toMatchObject({ address: 'Lena@Prospect.test', name: 'Lena Park' }) // the address as written, resolved to the lead
  })
})

describe('correlation and regarding resolution pointing at leads and opportunities', () => {
  test('In-Reply-To to an e-mail regarding an opportunity: the reply is tracked regarding the opportunity, correlationmethod 3', async () => {
    const parent = await trackItem(w.adapter, { kind: 'email', concordId: 'opp-1', fields: fromLead(2, { from: { address: 'ann@customer.test' } }), regarding: { table: 'opportunity', id: opportunityId } })
    const c = await correlateEmail(w.adapter, { subject: 'RE: Pricing question 2', from: 'ann@customer.test', to: ['alice@contoso.test'], inReplyTo: '<lead-2@prospect.test>' })
    expect(c).toEqual({ method: 'InReplyTo', code: 3, activityId: parent.nativeId, regarding: { table: 'opportunity', id: opportunityId, name: 'Sensor rollout' } })
    const reply = await trackItem(w.adapter, { kind: 'email', concordId: 'opp-1-reply', fields: fromLead(3, { subject: 'RE: Pricing question 2', from: { address: 'ann@customer.test' }, inReplyTo: '<lead-2@prospect.test>' }), correlation: c })
    const row = (await w.api('GET', `emails(${guid(reply.nativeId)})?$select=correlationmethod,_regardingobjectid_value,_parentactivityid_value`, undefined, { Prefer: 'odata.include-annotations="*"' })).json
    expect(row).toMatchObject({ correlationmethod: 3, _regardingobjectid_value: opportunityId, '_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname': 'opportunity', _parentactivityid_value: guid(parent.nativeId) })
  })

  test('smart matching finds an e-mail regarding a lead; a pushed e-mail without regarding inherits it', async () => {
    await trackItem(w.adapter, { kind: 'email', concordId: 'lead-sm', fields: fromLead(4, { subject: 'Sensor specs', to: [{ address: 'alice@contoso.test' }, { address: 'bob@contoso.test' }] }), regarding: { table: 'lead', id: leadId } })
    const c = await correlateEmail(w.adapter, { subject: 'RE: sensor SPECS', from: 'bob@contoso.test', to: ['lena@prospect.test'] })
    expect(c).toMatchObject({ method: 'SmartMatching', code: 6, regarding: { table: 'lead', id: leadId, name: 'Lena Park' } })
    // the adapter's own push path correlates new e-mails the same way
    const pushed = await w.adapter.push([
      { opId: asOpId('sm-1'), type: 'create', concordId: asConcordId('sm-1'), kind: 'email', fields: fromLead(5, { subject: 'Re: Sensor specs', from: { address: 'bob@contoso.test' }, to: [{ address: 'lena@prospect.test' }] }) },
    ])
    expect(pushed.rejected).toEqual([])
    const nativeId = String(pushed.applied[0]?.nativeId)
    const row = (await w.api('GET', `emails(${guid(nativeId)})?$select=correlationmethod,_regardingobjectid_value`)).json
    expect(row).toMatchObject({ correlationmethod: 6, _regardingobjectid_value: leadId })
  })

  test('Set Regarding to an opportunity and to a lead on appointments and tasks', async () => {
    const t = await trackItem(w.adapter, { kind: 'task', concordId: 'task-opp', fields: { subject: 'Prepare quote' } })
    await setRegarding(w.adapter, t.nativeId, { table: 'opportunity', id: opportunityId })
    expect((await w.adapter.getRecord(t.nativeId))?.fields.regarding).toEqual({ table: 'opportunity', id: opportunityId, name: 'Sensor rollout' })
    const a = await trackItem(w.adapter, { kind: 'appointment', concordId: 'appt-lead', fields: { subject: 'Discovery call', start: { dateTime: '2026-05-01T09:00:00', timeZone: 'UTC' }, end: { dateTime: '2026-05-01T09:30:00', timeZone: 'UTC' }, organizer: { address: 'alice@contoso.test' } }, regarding: { table: 'lead', id: leadId } })
    expect((await w.adapter.getRecord(a.nativeId))?.fields.regarding).toEqual({ table: 'lead', id: leadId, name: 'Lena Park' })
    await expect(setRegarding(w.adapter, a.nativeId, { table: 'quote', id: leadId })).rejects.toThrow(/regarding.table 'quote' is not supported/)
  })
})

describe('read-only columns are never sent', () => {
  test('updating a tracked e-mail (Message-ID, In-Reply-To, conversation, sent time changed too) is accepted by the emulator', async () => {
    const t = await trackItem(w.adapter, { kind: 'email', concordId: 'ro-1', fields: fromLead(6, { inReplyTo: '<x@y>', conversationId: 'conv-6' }) })
    const record = await w.adapter.getRecord(t.nativeId)
    const res = await w.adapter.push([
      {
        opId: asOpId('ro-upd'),
        type: 'update',
        concordId: asConcordId('ro-1'),
        kind: 'email',
        nativeId: t.nativeId,
        ifMatch: asVersion(String(record?.version)),
        fields: { ...fromLead(6), subject: 'Pricing question 6 (edited)', internetMessageId: '<changed@prospect.test>', inReplyTo: '<other@y>', conversationId: 'conv-other', sentAt: '2026-01-01T00:00:00.000Z' },
      },
    ])
    expect(res.rejected).toEqual([])
    const row = (await w.api('GET', `emails(${guid(t.nativeId)})?$select=subject,inreplyto,conversationindex`)).json
    expect(row).toMatchObject({ subject: 'Pricing question 6 (edited)', inreplyto: '<x@y>', conversationindex: 'conv-6' })
  })
})

describe('whoAmI (service level)', () => {
  test('the application user id; bad credentials → SyncError Unauthorized; bad options → Config', async () => {
    const me = await whoAmI({ orgUrl: w.emu.url, tokenUrl: w.emu.tokenUrl, clientId: w.emu.clientId, clientSecret: w.emu.clientSecret })
    expect(me.userId).toMatch(/^[0-9a-f-]{36}$/)
    const appUser = w.emu.admin.rows('systemusers').find((r) => r.values.applicationid === w.emu.clientId)
    expect(me.userId).toBe(appUser?.id)
    const bad = await whoAmI({ orgUrl: w.emu.url, tokenUrl: w.emu.tokenUrl, clientId: w.emu.clientId, clientSecret: 'wrong' }).catch((e: unknown) => e)
    expect(bad).toBeInstanceOf(SyncError)
    expect((bad as SyncError).code).toBe('Unauthorized')
    const config = await whoAmI({ orgUrl: 'not a url', tokenUrl: w.emu.tokenUrl, clientId: 'x', clientSecret: 'y' }).catch((e: unknown) => e)
    expect((config as SyncError).code).toBe('Config')
  })
})
