import { readFileSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { openMemoryStore } from '../store/open-memory.js'
import { checkConvergence, createTwoReplicaWorld, syncUntilQuiet } from '../testing/world.js'
import { PolicyMerge, computeSecurityMask, evaluateDeletionGuard, renderExplain } from './index.js'
import { asConcordId, asPairId, asVersion } from '../ids.js'

describe('README example', () => {
  test('runs as documented', async () => {
    // #region readme
    // 1. The organization's policy (validated with zod; a bad key throws a ValidationError naming it).
    const merge = new PolicyMerge({
      directions: { contact: { jobTitle: 'toExchange' } },
      policies: { default: 'crm-wins', appointment: { body: 'text-merge', requiredAttendees: 'set-merge' } },
    })

    // 2. One merge, with the context the sync loop supplies for the mailbox owner.
    const mask = computeSecurityMask({ hasSyncPrivilege: true, canSendFromCrm: true, securedFields: { birthday: { canRead: false, canUpdate: false } } })
    const decision = merge.merge({
      pairId: asPairId('crm~alice'),
      concordId: asConcordId('c1'),
      kind: 'contact',
      base: { kind: 'contact', fields: { givenName: 'Ann', jobTitle: 'Buyer' }, fieldVersions: { givenName: 1, jobTitle: 1 }, versions: {} },
      changes: {
        crm: { type: 'upsert', fields: { givenName: 'Anna', jobTitle: 'Buyer', birthday: null }, version: asVersion('crm-v2') },
        mailbox: { type: 'upsert', fields: { givenName: 'Ann', jobTitle: 'Chief Buyer' }, version: asVersion('mbx-v5') },
      },
      exists: { crm: true, mailbox: true },
      context: { user: { id: 'u-alice' }, mask, crmMeta: { ownerId: 'u-alice' } },
    })
    // givenName goes to the mailbox; the mailbox's jobTitle edit is blocked (CRM → Exchange only);
    // the unreadable birthday is unknown, never written as null.
    const explanation = renderExplain(decision) // one line per field: values, versions, direction, mask, policy, winner

    // 3. The mass-deletion guard the loop consults before pushing deletes.
    const guard = evaluateDeletionGuard({ replicaItemCount: 400, deletes: 120, threshold: { share: 0.2, min: 50 } })

    // 4. Plugged into the sync loop.
    const { store } = await openMemoryStore()
    const world = createTwoReplicaWorld({ store, merge })
    world.crm.create('appointment', { subject: 'Kickoff', body: 'Agenda: intro.' })
    await syncUntilQuiet(world)
    // #endregion readme

    expect(decision.writes).toEqual({ mailbox: { type: 'update', fields: { givenName: 'Anna' } } })
    expect(decision.fields.find((f) => f.field === 'jobTitle')?.outcome).toBe('blocked')
    expect(guard.action).toBe('hold')
    expect(explanation).toMatch(/^jobTitle: blocked/m)
    expect((await checkConvergence(world)).converged).toBe(true)

    const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8')
    const source = readFileSync(new URL(import.meta.url), 'utf8')
    const snippet = source.slice(source.indexOf('// #region readme') + '// #region readme'.length, source.indexOf('    // #endregion readme'))
    const dedented = snippet.split('\n').map((line) => line.replace(/^ {4}/, '')).join('\n').trim()
    expect(readme).toContain(dedented)
  })
})
