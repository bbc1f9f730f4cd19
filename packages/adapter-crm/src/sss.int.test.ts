/** MailboxDirectory and OutgoingEmailQueue over HTTP against the Dataverse emulator (application user, no impersonation). */
import { SyncError } from '@concord/engine'
import { startDataverseEmulator, type DataverseEmulator, type SeededUser } from '@concord/emulator-dataverse'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { MailboxDirectory, SERVER_TYPE, syncEligibility, type MailboxRow } from './mailbox-directory.js'
import { OutgoingEmailQueue } from './outgoing-email.js'

let emu: DataverseEmulator
let alice: SeededUser
let pat: SeededUser
let quinn: SeededUser
let rita: SeededUser
let dir: MailboxDirectory
let queue: OutgoingEmailQueue
const EXO = { requireApproval: true, exchangeOnlineProfile: true }

beforeAll(async () => {
  emu = await startDataverseEmulator({
    users: [
      { email: 'alice@contoso.test', roles: ['System Administrator'] },
      { email: 'pat@contoso.test', mailbox: 'pending' },
      'quinn@contoso.test',
      'rita@contoso.test',
    ],
  })
  ;[alice, pat, quinn, rita] = emu.users as [SeededUser, SeededUser, SeededUser, SeededUser]
  const conn = { orgUrl: emu.url, tokenUrl: emu.tokenUrl, clientId: emu.clientId, clientSecret: emu.clientSecret, pageSize: 2 }
  dir = new MailboxDirectory(conn)
  queue = new OutgoingEmailQueue(conn)
})
afterAll(async () => {
  await emu.close()
})

const byId = (rows: MailboxRow[], id: string | null) => rows.find((r) => r.mailboxId === id)!

describe('MailboxDirectory', () => {
  test('listMailboxes pages through every mailbox and maps the owner', async () => {
    const rows = await dir.listMailboxes()
    expect(rows).toHaveLength(4) // page size 2 → two pages
    const a = byId(rows, alice.mailboxid)
    expect(a).toMatchObject({ ownerId: alice.systemuserid, regardingType: 'systemuser', emailaddress: 'alice@contoso.test', emailrouteraccessapproval: 1, isemailaddressapprovedbyo365admin: true, incomingemailstatus: 1, actdeliverymethod: 1, statecode: 0 })
    expect(a.etag).toMatch(/^W\/"\d+"$/)
    expect(await dir.getMailbox('00000000-0000-4000-8000-000000000000')).toBeNull()
  })

  test('eligibility: approval pending, not tested and tested-failed are not eligible; a tested mailbox is', async () => {
    // quinn: approved but never tested; rita: tested and failed
    await dir.recordTestResult(quinn.mailboxid!, { incoming: 'not-run', outgoing: 'not-run', act: 'not-run' })
    await dir.recordTestResult(rita.mailboxid!, { incoming: 'failure', outgoing: 'failure', act: 'success' })
    const rows = await dir.listMailboxes()
    const e = (id: string | null) => syncEligibility(byId(rows, id), EXO)
    const pending = e(pat.mailboxid)
    expect(pending).toMatchObject({ incoming: false, outgoing: false, act: false })
    expect(pending.reasons.join('\n')).toContain('emailrouteraccessapproval is 2 Pending Approval')
    expect(pending.reasons.join('\n')).toContain('isemailaddressapprovedbyo365admin')
    const untested = e(quinn.mailboxid)
    expect(untested).toMatchObject({ incoming: false, outgoing: false, act: false })
    expect(untested.reasons).toContain('incoming: incomingemailstatus is 0 (Not Run), not 1 (Success): run Test & Enable')
    const failed = e(rita.mailboxid)
    expect(failed).toMatchObject({ incoming: false, outgoing: false, act: true })
    expect(e(alice.mailboxid)).toEqual({ incoming: true, outgoing: true, act: true, reasons: [] })
    // Without the Exchange Online profile and with the approval switched off, only the tests matter.
    const relaxed = syncEligibility(byId(rows, pat.mailboxid), { requireApproval: false, exchangeOnlineProfile: false })
    expect(relaxed.reasons.some((r) => r.includes('approv'))).toBe(false)
    // Test & Enable succeeds after approval → eligible
    await dir.recordTestResult(quinn.mailboxid!, { incoming: 'success', outgoing: 'success', act: 'success' })
    const quinnNow = (await dir.getMailbox(quinn.mailboxid!))!
    expect(quinnNow.testemailconfigurationscheduled).toBe(false)
    expect(syncEligibility(quinnNow, EXO)).toMatchObject({ incoming: true, outgoing: true, act: true })
  })

  test('recordSyncOutcome writes the last-sync columns; an error keeps lastsuccessfulsynccompletedon', async () => {
    const id = alice.mailboxid!
    await dir.recordSyncOutcome(id, { completedOn: '2026-11-26T02:00:00Z', itemsProcessed: 12, itemsFailed: 1, errorCount: 0, postponeUntil: '2026-11-26T02:05:00Z' })
    let row = (await dir.getMailbox(id))!
    expect(row).toMatchObject({ lastsuccessfulsynccompletedon: '2026-11-26T02:00:00Z', itemsprocessedforlastsync: 12, itemsfailedforlastsync: 1, lastsyncerrorcode: null, lastsyncerrorcount: 0, postponemailboxprocessinguntil: '2026-11-26T02:05:00Z' })
    await dir.recordSyncOutcome(id, { completedOn: new Date('2026-11-26T02:10:00Z'), itemsProcessed: 0, itemsFailed: 0, errorCode: 503, errorCount: 3 })
    row = (await dir.getMailbox(id))!
    expect(row).toMatchObject({ lastsuccessfulsynccompletedon: '2026-11-26T02:00:00Z', lastsyncerrorcode: 503, lastsyncerrorcount: 3 })
    await expect(dir.recordSyncOutcome(id, { completedOn: 'yesterday', itemsProcessed: -1, itemsFailed: 0, errorCount: 0 })).rejects.toThrow(/completedOn[\s\S]*itemsProcessed|itemsProcessed[\s\S]*completedOn/)
  })

  test('alerts written to the alert wall are read back; disableMailbox makes the mailbox ineligible and raises an error alert', async () => {
    const id = rita.mailboxid!
    const w = await dir.raiseAlert(id, { level: 'warning', code: 429, text: 'Exchange throttled the mailbox; retrying later.' })
    const i = await dir.raiseAlert(id, { level: 'information', code: 0, text: 'x'.repeat(2500) })
    let alerts = await dir.listAlerts(id)
    expect(alerts.map((a) => a.alertId).sort()).toEqual([w, i].sort())
    expect(alerts.find((a) => a.alertId === w)).toMatchObject({ level: 'warning', code: 429, text: 'Exchange throttled the mailbox; retrying later.', mailboxId: id })
    expect(alerts.find((a) => a.alertId === i)!.text).toHaveLength(2000)
    // rita's act workload was tested fine; a permanent 401 disables everything
    const e = await dir.disableMailbox(id, { code: 401, text: 'The credentials were rejected (401).' })
    const row = (await dir.getMailbox(id))!
    expect(row).toMatchObject({ incomingemailstatus: 2, outgoingemailstatus: 2, actstatus: 2, lastsyncerrorcode: 401, statecode: 0 })
    expect(syncEligibility(row, EXO)).toMatchObject({ incoming: false, outgoing: false, act: false })
    const errors = await dir.listAlerts(id, { level: 'error' })
    expect(errors.map((a) => a.alertId)).toEqual([e])
    expect(errors[0]!.text).toContain('401')
    alerts = await dir.listAlerts(id)
    expect(alerts).toHaveLength(3)
    // other mailboxes' alerts are not mixed in
    expect(await dir.listAlerts(quinn.mailboxid!)).toEqual([])
  })

  test('email server profiles: listed with their server type; a mailbox names its profile', async () => {
    expect((await dir.listMailboxes()).every((r) => r.emailServerProfileId === null)).toBe(true)
    const imap = emu.admin.createRecord('emailserverprofiles', { name: 'Contoso IMAP', servertype: 1 }).id
    emu.admin.createRecord('emailserverprofiles', { name: 'Exchange Online', servertype: SERVER_TYPE.ExchangeOnline })
    emu.admin.createRecord('emailserverprofiles', { name: 'On-prem', servertype: SERVER_TYPE.ExchangeServer })
    emu.admin.createRecord('emailserverprofiles', { name: 'Hybrid', servertype: SERVER_TYPE.ExchangeHybrid })
    emu.admin.createRecord('emailserverprofiles', { name: 'Plain IMAP', servertype: SERVER_TYPE.ImapSmtp })
    const token = await emu.getToken()
    const res = await fetch(`${emu.apiUrl}/mailboxes(${rita.mailboxid})`, { method: 'PATCH', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ 'emailserverprofile@odata.bind': `/emailserverprofiles(${imap})` }) })
    expect(res.status).toBe(204)
    expect(byId(await dir.listMailboxes(), rita.mailboxid).emailServerProfileId).toBe(imap.toLowerCase())
    expect((await dir.listEmailServerProfiles()).map((p) => [p.name, p.serverType]).sort()).toEqual([['Contoso IMAP', 1], ['Exchange Online', 3], ['Hybrid', 2], ['On-prem', 0], ['Plain IMAP', 4]])
    expect(SERVER_TYPE).toEqual({ ExchangeServer: 0, Other: 1, ExchangeHybrid: 2, ExchangeOnline: 3, ImapSmtp: 4 })
    expect(() => emu.admin.createRecord('emailserverprofiles', { name: 'Bad', servertype: 9 })).toThrow(/outside the valid range/)
  })

  test('bad input is a Validation error naming the field; an unknown mailbox is NotFound (never created)', async () => {
    await expect(dir.raiseAlert('nope', { level: 'error', code: 1, text: 'x' })).rejects.toThrow(/mailboxId must be a GUID/)
    await expect(dir.raiseAlert(alice.mailboxid!, { level: 'fatal' as 'error', code: 1, text: 'x' })).rejects.toThrow(/level/)
    await expect(dir.recordTestResult(alice.mailboxid!, {})).rejects.toThrow(/at least one/)
    const missing = await dir.recordTestResult('00000000-0000-4000-8000-000000000001', { incoming: 'success' }).catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(SyncError)
    expect((missing as SyncError).code).toBe('NotFound')
  })
})

test('Test & Enable run by the runtime (emulator testAndEnable: external): scheduled → tested → eligible', async () => {
  const ext = await startDataverseEmulator({ users: ['sam@contoso.test'], testAndEnable: 'external' })
  try {
    const d = new MailboxDirectory({ orgUrl: ext.url, tokenUrl: ext.tokenUrl, clientId: ext.clientId, clientSecret: ext.clientSecret })
    const mb = (ext.users[0] as SeededUser).mailboxid!
    expect(await d.scheduledTests()).toEqual([])
    await d.scheduleTest(mb)
    const due = await d.scheduledTests()
    expect(due.map((r) => r.mailboxId)).toEqual([mb])
    await d.recordTestResult(mb, { incoming: 'success', outgoing: 'success', act: 'failure' })
    expect(await d.scheduledTests()).toEqual([])
    const row = (await d.getMailbox(mb))!
    expect(syncEligibility(row, EXO)).toMatchObject({ incoming: true, outgoing: true, act: false })
  } finally {
    await ext.close()
  }
})

describe('OutgoingEmailQueue', () => {
  /** The CRM user presses Send: the SendEmail action, as that user. */
  async function sendEmailAs(owner: SeededUser, id: string): Promise<void> {
    const res = await fetch(`${emu.apiUrl}/emails(${id})/Microsoft.Dynamics.CRM.SendEmail`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${await emu.getToken()}`, CallerObjectId: owner.azureactivedirectoryobjectid, 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ IssueSend: true }),
    })
    expect(res.status).toBe(200)
  }
  const emailRow = (id: string) => emu.admin.rows('emails', `activityid eq ${id}`)[0]?.values

  async function pendingEmail(owner: SeededUser, subject: string): Promise<string> {
    const row = emu.admin.createRecord('emails', {
      subject,
      description: `<p>${subject}</p>`,
      email_activity_parties: [
        { 'partyid_systemuser@odata.bind': `/systemusers(${owner.systemuserid})`, participationtypemask: 1 },
        { addressused: 'bob@fabrikam.test', participationtypemask: 2 },
        { addressused: 'carol@fabrikam.test', participationtypemask: 3 },
        { addressused: 'dave@fabrikam.test', participationtypemask: 4 },
      ],
    }, owner.systemuserid)
    return row.id
  }

  test('pendingSends → claimSend (one winner) → markSent; the CRM records messageid and Sent', async () => {
    const id = await pendingEmail(alice, 'Quote 1')
    await sendEmailAs(alice, id)
    const draft = await pendingEmail(alice, 'Still a draft')
    const pending = await queue.pendingSends({ ownerId: alice.systemuserid })
    expect(pending.map((p) => p.emailId)).toEqual([id])
    expect(pending.map((p) => p.emailId)).not.toContain(draft)
    const p = pending[0]!
    expect(p).toMatchObject({ ownerId: alice.systemuserid, body: '<p>Quote 1</p>', messageId: null })
    expect(p.subject).toMatch(/^Quote 1 CRM:0001\d{3}$/)
    expect(p.trackingToken).toMatch(/^CRM:0001\d{3}$/)
    expect(p.from).toMatchObject({ partyId: alice.systemuserid, partyType: 'systemuser', address: 'alice@contoso.test' })
    expect(p.to.map((x) => x.address)).toEqual(['bob@fabrikam.test'])
    expect(p.cc.map((x) => x.address)).toEqual(['carol@fabrikam.test'])
    expect(p.bcc.map((x) => x.address)).toEqual(['dave@fabrikam.test'])
    expect(await queue.pendingSends({ ownerId: quinn.systemuserid })).toEqual([])

    // two servers race with the same etag: exactly one wins
    const [a, b] = await Promise.all([queue.claimSend(id, p.etag), queue.claimSend(id, p.etag)])
    const results = [a.status, b.status].sort()
    expect(results).toEqual(['already-claimed', 'claimed'])
    const winner = (a.status === 'claimed' ? a : b) as { status: 'claimed'; etag: string }
    expect(await queue.pendingSends({ ownerId: alice.systemuserid })).toEqual([])
    await queue.markSent(id, { messageId: '<crm-quote-1@contoso.test>', sentOn: '2026-11-26T02:30:00Z', etag: winner.etag })
    const row = emailRow(id)!
    expect(row).toMatchObject({ statecode: 1, statuscode: 3, messageid: '<crm-quote-1@contoso.test>' })
    expect(typeof row.senton).toBe('string')
    expect(await queue.claimSend('00000000-0000-4000-8000-000000000002', p.etag)).toEqual({ status: 'not-found' })
  })

  test('markSendFailed → Failed (statecode 0) and an alert on the owner mailbox', async () => {
    const id = await pendingEmail(quinn, 'Will fail')
    await sendEmailAs(quinn, id)
    const [p] = await queue.pendingSends({ ownerId: quinn.systemuserid })
    const claim = await queue.claimSend(id, p!.etag)
    expect(claim.status).toBe('claimed')
    await queue.markSendFailed(id, 'Recipient rejected: 550 5.1.1', { mailboxId: quinn.mailboxid!, code: 550 })
    expect(emailRow(id)).toMatchObject({ statecode: 0, statuscode: 8 })
    const alerts = await dir.listAlerts(quinn.mailboxid!, { level: 'error' })
    expect(alerts.some((a) => a.code === 550 && a.text.includes('550 5.1.1'))).toBe(true)
    await expect(queue.markSent(id, { messageId: 'no-brackets', sentOn: '2026-11-26T02:30:00Z' })).rejects.toThrow(/messageId/)
  })

  test('canSendFromCrm follows prvSendAsUser (cached per owner)', async () => {
    expect(await queue.canSendFromCrm(alice.systemuserid)).toBe(true) // System Administrator
    expect(await queue.canSendFromCrm(pat.systemuserid)).toBe(false)
    const before = queue.http.requestCount
    expect(await queue.canSendFromCrm(pat.systemuserid)).toBe(false)
    expect(queue.http.requestCount).toBe(before)
  })
})
