import { asReplicaId, type Fields, type NativeId } from '@concord/engine'
import { startDataverseEmulator, type DataverseEmulator, type SeededUser } from '@concord/emulator-dataverse'
import { CrmAdapter, type CrmAdapterOptionsInput } from '../src/index.js'
import { fieldsToPayload, partiesToWire, TABLES } from '../src/mapping.js'
import { nativeIdOf, parseNativeId } from '../src/crm-adapter.js'
import type { CrmKind } from '../src/options.js'

/** A sales role: organization-level read (change tracking needs it), own-record writes, the sync privilege. */
export const SYNC_ROLE = 'Concord Salesperson'
export const NO_SYNC_ROLE = 'Concord Reader'

function salesPrivileges(sync: boolean): Record<string, string> {
  const p: Record<string, string> = { prvReadUser: 'Global', prvReadUserSettings: 'Basic' }
  for (const e of ['Contact', 'Activity', 'Account', 'Lead', 'Opportunity']) {
    p[`prvRead${e}`] = 'Global'
    for (const a of ['Create', 'Write', 'Delete', 'Append', 'AppendTo', 'Share', 'Assign']) p[`prv${a}${e}`] = 'Basic'
  }
  if (sync) p.prvSyncToOutlook = 'Global'
  return p
}

export interface CrmWorld {
  emu: DataverseEmulator
  alice: SeededUser
  bob: SeededUser
  adapter: CrmAdapter
  adapterFor(user: SeededUser, extra?: Partial<CrmAdapterOptionsInput>): CrmAdapter
  /** Raw Web API call as the application user (sysadmin): a person changing CRM outside Concord. */
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; json: any; headers: Headers }>
  createRemote(kind: CrmKind, fields: Fields, asUser?: SeededUser, extra?: Record<string, unknown>): Promise<NativeId>
  updateRemote(nativeId: NativeId, kind: CrmKind, patch: Fields): Promise<void>
  removeRemote(nativeId: NativeId): Promise<void>
  close(): Promise<void>
}

export async function startCrmWorld(options: Partial<CrmAdapterOptionsInput> = {}): Promise<CrmWorld> {
  const emu = await startDataverseEmulator({ users: ['alice@contoso.test', 'bob@contoso.test'] })
  emu.admin.upsertRole({ name: SYNC_ROLE, privileges: salesPrivileges(true) as never })
  emu.admin.upsertRole({ name: NO_SYNC_ROLE, privileges: salesPrivileges(false) as never })
  const [alice, bob] = emu.users as [SeededUser, SeededUser]
  emu.admin.assignRoles(alice.systemuserid, [SYNC_ROLE])
  emu.admin.assignRoles(bob.systemuserid, [SYNC_ROLE])
  const token = await emu.getToken()
  const adapterFor = (user: SeededUser, extra: Partial<CrmAdapterOptionsInput> = {}): CrmAdapter =>
    new CrmAdapter(
      { orgUrl: emu.url, tokenUrl: emu.tokenUrl, clientId: emu.clientId, clientSecret: emu.clientSecret, impersonate: { callerObjectId: user.azureactivedirectoryobjectid }, ...options, ...extra },
      { replicaId: asReplicaId(`crm~${user.email}`) },
    )
  const api: CrmWorld['api'] = async (method, path, body, headers = {}) => {
    const res = await fetch(`${emu.apiUrl}/${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json', 'Content-Type': 'application/json', Prefer: 'return=representation', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.text()
    return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers }
  }
  const toBody = (kind: CrmKind, fields: Fields, create = true): Record<string, unknown> => {
    const p = fieldsToPayload(kind, fields, { writable: () => true, contactAddresses: 'mailing', create })
    const body = { ...p.body }
    const coll = TABLES[kind].partyCollection
    if (p.parties && coll) body[coll] = partiesToWire(p.parties)
    return body
  }
  return {
    emu,
    alice,
    bob,
    adapter: adapterFor(alice),
    adapterFor,
    api,
    async createRemote(kind, fields, asUser = alice, extra = {}) {
      const row = emu.admin.createRecord(TABLES[kind].entitySet, { ...toBody(kind, fields), ...extra }, asUser.systemuserid)
      return nativeIdOf(kind, row.id)
    },
    async updateRemote(nativeId, kind, patch) {
      const { id } = parseNativeId(nativeId)
      const res = await api('PATCH', `${TABLES[kind].entitySet}(${id})`, toBody(kind, patch, false), { 'If-Match': '*' })
      if (res.status >= 300) throw new Error(`update failed ${res.status} ${JSON.stringify(res.json)}`)
    },
    async removeRemote(nativeId) {
      const { kind, id } = parseNativeId(nativeId)
      const res = await api('DELETE', `${TABLES[kind].entitySet}(${id})`)
      if (res.status >= 300 && res.status !== 404) throw new Error(`delete failed ${res.status}`)
    },
    close: () => emu.close(),
  }
}

let counter = 0

/** Canonical fields that round-trip losslessly through Dataverse (UTC times, unresolved attendees). */
export function crmSampleFields(kind: CrmKind, n: number): Fields {
  const u = ++counter
  switch (kind) {
    case 'contact':
      return {
        givenName: `Given${n}`,
        surname: `Surname${n}`,
        email1: `contact${n}-${u}@example.test`,
        businessPhone: `+1 555 01${String(n).padStart(2, '0')}`,
        jobTitle: `Title ${n}`,
        department: 'Sales',
        businessAddress: { street: `${n} Main St`, city: 'Springfield', postalCode: '12345', countryOrRegion: 'US' },
        birthday: `1980-01-${String((n % 28) + 1).padStart(2, '0')}`,
        notes: `Notes ${n}`,
      }
    case 'appointment':
      return {
        subject: `Meeting ${n}`,
        body: `Agenda ${n}`,
        start: { dateTime: `2026-03-${String((n % 28) + 1).padStart(2, '0')}T09:00:00`, timeZone: 'UTC' },
        end: { dateTime: `2026-03-${String((n % 28) + 1).padStart(2, '0')}T10:00:00`, timeZone: 'UTC' },
        location: `Room ${n}`,
        isAllDay: false,
        showAs: 'busy',
        importance: 'normal',
        organizer: { name: 'Alice', address: 'alice@contoso.test' },
        requiredAttendees: [{ address: `guest${n}-${u}@external.test` }],
        optionalAttendees: [],
      }
    case 'task':
      return {
        subject: `Task ${n}`,
        description: `Do ${n}`,
        due: { dateTime: `2026-04-${String((n % 28) + 1).padStart(2, '0')}T17:00:00`, timeZone: 'UTC' },
        start: { dateTime: `2026-04-01T08:00:00`, timeZone: 'UTC' },
        status: 'inProgress',
        priority: n % 2 ? 'high' : 'low',
        percentComplete: (n * 10) % 100,
      }
    case 'email':
      return {
        subject: `Hello ${n}`,
        body: `<p>Body ${n}</p>`,
        from: { address: `sender${n}-${u}@external.test` },
        to: [{ address: `rcpt${n}-${u}@external.test` }],
        cc: [],
        internetMessageId: `<msg-${n}-${u}@external.test>`,
        conversationId: `conv-${n}-${u}`,
        direction: 'incoming',
      }
  }
}
