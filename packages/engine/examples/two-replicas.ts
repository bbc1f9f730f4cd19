// The README's embedding example: a CRM and a mailbox (both in memory here), synced by Concord.
import { SyncPair, asPairId, asReplicaId, openMemoryStore } from '@concord/engine'
import { MemoryRemote, MemoryReplicaAdapter } from '@concord/engine/testing'

export async function twoReplicaExample() {
  const { store } = await openMemoryStore() // or openLevelStore(dir) from '@concord/engine/node'
  const crm = new MemoryRemote('crm')
  const mailbox = new MemoryRemote('mbx')
  const pair = new SyncPair({
    pairId: asPairId('crm~alice'),
    store,
    crm: new MemoryReplicaAdapter(asReplicaId('crm'), crm),
    mailbox: new MemoryReplicaAdapter(asReplicaId('alice'), mailbox),
  })

  const ann = crm.create('contact', { givenName: 'Ann', surname: 'Lee', jobTitle: 'Buyer' })
  await pair.runCycle() // Ann is created in Alice's mailbox

  const copy = mailbox.liveRecords()[0]!
  crm.update(ann, { jobTitle: 'Head of Buying' }) // edited in the CRM …
  mailbox.update(copy.nativeId, { surname: 'Lee-Smith' }) // … and, concurrently, in Outlook
  const report = await pair.runCycle() // per-field merge: both edits survive

  return { crm: crm.live(ann).fields, mailbox: mailbox.live(copy.nativeId).fields, report }
}
