/**
 * `ClientRequestHandlers` against the CRM (adapter-crm): every request runs through the requesting
 * user's impersonated `CrmAdapter`, so the CRM's own security (roles, ownership, column security)
 * decides what the user may read and write.
 */
import { randomUUID } from 'node:crypto'
import { type CrmAdapter, type CrmKind, TABLES, extractTrackingToken, getAutoTrackOption, nativeIdOf, parseNativeId, setRegarding, shouldTrack, stopTracking, trackItem, trackingLookups } from '@concord/adapter-crm'
import { type ClientRequestHandlers, type CrmRecord, type CrmRef, type MailboxStatusResult, OutlookProtocolError } from '@concord/adapter-outlook'
import { type Fields, type ItemKind, type NativeId, SyncError, asConcordId, asOpId, parseFields } from '@concord/engine'
import { z } from 'zod'

/** The user's impersonated CRM adapter (cached by the caller). */
export type UserCrm = (userId: string) => Promise<CrmAdapter>

/** At most this many ids are answered by one lightweight `lookup ids` (the rest: narrow the query). */
export const MAX_LOOKUP_IDS = 5_000

const PageSchema = z.object({ value: z.array(z.record(z.string(), z.unknown())), '@odata.nextLink': z.string().optional() }).loose()

/** Parses a CRM id sent by a client (`contacts(<guid>)`…); anything else is `bad_request`. */
function crmIdOf(crmId: string): { kind: CrmKind; id: string } {
  try {
    return parseNativeId(crmId)
  } catch (error) {
    throw new OutlookProtocolError('bad_request', `crmId: ${(error as Error).message}`)
  }
}

/** Canonical fields of a kind, or `bad_request` naming the field. */
function fieldsOf(kind: ItemKind, input: Record<string, unknown>): Fields {
  try {
    return parseFields(kind, input) as Fields
  } catch (error) {
    throw new OutlookProtocolError('bad_request', `fields: ${(error as Error).message}`)
  }
}

async function readable(crm: CrmAdapter, crmId: string): Promise<void> {
  crmIdOf(crmId)
  const access = await crm.checkRecordAccess(crmId)
  if (!access.mayRead) throw new OutlookProtocolError('not_found', `no CRM record ${crmId} that this user may read`)
}

/**
 * How the App for Outlook learns whether a user's mailbox is enabled for server-side sync. The sync
 * server answers from its own mailbox state (`ClientSyncPolicy.status`), not from the CRM row.
 */
export type MailboxStatusOf = (userId: string) => Promise<MailboxStatusResult>

/** Display-name columns of the tables an address or a search can find. */
const NAME_OF: Record<string, { set: string; key: string; name: string }> = {
  systemuser: { set: 'systemusers', key: 'systemuserid', name: 'fullname' },
  contact: { set: 'contacts', key: 'contactid', name: 'fullname' },
  account: { set: 'accounts', key: 'accountid', name: 'name' },
}
const RowSchema = z.record(z.string(), z.unknown())
const TrackedEmailSchema = z.object({ activityid: z.string(), _regardingobjectid_value: z.string().nullable().optional() }).loose()
const REGARDING_TABLE = '_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname'
const REGARDING_NAME = '_regardingobjectid_value@OData.Community.Display.V1.FormattedValue'
const odataString = (value: string) => `'${value.replace(/'/g, "''")}'`

async function nameOf(crm: CrmAdapter, table: string, id: string): Promise<string | undefined> {
  const t = NAME_OF[table]
  if (!t) return undefined
  const res = await crm.http.raw('GET', `${t.set}(${id})?$select=${t.name}`)
  if (res.status !== 200) return undefined // not readable for this user: the address still shows as matched
  const name = RowSchema.parse(JSON.parse(res.text))[t.name]
  return typeof name === 'string' ? name : undefined
}

export function crmRequestHandlers(crmOf: UserCrm, mailboxStatusOf: MailboxStatusOf): ClientRequestHandlers {
  return {
    mailboxStatus: async (ctx) => mailboxStatusOf(ctx.userId),

    // The parties of an open e-mail as CRM records, and the CRM e-mail tracked for it (by message id).
    itemInfo: async (ctx, input) => {
      const crm = await crmOf(ctx.userId)
      const addresses = [...new Set(input.addresses.map((a) => a.toLowerCase()))]
      const matches = addresses.length > 0 ? await crm.resolveAddresses(addresses) : new Map<string, Array<{ table: string; id: string }>>()
      const names = new Map<string, string | undefined>()
      const parties: Array<{ address: string; records: CrmRef[] }> = []
      for (const address of addresses) {
        const records: CrmRef[] = []
        for (const m of (matches.get(address) ?? []).slice(0, 50)) {
          const key = `${m.table}:${m.id}`
          if (!names.has(key)) names.set(key, await nameOf(crm, m.table, m.id))
          const name = names.get(key)
          records.push({ table: m.table, id: m.id, ...(name !== undefined ? { name: name.slice(0, 512) } : {}) })
        }
        parties.push({ address, records })
      }
      let tracked: { crmId: string; regarding: CrmRef | null } | null = null
      if (input.internetMessageId !== undefined) {
        const res = await crm.http.raw('GET', `emails(messageid=${encodeURIComponent(odataString(input.internetMessageId))})?$select=activityid,_regardingobjectid_value`, {
          headers: { Prefer: 'odata.include-annotations="*"' },
        })
        if (res.status === 200) {
          const row = TrackedEmailSchema.parse(JSON.parse(res.text))
          const table = row[REGARDING_TABLE]
          const name = row[REGARDING_NAME]
          const regarding = row._regardingobjectid_value && typeof table === 'string' ? { table, id: row._regardingobjectid_value, ...(typeof name === 'string' ? { name: name.slice(0, 512) } : {}) } : null
          tracked = { crmId: nativeIdOf('email', row.activityid), regarding }
        } else if (res.status !== 404) throw crm.http.failure(res)
      }
      return { tracked, parties }
    },

    // Set Regarding's search: active contacts and accounts whose name contains the text.
    search: async (ctx, input) => {
      const crm = await crmOf(ctx.userId)
      const top = input.top ?? 10
      const out: CrmRef[] = []
      for (const [table, t] of [['contact', NAME_OF.contact!], ['account', NAME_OF.account!]] as const) {
        const filter = `contains(${t.name},${odataString(input.text)}) and statecode eq 0`
        const page = await crm.http.getJson(`${t.set}?$select=${t.key},${t.name}&$filter=${encodeURIComponent(filter)}&$top=${top}`, PageSchema)
        for (const row of page.value) {
          const id = row[t.key]
          const name = row[t.name]
          if (typeof id === 'string') out.push({ table, id, ...(typeof name === 'string' ? { name: name.slice(0, 512) } : {}) })
        }
      }
      return { records: out.slice(0, top) }
    },


    // Privacy: only sender, recipients and subject reach the decision (the protocol refuses anything else).
    shouldTrack: async (ctx, email) => {
      const crm = await crmOf(ctx.userId)
      const header = { sender: email.from.address.toLowerCase(), recipients: [...email.to, ...email.cc].map((a) => a.address.toLowerCase()), subject: email.subject }
      const option = await getAutoTrackOption(crm)
      const lookups = await trackingLookups(crm, header, null)
      // A CRM tracking token at the end of the subject marks a response to a tracked CRM e-mail.
      if (extractTrackingToken(email.subject) !== null) lookups.respondsToTrackedEmail = true
      return { track: shouldTrack(header, option, lookups).track }
    },

    track: async (ctx, input) => {
      if (input.kind === 'contact') throw new OutlookProtocolError('bad_request', 'kind: contacts are not tracked; use addContact')
      const crm = await crmOf(ctx.userId)
      const result = await trackItem(crm, {
        kind: input.kind,
        concordId: input.concordId ?? `c_${randomUUID()}`,
        fields: fieldsOf(input.kind, input.fields),
        ...(input.regarding ? { regarding: input.regarding } : {}),
      })
      return { crmId: result.nativeId }
    },

    setRegarding: async (ctx, input) => {
      const crm = await crmOf(ctx.userId)
      await readable(crm, input.crmId)
      await setRegarding(crm, input.crmId, input.regarding)
      return { crmId: input.crmId }
    },

    // Deletes the CRM copy only when the user owns it; otherwise only unlinks (adapter-crm decides).
    stopTracking: async (ctx, input) => {
      const crm = await crmOf(ctx.userId)
      await readable(crm, input.crmId)
      const result = await stopTracking(crm, input.crmId)
      return { deleted: result.action === 'deleted' }
    },

    addContact: async (ctx, input) => {
      const crm = await crmOf(ctx.userId)
      const address = input.sender.address.toLowerCase()
      const existing = (await crm.resolveAddresses([address])).get(address)?.find((m) => m.table === 'contact')
      if (existing) return { crmId: nativeIdOf('contact', existing.id), created: false }
      const [givenName, ...rest] = (input.sender.name ?? '').trim().split(/\s+/).filter((s) => s.length > 0)
      const fields = fieldsOf('contact', { email1: input.sender.address, ...(givenName ? { givenName } : {}), ...(rest.length > 0 ? { surname: rest.join(' ') } : {}) })
      const concordId = asConcordId(`c_${randomUUID()}`)
      const { applied, rejected } = await crm.push([{ opId: asOpId(`add-contact-${concordId}`), type: 'create', concordId, kind: 'contact', fields }])
      const failure = rejected[0]
      if (failure) throw failure.error
      const created = applied[0]
      if (!created?.nativeId) throw new SyncError('InvalidRemoteData', `the CRM did not return the id of the contact created for ${input.sender.address}`)
      return { crmId: created.nativeId, created: true }
    },

    // Lightweight mode: only the ids of the user's own records of a kind.
    lookupIds: async (ctx, kind) => {
      const crm = await crmOf(ctx.userId)
      const table = TABLES[kind]
      const owner = await crm.ownerId()
      const ids: string[] = []
      let url: string | undefined = `${table.entitySet}?$select=${table.primaryKey}&$filter=${encodeURIComponent(`_ownerid_value eq ${owner}`)}`
      while (url !== undefined) {
        const page: z.infer<typeof PageSchema> = await crm.http.getJson(url, PageSchema, { Prefer: 'odata.maxpagesize=1000' })
        for (const row of page.value) {
          const id = row[table.primaryKey]
          if (typeof id === 'string') ids.push(nativeIdOf(kind, id))
        }
        if (ids.length > MAX_LOOKUP_IDS) throw new OutlookProtocolError('too_large', `user ${ctx.userId} has more than ${MAX_LOOKUP_IDS} ${kind} records; lightweight lookup is limited to ${MAX_LOOKUP_IDS}`)
        url = page['@odata.nextLink']
      }
      return ids
    },

    lookupDetails: async (ctx, crmIds) => {
      const crm = await crmOf(ctx.userId)
      const out: CrmRecord[] = []
      for (const crmId of crmIds) {
        const { kind } = crmIdOf(crmId)
        let record: Awaited<ReturnType<CrmAdapter['getRecord']>>
        try {
          record = await crm.getRecord(crmId as NativeId)
        } catch (error) {
          if (error instanceof SyncError && error.code === 'Forbidden') throw new OutlookProtocolError('forbidden', `user ${ctx.userId} may not read CRM record ${crmId}`)
          throw error
        }
        if (!record) throw new OutlookProtocolError('not_found', `no CRM record ${crmId}`)
        out.push({ crmId, kind, fields: JSON.parse(JSON.stringify(record.fields)) as Record<string, unknown> })
      }
      return out
    },
  }
}
