import { expect, test } from 'vitest'
// The block below is the README "Embedding" example, verbatim.
// --- README START ---
import { asConcordId, asOpId, asReplicaId } from '@concord/engine'
import { pullAll } from '@concord/engine/testing'
import { startDataverseEmulator } from '@concord/emulator-dataverse'
import { CrmAdapter } from '@concord/adapter-crm'

async function example(): Promise<{ maySync: boolean; listed: number; created: string }> {
  const emu = await startDataverseEmulator({ users: [{ email: 'alice@contoso.test', roles: ['System Administrator'] }] })
  try {
    const alice = emu.users[0]!
    const crm = new CrmAdapter(
      {
        orgUrl: emu.url,
        tokenUrl: emu.tokenUrl,
        clientId: emu.clientId,
        clientSecret: emu.clientSecret,
        impersonate: { callerObjectId: alice.azureactivedirectoryobjectid }, // security applies as Alice
      },
      { replicaId: asReplicaId('crm~alice') },
    )
    const masks = await crm.getOwnerMasks() // sync/send privileges, secured fields
    emu.admin.createRecord('contacts', { firstname: 'Ann', lastname: 'Lee' }, alice.systemuserid)
    const { changes } = await pullAll(crm, null) // change tracking over every table
    const pushed = await crm.push([
      { opId: asOpId('op-1'), type: 'create', concordId: asConcordId('c-1'), kind: 'contact', fields: { givenName: 'Bo', surname: 'Ng' } },
    ])
    return { maySync: masks.maySync, listed: changes.length, created: String(pushed.applied[0]?.nativeId) }
  } finally {
    await emu.close()
  }
}
// --- README END ---

test('README embedding example runs', async () => {
  const r = await example()
  expect(r.maySync).toBe(true)
  expect(r.listed).toBe(1)
  expect(r.created).toMatch(/^contacts\([0-9a-f-]{36}\)$/)
})

// The block below is the README "Server-side sync building blocks" example, verbatim.
// --- README SSS START ---
import { MailboxDirectory, OutgoingEmailQueue, syncEligibility } from '@concord/adapter-crm'

async function serverSideSyncExample(): Promise<{ eligible: string[]; pending: number; claim: string; alerts: number }> {
  const emu = await startDataverseEmulator({ users: ['alice@contoso.test', { email: 'pat@contoso.test', mailbox: 'pending' }] })
  try {
    const app = { orgUrl: emu.url, tokenUrl: emu.tokenUrl, clientId: emu.clientId, clientSecret: emu.clientSecret } // application user, no impersonation
    const mailboxes = new MailboxDirectory(app)
    const outgoing = new OutgoingEmailQueue(app)
    const eligible: string[] = []
    for (const mb of await mailboxes.listMailboxes()) {
      const e = syncEligibility(mb, { requireApproval: true, exchangeOnlineProfile: true })
      if (e.incoming && e.outgoing && e.act) eligible.push(String(mb.emailaddress))
      else await mailboxes.raiseAlert(mb.mailboxId, { level: 'warning', code: 0, text: e.reasons.join('; ') })
    }
    const alice = emu.users[0]!
    const email = emu.admin.createRecord('emails', { subject: 'Quote', email_activity_parties: [{ addressused: 'bob@fabrikam.test', participationtypemask: 2 }] }, alice.systemuserid)
    emu.admin.sendEmail(email.id, alice.systemuserid) // the user pressed Send: statuscode 6 Pending Send
    const [pending] = await outgoing.pendingSends({ ownerId: alice.systemuserid })
    const claim = await outgoing.claimSend(pending!.emailId, pending!.etag) // If-Match: one server wins
    // ... MailSender.send({ internetMessageId: '<crm-…@contoso.test>', ... }) in @concord/adapter-exchange ...
    await outgoing.markSent(pending!.emailId, { messageId: '<crm-quote@contoso.test>', sentOn: new Date() })
    const alerts = await mailboxes.listAlerts(emu.users[1]!.mailboxid!)
    return { eligible, pending: 1, claim: claim.status, alerts: alerts.length }
  } finally {
    await emu.close()
  }
}
// --- README SSS END ---

test('README server-side-sync example runs', async () => {
  expect(await serverSideSyncExample()).toEqual({ eligible: ['alice@contoso.test'], pending: 1, claim: 'claimed', alerts: 1 })
})
