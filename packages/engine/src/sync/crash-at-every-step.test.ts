import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { MemoryLevel } from 'memory-level'
import { afterAll, describe, expect, test } from 'vitest'
import type { StoreDatabase } from '../store/replica-store.js'
import { type CrashScenario, runWithCrash } from '../testing/crash-harness.js'
import { sampleFields } from '../testing/sample-fields.js'
import { type TwoReplicaWorld, checkConvergence } from '../testing/world.js'
import { canonicalJson } from '../util/canonical-json.js'
import { PolicyMerge } from '../merge/policy-merge.js'

const bySubject = (remote: TwoReplicaWorld['mailbox'], value: string) => remote.liveRecords().find((r) => r.fields.subject === value || r.fields.givenName === value)

/** Creates, two-sided edits, a conflict, deletes on both sides, a move and an expired cursor. */
const scenario: CrashScenario = {
  steps: 4,
  edit(w, step) {
    switch (step) {
      case 0:
        w.crm.create('contact', { ...sampleFields('contact', 1), givenName: 'Ann' })
        w.crm.create('contact', { ...sampleFields('contact', 2), givenName: 'Ben' })
        w.crm.create('contact', { ...sampleFields('contact', 3), givenName: 'Cy' })
        w.mailbox.create('task', { ...sampleFields('task', 1), subject: 'T1' })
        w.mailbox.create('task', { ...sampleFields('task', 2), subject: 'T2' })
        break
      case 1: {
        w.crm.update(bySubject(w.crm, 'Ann')!.nativeId, { jobTitle: 'CFO' })
        w.mailbox.update(bySubject(w.mailbox, 'Ann')!.nativeId, { mobilePhone: '+1 555 0100' })
        w.crm.update(bySubject(w.crm, 'Ben')!.nativeId, { jobTitle: 'CRM says' })
        w.mailbox.update(bySubject(w.mailbox, 'Ben')!.nativeId, { jobTitle: 'Mailbox says' })
        w.crm.update(bySubject(w.crm, 'T1')!.nativeId, { status: 'inProgress' })
        break
      }
      case 2:
        w.crm.remove(bySubject(w.crm, 'Cy')!.nativeId)
        w.mailbox.remove(bySubject(w.mailbox, 'T2')!.nativeId)
        w.mailbox.move(bySubject(w.mailbox, 'Ann')!.nativeId)
        break
      case 3:
        w.crm.expireCursors()
        w.crm.create('appointment', { ...sampleFields('appointment', 4), subject: 'Kickoff' })
        w.mailbox.update(bySubject(w.mailbox, 'T1')!.nativeId, { percentComplete: 50 })
        break
    }
  },
}

function finalState(w: TwoReplicaWorld) {
  const sideState = (remote: TwoReplicaWorld['crm']) => remote.liveRecords().map((r) => canonicalJson({ kind: r.kind, fields: r.fields })).sort()
  return { crm: sideState(w.crm), mailbox: sideState(w.mailbox) }
}

const memoryDb = () => {
  const db = new MemoryLevel<string, string>({ keyEncoding: 'utf8', valueEncoding: 'utf8', storeEncoding: 'utf8' }) as unknown as StoreDatabase
  // A memory-level database loses nothing on close/reopen only if we keep the same instance.
  return async () => {
    if (db.status === 'closed') await db.open()
    return db
  }
}

/** Policy merge with text merge, then a mass delete the guard holds in quarantine. */
const quarantineScenario: CrashScenario = {
  steps: 3,
  edit(w, step) {
    switch (step) {
      case 0:
        for (let i = 0; i < 60; i++) w.crm.create('contact', { ...sampleFields('contact', i), givenName: `P${i}`, notes: 'Met at the fair.' })
        break
      case 1: {
        const crmCopy = bySubject(w.crm, 'P0')!
        const mailboxCopy = bySubject(w.mailbox, 'P0')!
        w.crm.update(crmCopy.nativeId, { notes: 'Met at the fair. Wants a quote.' })
        w.mailbox.update(mailboxCopy.nativeId, { notes: 'Met at the spring fair.' })
        break
      }
      case 2:
        for (const record of w.mailbox.liveRecords().slice(0, 55)) w.mailbox.remove(record.nativeId)
        break
    }
  },
}

describe('crash at every step', () => {
  test('merge cycles with policies and a quarantined mass delete survive a crash before any write', async () => {
    const worldOptions = { merge: new PolicyMerge({ policies: { contact: { notes: 'text-merge' } } }), pageLimit: 25 }
    const reference = await runWithCrash(quarantineScenario, memoryDb(), { world: worldOptions })
    const expected = finalState(reference.world)
    expect(expected.crm).toHaveLength(60) // nothing deleted while the quarantine waits
    expect(expected.mailbox).toHaveLength(5)
    expect(expected.crm.some((r) => r.includes('Met at the spring fair. Wants a quote.'))).toBe(true)
    expect(await reference.world.pair.listQuarantine()).toHaveLength(1)
    for (let k = 1; k <= reference.writes; k++) {
      const run = await runWithCrash(quarantineScenario, memoryDb(), { crashAtWrite: k, world: worldOptions })
      expect(run.crashed).toBe(true)
      expect(finalState(run.world), `crash at write ${k}`).toEqual(expected)
      const held = await run.world.pair.listQuarantine()
      expect(held.map((q) => q.entries.length), `crash at write ${k}: one quarantine of 55`).toEqual([55])
    }
  })

  test('killing the engine before any storage write, then restarting, ends in the crash-free state', async () => {
    const reference = await runWithCrash(scenario, memoryDb())
    const expected = finalState(reference.world)
    expect((await checkConvergence(reference.world)).problems).toEqual([])
    expect(expected.crm).toHaveLength(4) // Ann, Ben, T1, Kickoff (Cy and T2 deleted)
    expect(reference.writes).toBeGreaterThan(20)

    for (let k = 1; k <= reference.writes; k++) {
      const run = await runWithCrash(scenario, memoryDb(), { crashAtWrite: k })
      expect(run.crashed, `crash at write ${k} happened`).toBe(true)
      const convergence = await checkConvergence(run.world)
      expect(convergence.problems, `crash at write ${k}`).toEqual([])
      expect(finalState(run.world), `crash at write ${k}: final state`).toEqual(expected)
    }
  })

  test('under group commit (writes reach storage together, before every push), a crash before any batch ends in the crash-free state', async () => {
    const store = { groupCommit: true }
    const reference = await runWithCrash(scenario, memoryDb(), { store })
    const expected = finalState(reference.world)
    const unbatched = await runWithCrash(scenario, memoryDb())
    expect(expected).toEqual(finalState(unbatched.world))
    expect(reference.writes).toBeLessThan(unbatched.writes) // fewer, larger batches
    for (let k = 1; k <= reference.writes; k++) {
      const run = await runWithCrash(scenario, memoryDb(), { crashAtWrite: k, store })
      expect(run.crashed, `crash at batch ${k} happened`).toBe(true)
      expect((await checkConvergence(run.world)).problems, `crash at batch ${k}`).toEqual([])
      expect(finalState(run.world), `crash at batch ${k}: final state`).toEqual(expected)
    }
  })

  describe('on LevelDB (classic-level), really closing and reopening the database', () => {
    const dirs: string[] = []
    afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))
    const levelDb = () => {
      const dir = mkdtempSync(join(tmpdir(), 'concord-crash-'))
      dirs.push(dir)
      return async () => {
        const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' }) as unknown as StoreDatabase
        await db.open()
        return db
      }
    }

    test('every 3rd write', async () => {
      const reference = await runWithCrash(scenario, levelDb())
      const expected = finalState(reference.world)
      for (let k = 1; k <= reference.writes; k += 3) {
        const run = await runWithCrash(scenario, levelDb(), { crashAtWrite: k })
        expect(finalState(run.world), `crash at write ${k}`).toEqual(expected)
        expect((await checkConvergence(run.world)).problems).toEqual([])
      }
    })
  })
})
