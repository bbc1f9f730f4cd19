/**
 * Embedding example (README): one CRM scope ⇄ one Exchange mailbox. The mailbox here is the Graph
 * emulator over https; against a real tenant, drop `tokenUrl`/`graphBaseUrl`/`fetch`.
 */
import { startGraphEmulator } from '@concord/emulator-graph'
import { SyncPair, asPairId, asReplicaId, openMemoryStore } from '@concord/engine'
import { MemoryRemote, MemoryReplicaAdapter } from '@concord/engine/testing'
import { ExchangeAdapter, createTrustedFetch } from '../src/index.js'

export async function syncMailboxExample(): Promise<{ contactsInMailbox: number; crmRecords: number }> {
  const em = await startGraphEmulator({ mailboxes: ['alice@contoso.test'], https: true })
  const transport = createTrustedFetch({ ca: em.certificate! }) // trust exactly the emulator's certificate
  try {
    const mailbox = new ExchangeAdapter(
      {
        replicaId: 'alice',
        mailbox: 'alice@contoso.test',
        tenantId: em.tenant,
        clientId: 'concord',
        clientSecret: 'secret',
        tokenUrl: em.tokenUrl, // default: https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token
        graphBaseUrl: em.url, // default: https://graph.microsoft.com
      },
      { fetch: transport.fetch },
    )
    const { store } = await openMemoryStore()
    const crm = new MemoryRemote('crm') // stands in for @concord/adapter-crm
    const pair = new SyncPair({ pairId: asPairId('crm~alice'), store, crm: new MemoryReplicaAdapter(asReplicaId('crm'), crm), mailbox })

    crm.create('contact', { givenName: 'Ann', surname: 'Lee', email1: 'ann@fabrikam.test', jobTitle: 'Buyer' })
    em.control.seed('alice@contoso.test', 'contact', [{ givenName: 'Bob', surname: 'Stone', emailAddresses: [{ address: 'bob@fabrikam.test' }] }])
    for (let i = 0; i < 5; i++) {
      const r = await pair.runCycle() // Ann goes to Alice's contacts, Bob to the CRM
      if (r.logged.crm + r.logged.mailbox + r.merged + r.pushed.crm + r.pushed.mailbox === 0) break
    }
    await mailbox.close()
    return { contactsInMailbox: em.control.count('alice@contoso.test', 'contact'), crmRecords: crm.liveRecords().length }
  } finally {
    await em.close()
    transport.close()
  }
}
