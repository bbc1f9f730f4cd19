/**
 * `ClientRequestHandlers` against the CRM (adapter-crm): every request runs through the requesting
 * user's impersonated `CrmAdapter`, so the CRM's own security (roles, ownership, column security)
 * decides what the user may read and write.
 */
import { randomUUID } from 'node:crypto'
import { type CrmAdapter, type CrmKind, TABLES, extractTrackingToken, getAutoTrackOption, nativeIdOf, parseNativeId, setRegarding, shouldTrack, stopTracking, trackItem, trackingLookups } from '@concord/adapter-crm'
import { type ClientRequestHandlers, type CrmRecord, OutlookProtocolError } from '@concord/adapter-outlook'
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

export function crmRequestHandlers(crmOf: UserCrm): ClientRequestHandlers {
  return {
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
