/**
 * Embedding example (README, "Server-side sync building blocks"): Test & Enable a mailbox, then send a
 * CRM e-mail through it exactly once — a crash-simulated second send finds the Sent Items copy.
 */
import { startGraphEmulator } from '@concord/emulator-graph'
import { ExchangeAdapter, MailSender, createTrustedFetch, testMailboxAccess } from '../src/index.js'

export async function sendCrmEmailExample(): Promise<{ access: string; first: string; second: string }> {
  const em = await startGraphEmulator({ mailboxes: ['alice@contoso.test', 'bob@contoso.test'], https: true })
  const transport = createTrustedFetch({ ca: em.certificate! })
  try {
    const options = { replicaId: 'alice', mailbox: 'alice@contoso.test', tenantId: em.tenant, clientId: 'concord', clientSecret: 'secret', tokenUrl: em.tokenUrl, graphBaseUrl: em.url }
    const alice = new ExchangeAdapter(options, { fetch: transport.fetch })
    const report = await testMailboxAccess(alice) // → MailboxDirectory.recordTestResult(...) in the CRM
    const sender = new MailSender(alice) // keeps a 30 messages/min, 10,000 recipients/day budget
    const mail = {
      internetMessageId: '<crm-7f3a@contoso.test>', // assigned and recorded in the CRM before sending
      crmEmailId: '1d6f2c1e-8a9b-4c3d-9e0f-a1b2c3d4e5f6',
      subject: 'Your quote CRM:0001001',
      body: '<p>Please find the quote attached.</p>',
      bodyType: 'html' as const,
      to: [{ address: 'bob@contoso.test', name: 'Bob' }],
    }
    const first = await sender.send(mail) // { status: 'sent' }
    const second = await new MailSender(alice).send(mail) // after a crash: { status: 'already-sent', messageId }
    await alice.close()
    return { access: `${report.incoming.status}/${report.outgoing.status}/${report.act.status}`, first: first.status, second: second.status }
  } finally {
    await em.close()
    transport.close()
  }
}
