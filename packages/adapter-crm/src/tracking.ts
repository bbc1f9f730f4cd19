import { asConcordId, asOpId, SyncError, type ConcordId, type Fields, type NativeId, type Regarding } from '@concord/engine'
import { z } from 'zod'
import type { CorrelationResult } from './correlation.js'
import { parseNativeId, type CrmAdapter } from './crm-adapter.js'
import { parseJson } from './http.js'
import { LINK_COLUMN, REGARDING_SETS, TABLES } from './mapping.js'

/** Automatic tracking of incoming e-mail (Personal Options > Email, §5.8). */
export const AutoTrackOptions = ['all', 'responsesToCrmEmail', 'fromLeadsContactsAccounts', 'fromEmailEnabledRecords', 'none'] as const
export type AutoTrackOption = (typeof AutoTrackOptions)[number]
/** The documented default: e-mail messages in response to CRM e-mail. */
export const DEFAULT_AUTO_TRACK: AutoTrackOption = 'responsesToCrmEmail'

/** `usersettings.incomingemailfilteringmethod` → option. */
export const FILTERING_METHOD: Record<number, AutoTrackOption> = { 0: 'all', 1: 'responsesToCrmEmail', 2: 'fromLeadsContactsAccounts', 3: 'fromEmailEnabledRecords', 4: 'none' }

/**
 * The only e-mail data automatic tracking may look at: sender, recipients and subject (privacy: no
 * body, no attachments). Extra properties are rejected.
 */
export const EmailHeaderInfoSchema = z.strictObject({
  sender: z.string().min(1).max(320),
  recipients: z.array(z.string().min(1).max(320)).max(2000),
  subject: z.string().max(2000),
})
export type EmailHeaderInfo = z.infer<typeof EmailHeaderInfoSchema>

/** What the CRM knows about the e-mail's parties (looked up beforehand). */
export const TrackingLookupsSchema = z.strictObject({
  /** Logical names of the records the sender's address resolved to (systemuser, contact, account, lead, …). */
  senderRecordTypes: z.array(z.string().min(1)),
  /** Correlation found an already tracked CRM e-mail this one responds to. */
  respondsToTrackedEmail: z.boolean(),
})
export type TrackingLookups = z.infer<typeof TrackingLookupsSchema>

export interface TrackDecision {
  track: boolean
  reason: string
}

/** Pure: should this incoming e-mail be tracked automatically? */
export function shouldTrack(header: EmailHeaderInfo, option: AutoTrackOption, lookups: TrackingLookups): TrackDecision {
  const h = EmailHeaderInfoSchema.safeParse(header)
  if (!h.success) throw new SyncError('Validation', `Invalid e-mail header info: ${h.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
  const l = TrackingLookupsSchema.safeParse(lookups)
  if (!l.success) throw new SyncError('Validation', `Invalid tracking lookups: ${l.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
  const types = l.data.senderRecordTypes
  switch (option) {
    case 'all':
      return { track: true, reason: 'all e-mail messages are tracked' }
    case 'none':
      return { track: false, reason: 'automatic tracking is off' }
    case 'responsesToCrmEmail':
      return l.data.respondsToTrackedEmail ? { track: true, reason: 'responds to a tracked CRM e-mail' } : { track: false, reason: 'not a response to a tracked CRM e-mail' }
    case 'fromLeadsContactsAccounts': {
      const hit = types.find((t) => t === 'lead' || t === 'contact' || t === 'account')
      return hit ? { track: true, reason: `sender ${h.data.sender} is a CRM ${hit}` } : { track: false, reason: `sender ${h.data.sender} is not a lead, contact or account` }
    }
    case 'fromEmailEnabledRecords':
      return types.length > 0 ? { track: true, reason: `sender ${h.data.sender} is a CRM ${types[0]}` } : { track: false, reason: `sender ${h.data.sender} matches no e-mail enabled record` }
  }
}

const SettingsSchema = z.object({ incomingemailfilteringmethod: z.number().int().nullable().optional() }).loose()

/** The owner's automatic tracking option (`usersettings.incomingemailfilteringmethod`). */
export async function getAutoTrackOption(adapter: CrmAdapter, signal?: AbortSignal): Promise<AutoTrackOption> {
  const id = await adapter.ownerId(signal)
  const s = await adapter.http.getJson(`usersettingscollection(${id})?$select=incomingemailfilteringmethod`, SettingsSchema, {}, signal)
  return FILTERING_METHOD[s.incomingemailfilteringmethod ?? 1] ?? DEFAULT_AUTO_TRACK
}

/** CRM lookups for `shouldTrack`: what the sender resolves to (first match, §5.8 order) and correlation. */
export async function trackingLookups(adapter: CrmAdapter, header: EmailHeaderInfo, correlation: CorrelationResult | null, signal?: AbortSignal): Promise<TrackingLookups> {
  const matches = await adapter.resolveAddresses([header.sender.toLowerCase()], signal)
  return { senderRecordTypes: (matches.get(header.sender.toLowerCase()) ?? []).map((m) => m.table), respondsToTrackedEmail: correlation !== null && correlation.method !== 'None' && correlation.method !== 'Skipped' }
}

export type TrackableKind = 'email' | 'appointment' | 'task'

export interface TrackInput {
  kind: TrackableKind
  concordId: ConcordId | string
  fields: Fields
  /** Set Regarding at the same time (null: none). Default: what correlation found, if anything. */
  regarding?: Regarding | null | undefined
  /** For e-mail: the correlation result, recorded in `correlationmethod` and `correlatedactivityid`. */
  correlation?: CorrelationResult | undefined
}

export interface TrackResult {
  nativeId: NativeId
  version: string
  /** False when the CRM already had it (same Concord id, or an e-mail with the same Message-ID tracked by another recipient). */
  created: boolean
}

const ExistingSchema = z.object({ '@odata.etag': z.string().min(1), activityid: z.string().min(1) }).loose()

/** Track: create the CRM activity for a mailbox item and link it (idempotent on the Concord id and, for e-mail, the Message-ID). */
export async function trackItem(adapter: CrmAdapter, input: TrackInput, signal?: AbortSignal): Promise<TrackResult> {
  const table = TABLES[input.kind]
  const messageId = input.kind === 'email' ? input.fields.internetMessageId : undefined
  if (typeof messageId === 'string' && messageId !== '') {
    const res = await adapter.http.raw('GET', `emails(messageid=${encodeURIComponent(`'${messageId.replace(/'/g, "''")}'`)})?$select=activityid`, { signal })
    if (res.status === 200) {
      const row = parseJson(res, ExistingSchema, 'tracked e-mail')
      return { nativeId: `emails(${row.activityid})` as NativeId, version: row['@odata.etag'], created: false }
    }
    if (res.status !== 404) throw adapter.http.failure(res)
  }
  const fields: Fields = { ...input.fields }
  const regarding = input.regarding !== undefined ? input.regarding : input.correlation?.regarding
  if (regarding !== undefined) fields.regarding = regarding
  const extra: Record<string, unknown> = {}
  if (input.kind === 'email' && input.correlation) {
    extra.correlationmethod = input.correlation.code
    if (input.correlation.activityId) {
      const { id } = parseNativeId(input.correlation.activityId)
      extra['correlatedactivityid_email@odata.bind'] = `/emails(${id})`
      if (input.correlation.method === 'InReplyTo') extra['parentactivityid_email@odata.bind'] = `/emails(${id})`
    }
  }
  const op = { opId: asOpId(`track-${String(input.concordId)}`), type: 'create' as const, concordId: asConcordId(String(input.concordId)), kind: input.kind, fields }
  const masks = await adapter.masksForWrite(signal)
  const request = adapter.prepare(op, masks, await adapter.addressResolver([op], signal), extra)
  const res = await adapter.writeOne(request, signal)
  const settled = await adapter.settleOne(op, res, signal)
  if ('error' in settled) throw settled.error
  void table
  return { nativeId: settled.nativeId as NativeId, version: String(settled.version), created: res.status === 201 || res.status === 204 }
}

/** Set Regarding: link an activity to a contact, account, opportunity… (null clears it). Returns the new version. */
export async function setRegarding(adapter: CrmAdapter, nativeId: NativeId | string, regarding: Regarding | null, signal?: AbortSignal): Promise<string> {
  const { kind, id } = parseNativeId(nativeId)
  if (kind === 'contact') throw new SyncError('Validation', 'Set Regarding applies to activities (email, appointment, task), not contacts')
  const table = TABLES[kind]
  const body: Record<string, unknown> = {}
  if (regarding === null) body[`regardingobjectid_contact_${table.logicalName}@odata.bind`] = null
  else {
    const set = REGARDING_SETS[regarding.table]
    if (!set) throw new SyncError('Validation', `regarding.table '${regarding.table}' is not supported (${Object.keys(REGARDING_SETS).join(', ')})`)
    body[`regardingobjectid_${regarding.table}_${table.logicalName}@odata.bind`] = `/${set}(${regarding.id})`
  }
  const res = await adapter.http.request('PATCH', `${table.entitySet}(${id})`, { headers: { 'If-Match': '*' }, body: JSON.stringify(body), signal })
  return res.headers.get('etag') ?? ''
}

export interface StopTrackingResult {
  /** `deleted`: the owner owned the CRM copy, which is deleted. `unlinked`: it stays in the CRM, only the Concord link is removed. */
  action: 'deleted' | 'unlinked'
  /** For `unlinked`: whether the CRM row's Concord link column could be cleared (false without write access). */
  remoteUnlinked: boolean
}

/** Stop tracking: deletes the CRM copy only when the mailbox owner owns it; otherwise only unlinks. */
export async function stopTracking(adapter: CrmAdapter, nativeId: NativeId | string, signal?: AbortSignal): Promise<StopTrackingResult> {
  const { kind, id } = parseNativeId(nativeId)
  const table = TABLES[kind]
  const access = await adapter.checkRecordAccess(nativeId, signal)
  if (!access.mayRead) return { action: 'unlinked', remoteUnlinked: false }
  if (access.owned) {
    const res = await adapter.http.raw('DELETE', `${table.entitySet}(${id})`, { signal })
    if (res.status === 204 || res.status === 404) return { action: 'deleted', remoteUnlinked: true }
    throw adapter.http.failure(res)
  }
  const res = await adapter.http.raw('PATCH', `${table.entitySet}(${id})`, { headers: { 'If-Match': '*' }, body: JSON.stringify({ [LINK_COLUMN]: null }), signal })
  if (res.status >= 200 && res.status < 300) return { action: 'unlinked', remoteUnlinked: true }
  if (res.status === 403 || res.status === 404) return { action: 'unlinked', remoteUnlinked: false }
  throw adapter.http.failure(res)
}
