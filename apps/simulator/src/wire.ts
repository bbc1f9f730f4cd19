/**
 * Wire mode: the same workload and the same scheduler loop as fast mode, but each mailbox's pair is
 * the real `CrmAdapter` against the Dataverse emulator and the real `ExchangeAdapter` against the
 * Graph emulator (https), both in process on 127.0.0.1 port 0. Person edits are applied through the
 * emulators' control/admin API (mailbox) and the Dataverse Web API (CRM). HTTP calls take no virtual
 * time beyond `requestLatencyMs` per request, exactly as in fast mode.
 */
import { CrmAdapter, TABLES, fieldsToPayload, nativeIdOf, parseNativeId } from '@concord/adapter-crm'
import { ExchangeAdapter, createTrustedFetch, encodeNativeId, toGraph } from '@concord/adapter-exchange'
import { type DataverseEmulator, startDataverseEmulator } from '@concord/emulator-dataverse'
import { startGraphEmulator } from '@concord/emulator-graph'
import { type ConcordId, type Cursor, type Fields, type NativeId, type ReplicaAdapter, type ReplicaStore, type RemoteUpsert, SyncPair, asPairId, asReplicaId, concordIdFor, jsonEqual, openMemoryStore } from '@concord/engine'
import { openLevelStore } from '@concord/engine/node'
import type { Scheduler } from '@concord/scheduler'
import { SimulatorError } from './errors.js'
import { newStoreDir, removeStoreDir } from './store-dirs.js'
import { type CycleOutcome, cycleOptions, drainPair, drive, initialSync, measureCycle, pollResultOf } from './driver.js'
import { STUB_MAILBOX_INFO } from './run-stub.js'
import type { RunOptions } from './run.js'
import { type FinalState, type PolicyRun, WIRE_FIELDS, WIRE_KINDS, WIRE_MAX_MAILBOXES, NONE_PROPAGATED, assemblePolicyRun, chargePropagated, canonicalRecords, createRunScheduler, wireWorkload } from './policy-run.js'
import { type WorkloadEvent, type WorkloadSide, HOUR, MIN, SIM_EPOCH } from './workload.js'
import { settleReference as foldIntoReference } from './reference-model.js'

export { WIRE_MAX_MAILBOXES, WIRE_KINDS, WIRE_FIELDS, wireWorkload, canonicalRecords, type FinalState } from './policy-run.js'

const SYNC_ROLE = 'Concord Salesperson'
function salesPrivileges(): Record<string, string> {
  const p: Record<string, string> = { prvReadUser: 'Global', prvReadUserSettings: 'Basic', prvSyncToOutlook: 'Global' }
  for (const e of ['Contact', 'Activity', 'Account']) {
    p[`prvRead${e}`] = 'Global' // change tracking needs organization-level read
    for (const a of ['Create', 'Write', 'Delete', 'Append', 'AppendTo', 'Share', 'Assign']) p[`prv${a}${e}`] = 'Basic'
  }
  return p
}

interface Counter {
  calls: number
  tokenRefreshes: number
  throttled: number
}

/** A fetch that counts requests (token requests separately) and 429s. */
function countingFetch(inner: typeof fetch, counter: Counter, tokenUrl: string): typeof fetch {
  return (async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    if (url.startsWith(tokenUrl)) counter.tokenRefreshes++
    else counter.calls++
    const res = await inner(input, init)
    if (res.status === 429) counter.throttled++
    return res
  }) as typeof fetch
}

interface Item {
  origin: WorkloadSide
  native: NativeId
  expected: { deleted: boolean; fields: Fields }
  unsynced: { crm: Map<string, { value: unknown; t: number }>; mailbox: Map<string, { value: unknown; t: number }>; deletedBy?: WorkloadSide | undefined; created: boolean }
}

interface Pending {
  t: number
  item: string
  fields: string[]
  measured: boolean
}

interface Box {
  id: string
  upn: string
  dv: DataverseEmulator
  userId: string
  items: Map<string, Item>
  dirty: Set<string>
  pending: Pending[]
  changes: number
  measured: number
  stalenessSum: number
  crm: CrmAdapter
  mbx: ExchangeAdapter
  crmReader: CrmAdapter
  mbxReader: ExchangeAdapter
  crmCount: Counter
  mbxCount: Counter
  pair: SyncPair
}

/** Full listing of one side through a reader adapter (not counted as API calls): native id → record. */
async function readAll(adapter: ReplicaAdapter): Promise<Map<NativeId, RemoteUpsert>> {
  const out = new Map<NativeId, RemoteUpsert>()
  let cursor: Cursor | null = null
  for (let i = 0; i < 1000; i++) {
    const page = await adapter.pull(cursor, { limit: 200 })
    for (const c of page.changes) {
      if (c.type === 'upsert') out.set(c.nativeId, c)
      else out.delete(c.nativeId)
    }
    cursor = page.nextCursor
    if (!page.hasMore) return out
  }
  throw new SimulatorError('Internal', 'wire mode: a full listing did not end after 1000 pages')
}

/** Runs one scheduling policy over the workload in wire mode (real adapters, emulators over HTTP). */
export async function runWirePolicy(options: RunOptions & { onFinalState?: ((state: FinalState[]) => void) | undefined }): Promise<PolicyRun> {
  const workload = wireWorkload(options.workload)
  if (workload.mailboxes.length > WIRE_MAX_MAILBOXES) throw new SimulatorError('Usage', `--mode wire runs at most ${WIRE_MAX_MAILBOXES} mailboxes (got ${workload.mailboxes.length}); use --mode fast for larger scenarios`)
  if (options.engine !== 'real') throw new SimulatorError('Usage', '--mode wire needs --engine real')
  if (options.notifications) throw new SimulatorError('Usage', '--mode wire does not simulate notifications; use --notifications off')
  let now = 0
  const clock = () => SIM_EPOCH + now
  const endMs = workload.durationMs + options.drainMs
  const hours = Math.ceil(endMs / HOUR)
  const callsPerHour = new Array<number>(hours).fill(0)
  const staleness: number[] = []
  const problems: string[] = []
  let conflicts = 0
  let referenceConflicts = 0
  let cycles = 0
  let skippedEvents = 0

  const sched: Scheduler = createRunScheduler(options)

  const upnOf = (id: string) => `${id.toLowerCase().replace(/[^a-z0-9._-]/g, '-')}@contoso.test`
  const graph = await startGraphEmulator({ mailboxes: workload.mailboxes.map(upnOf), https: true })
  const trusted = createTrustedFetch({ ca: graph.certificate! })
  // One Dataverse organization per user: change tracking needs organization-level read and the emulator has no
  // business units, so in one shared org every user would see every other user's contacts. Fast mode's CRM
  // replica is likewise the user's own scope.
  const dvs: DataverseEmulator[] = []
  let store: ReplicaStore | undefined
  let dir: string | undefined
  const boxes = new Map<string, Box>()
  try {
    if (options.store === 'leveldb') {
      dir = await newStoreDir('wire-')
      store = (await openLevelStore(dir, { now: clock })).store
    } else store = (await openMemoryStore({ now: clock })).store

    for (const id of workload.mailboxes) {
      const upn = upnOf(id)
      const dv = await startDataverseEmulator({ users: [upn] })
      dvs.push(dv)
      dv.admin.upsertRole({ name: SYNC_ROLE, privileges: salesPrivileges() as never })
      const user = dv.users[0]!
      dv.admin.assignRoles(user.systemuserid, [SYNC_ROLE])
      const crmCount: Counter = { calls: 0, tokenRefreshes: 0, throttled: 0 }
      const mbxCount: Counter = { calls: 0, tokenRefreshes: 0, throttled: 0 }
      const crmOf = (f: typeof fetch | undefined, replica: string) =>
        new CrmAdapter(
          { orgUrl: dv.url, tokenUrl: dv.tokenUrl, clientId: dv.clientId, clientSecret: dv.clientSecret, impersonate: { callerObjectId: user.azureactivedirectoryobjectid }, kinds: [...WIRE_KINDS] },
          { replicaId: asReplicaId(replica), ...(f ? { fetch: f } : {}) },
        )
      const mbxOf = (f: typeof fetch, replica: string) =>
        new ExchangeAdapter({ replicaId: replica, mailbox: upn, tenantId: graph.tenant, clientId: 'concord-sim', clientSecret: 'sim-secret', tokenUrl: graph.tokenUrl, graphBaseUrl: graph.url, kinds: [...WIRE_KINDS] }, { fetch: f })
      const crm = crmOf(countingFetch(fetch, crmCount, dv.tokenUrl), `crm-${id}`)
      const mbx = mbxOf(countingFetch(trusted.fetch, mbxCount, graph.tokenUrl), `mbx-${id}`)
      const pair = new SyncPair({
        pairId: asPairId(`pair-${id}`),
        store,
        crm,
        mailbox: mbx,
        merge: options.merge(),
        pageLimit: 50,
        explainRecords: false, // a run's store is deleted when it ends: nobody can ask it why
        now: clock,
        onDecision: (_id, decision) => {
          for (const f of decision.fields) if (f.outcome.startsWith('conflict') || f.outcome === 'merged') conflicts++
        },
      })
      boxes.set(id, {
        id, upn, dv, userId: user.systemuserid, items: new Map(), dirty: new Set(), pending: [], changes: 0, measured: 0, stalenessSum: 0,
        crm, mbx, crmReader: crmOf(undefined, `crm-${id}`), mbxReader: mbxOf(trusted.fetch, `mbx-${id}`), crmCount, mbxCount, pair,
      })
    }

    const replicaOf = (box: Box, side: WorkloadSide) => asReplicaId(side === 'crm' ? `crm-${box.id}` : `mbx-${box.id}`)
    const readSide = (box: Box, side: WorkloadSide) => readAll(side === 'crm' ? box.crmReader : box.mbxReader)
    /** Native ids of an item on both sides, from full listings (the origin's stamp, or the id the engine derives from the origin native id). */
    const locate = (box: Box, item: Item, views: Record<WorkloadSide, Map<NativeId, RemoteUpsert>>): Record<WorkloadSide, RemoteUpsert | undefined> => {
      const origin = views[item.origin].get(item.native)
      const concordId: ConcordId = origin?.concordId ?? concordIdFor(replicaOf(box, item.origin), item.native)
      const other: WorkloadSide = item.origin === 'crm' ? 'mailbox' : 'crm'
      let found: RemoteUpsert | undefined
      for (const r of views[other].values()) if (r.concordId === concordId) found = r
      return { [item.origin]: origin, [other]: found } as Record<WorkloadSide, RemoteUpsert | undefined>
    }
    const views = async (box: Box) => ({ crm: await readSide(box, 'crm'), mailbox: await readSide(box, 'mailbox') })

    const dvApi = async (dv: DataverseEmulator, method: string, path: string, body?: unknown) => {
      const res = await fetch(`${dv.apiUrl}/${path}`, {
        method,
        headers: { Authorization: `Bearer ${await dv.getToken()}`, Accept: 'application/json', 'Content-Type': 'application/json', 'If-Match': '*' },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      if (res.status >= 300 && !(method === 'DELETE' && res.status === 404)) throw new SimulatorError('Internal', `wire mode: Dataverse ${method} ${path} answered ${res.status}: ${await res.text()}`)
      await res.body?.cancel()
    }
    const crmBody = (fields: Fields, create: boolean) => fieldsToPayload('contact', fields, { writable: () => true, contactAddresses: 'mailing', create }).body
    const graphId = (native: NativeId) => String(native).split('~').at(-1)!

    const apply = async (e: WorkloadEvent) => {
      const box = boxes.get(e.mailbox)!
      let item = box.items.get(e.item)
      if (e.op === 'create') {
        let native: NativeId
        if (e.side === 'crm') native = nativeIdOf('contact', box.dv.admin.createRecord(TABLES.contact.entitySet, crmBody(e.fields ?? {}, true), box.userId).id)
        else native = encodeNativeId('contact', graph.control.seed(box.upn, 'contact', [toGraph('contact', e.fields ?? {})])[0]!.immutableId)
        item = { origin: e.side, native, expected: { deleted: false, fields: {} }, unsynced: { crm: new Map(), mailbox: new Map(), created: true } }
        box.items.set(e.item, item)
      } else {
        if (!item) return void skippedEvents++
        const target = locate(box, item, await views(box))[e.side]
        if (target === undefined) return void skippedEvents++
        if (e.side === 'crm') {
          const path = `${TABLES.contact.entitySet}(${parseNativeId(target.nativeId).id})`
          if (e.op === 'update') await dvApi(box.dv, 'PATCH', path, crmBody(e.fields ?? {}, false))
          else await dvApi(box.dv, 'DELETE', path)
        } else if (e.op === 'update') graph.control.updateItem(box.upn, graphId(target.nativeId), toGraph('contact', e.fields ?? {}))
        else graph.control.deleteItem(box.upn, graphId(target.nativeId))
      }
      if (e.op === 'delete') item.unsynced.deletedBy = e.side
      else if (e.fields) for (const [name, value] of Object.entries(e.fields)) item.unsynced[e.side].set(name, { value, t: now })
      box.dirty.add(e.item)
      if (e.initial) return
      box.changes++
      box.pending.push({ t: now, item: e.item, fields: e.fields ? Object.keys(e.fields) : [], measured: now >= options.warmupMs && now < workload.durationMs })
    }

    const settleReference = (box: Box, crmPulled = true) => {
      referenceConflicts += foldIntoReference(box.items, box.dirty, options.conflictRule, crmPulled)
    }

    const propagated = (box: Box, p: Pending, v: Record<WorkloadSide, Map<NativeId, RemoteUpsert>>): boolean => {
      const item = box.items.get(p.item)
      if (!item) return false
      const at = locate(box, item, v)
      if (item.expected.deleted) return at.crm === undefined && at.mailbox === undefined
      if (at.crm === undefined || at.mailbox === undefined) return false
      for (const f of p.fields) if (!jsonEqual(at.crm.fields[f] ?? null, at.mailbox.fields[f] ?? null)) return false
      return true
    }

    const calls = (box: Box) => box.crmCount.calls + box.mbxCount.calls

    // initial data and the initial sync (not measured, not charged)
    let ei = 0
    while (ei < workload.events.length && workload.events[ei]!.initial) await apply(workload.events[ei++]!)
    for (const box of boxes.values()) {
      await initialSync(() => box.pair.runCycle())
      box.crmCount.calls = 0
      box.mbxCount.calls = 0
      settleReference(box)
      sched.addMailbox(box.id, 0, STUB_MAILBOX_INFO)
    }

    interface Completion extends CycleOutcome {
      box: Box
      /** The pending changes the cycle propagated, judged on the state it left (see `chargePropagated`). */
      propagated: ReadonlySet<Pending>
    }
    /** The pending changes both sides show now (after a clean cycle). */
    const propagatedNow = async (box: Box): Promise<ReadonlySet<Pending>> => {
      if (box.pending.length === 0) return NONE_PROPAGATED
      const v = await views(box)
      return new Set(box.pending.filter((p) => propagated(box, p, v)))
    }
    const complete = (c: Completion, at: number) => {
      chargePropagated(c.box, c.propagated, at, staleness)
      sched.recordPoll(c.box.id, pollResultOf(c, at))
    }

    await drive<{ c: Completion }>({
      sched,
      policy: options.policy,
      endMs,
      onProgress: options.onProgress,
      setNow: (t) => void (now = t),
      nextEventAt: () => (ei < workload.events.length ? workload.events[ei]!.t : Infinity),
      applyEvent: () => apply(workload.events[ei++]!),
      dispatch: async (d, t, finish) => {
        const box = boxes.get(d.mailboxId)!
        cycles++
        const outcome = await measureCycle(() => box.pair.runCycle(undefined, cycleOptions(d.pullCrm)), () => calls(box), (text) => problems.length < 20 && problems.push(`${box.id}: ${text}`))
        if (outcome.clean) settleReference(box, outcome.crmPulled)
        const done = outcome.clean ? await propagatedNow(box) : NONE_PROPAGATED
        callsPerHour[Math.min(hours - 1, Math.floor(t / HOUR))]! += outcome.requests
        finish(t + Math.max(1, outcome.requests * options.requestLatencyMs), { c: { box, ...outcome, propagated: done } })
      },
      complete: ({ c }, t) => complete(c, t),
    })

    // drain (not charged), then compare both sides with the reference
    let unresolved = 0
    for (const box of boxes.values()) unresolved += box.pending.filter((p) => p.measured).length
    let lostUpdates = 0
    let duplicates = 0
    let converged = true
    now = endMs + MIN
    const finals: FinalState[] = []
    for (const box of boxes.values()) {
      await drainPair({
        runCycle: () => box.pair.runCycle(),
        busy: () => box.dirty.size > 0 || box.pending.length > 0,
        onClean: async () => {
          settleReference(box)
          const v = await views(box)
          box.pending = box.pending.filter((p) => !propagated(box, p, v))
        },
        wait: (ms) => void (now += ms),
      })
      const v = await views(box)
      const accounted = { crm: new Set<NativeId>(), mailbox: new Set<NativeId>() }
      for (const [key, item] of box.items) {
        const at = locate(box, item, v)
        if (at.crm) accounted.crm.add(at.crm.nativeId)
        if (at.mailbox) accounted.mailbox.add(at.mailbox.nativeId)
        if (item.expected.deleted) {
          if (at.crm || at.mailbox) {
            lostUpdates++
            if (problems.length < 20) problems.push(`${box.id}/${key}: deleted by the workload but still live on ${at.crm ? 'crm' : 'mailbox'}`)
          }
          continue
        }
        if (!at.crm || !at.mailbox) {
          lostUpdates++
          converged = false
          if (problems.length < 20) problems.push(`${box.id}/${key}: missing on ${at.crm ? 'mailbox' : 'crm'}`)
          continue
        }
        for (const [name, value] of Object.entries(item.expected.fields)) {
          for (const [side, rec] of [['crm', at.crm], ['mailbox', at.mailbox]] as const) {
            if (!jsonEqual(rec.fields[name] ?? null, value ?? null)) {
              lostUpdates++
              if (problems.length < 20) problems.push(`${box.id}/${key}.${name}: ${side} has ${JSON.stringify(rec.fields[name])}, the workload's last write is ${JSON.stringify(value)}`)
            }
          }
        }
        for (const name of WIRE_FIELDS) if (!jsonEqual(at.crm.fields[name] ?? null, at.mailbox.fields[name] ?? null)) converged = false
      }
      for (const side of ['crm', 'mailbox'] as const) {
        for (const record of v[side].values()) {
          if (accounted[side].has(record.nativeId)) continue
          duplicates++
          converged = false
          if (problems.length < 20) problems.push(`${box.id}: ${side} record ${record.nativeId} (${String(record.fields['surname'] ?? '')}) matches no workload item`)
        }
      }
      if (box.pending.length > 0) converged = false
      finals.push({ mailbox: box.id, crm: canonicalRecords([...v.crm.values()].map((r) => r.fields)), mailboxSide: canonicalRecords([...v.mailbox.values()].map((r) => r.fields)) })
    }
    if (lostUpdates > 0) converged = false
    options.onFinalState?.(finals)

    let graphCalls = 0
    let crmCalls = 0
    let tokenRefreshes = 0
    let throttled = 0
    for (const box of boxes.values()) {
      graphCalls += box.mbxCount.calls
      crmCalls += box.crmCount.calls
      tokenRefreshes += box.crmCount.tokenRefreshes + box.mbxCount.tokenRefreshes
      throttled += box.crmCount.throttled + box.mbxCount.throttled
    }
    return assemblePolicyRun({
      sched,
      boxes: [...boxes.values()].map((b) => ({ id: b.id, changes: b.changes, measured: b.measured, stalenessSum: b.stalenessSum, pendingCount: b.pending.length })),
      graphCalls,
      crmCalls,
      tokenRefreshes,
      throttled,
      cycles,
      conflicts,
      referenceConflicts,
      lostUpdates,
      duplicates,
      converged,
      unresolved,
      skippedEvents,
      notificationsSent: 0,
      notificationsDropped: 0,
      staleness,
      callsPerHour,
      problems,
    })
  } finally {
    for (const box of boxes.values()) {
      await box.mbx.close()
      await box.mbxReader.close()
      await box.crm.close()
      await box.crmReader.close()
    }
    await store?.close()
    if (dir) await removeStoreDir(dir)
    await graph.close()
    for (const dv of dvs) await dv.close()
    trusted.close()
  }
}
