/**
 * Automatic tracking of incoming email (the user's "track email messages" option, protocols.md §5.8):
 * after each cycle, new untracked incoming messages of the mailbox are checked — with only their sender,
 * recipients and subject — against the owner's option (all / responses to CRM email / from leads,
 * contacts and accounts / from email-enabled records / none). A message to track gets the tracking
 * category in the mailbox, so the next cycle brings it to the CRM, where it is correlated (In-Reply-To,
 * tracking token, conversation, smart matching) like every tracked email.
 */
import { type AutoTrackOption, type CrmAdapter, correlateEmail, extractTrackingToken, getAutoTrackOption, shouldTrack, trackingLookups } from '@concord/adapter-crm'
import { type Fields, type LogEntry, type Logger, TRACKED_CATEGORY, asOpId } from '@concord/engine'
import { z } from 'zod'
import type { MailboxWorker } from './mailbox-worker.js'

export interface AutoTrackStore {
  getAutoTrackMark(mailboxId: string): Promise<number>
  putAutoTrackMark(mailboxId: string, seq: number): Promise<void>
}

export interface AutoTrackResult {
  checked: number
  tracked: number
}

const addresses = (v: unknown): string[] => (Array.isArray(v) ? v.flatMap((a: { address?: unknown }) => (typeof a?.address === 'string' ? [a.address] : [])) : [])

function candidate(entry: LogEntry): Fields | undefined {
  if (entry.kind !== 'email' || entry.type !== 'upsert' || !entry.fields) return undefined
  const f = entry.fields
  if (f.direction === 'outgoing') return undefined
  if (f.regarding !== undefined && f.regarding !== null) return undefined
  if (Array.isArray(f.categories) && f.categories.includes(TRACKED_CATEGORY)) return undefined
  if (typeof (f.from as { address?: unknown } | null)?.address !== 'string') return undefined
  return f
}

function candidateHeader(f: Fields): Fields | undefined {
  if (f.direction === 'outgoing') return undefined
  if (typeof (f.from as { address?: unknown } | null)?.address !== 'string') return undefined
  return f
}

export class AutoTracker {
  constructor(
    private readonly store: AutoTrackStore,
    private readonly logger: Logger,
  ) {}

  async run(worker: MailboxWorker, signal?: AbortSignal): Promise<AutoTrackResult> {
    const id = worker.descriptor.mailboxId
    const result: AutoTrackResult = { checked: 0, tracked: 0 }
    if (!worker.descriptor.kinds.includes('email')) return result
    if (worker.mailServer) return result // imap/pop3: decided as messages are pulled (AutoTrackingSource)
    const replica = worker.mailbox.replicaId
    let mark = await this.store.getAutoTrackMark(id)
    let option: AutoTrackOption | undefined
    for (;;) {
      signal?.throwIfAborted()
      const entries = await worker.engineStore.readLog(replica, mark, 100)
      if (entries.length === 0) return result
      for (const entry of entries) {
        const fields = candidate(entry)
        if (fields && !(await this.linkedToCrm(worker, entry))) {
          option ??= await getAutoTrackOption(worker.crm, signal)
          if (option === 'none') {
            await this.store.putAutoTrackMark(id, entries.at(-1)!.seq)
            return result
          }
          result.checked++
          if (await this.decide(worker, fields, option, signal)) {
            await this.markTracked(worker, entry, fields)
            result.tracked++
          }
        }
        mark = entry.seq
      }
      await this.store.putAutoTrackMark(id, mark)
    }
  }

  /**
   * Decides a page of pulled incoming messages of an imap/pop3 mailbox (see AutoTrackingSource).
   * The owner's option is read once per page.
   */
  async decidePage(worker: MailboxWorker, page: readonly Fields[], signal?: AbortSignal): Promise<boolean[]> {
    const option = await getAutoTrackOption(worker.crm, signal)
    if (option === 'responsesToCrmEmail') return this.decideResponses(worker, page, signal)
    const out: boolean[] = []
    for (const f of page) {
      const header = candidateHeader(f)
      out.push(option !== 'none' && header !== undefined && (await this.decide(worker, f, option, signal)))
    }
    return out
  }

  /**
   * "E-mail messages in response to CRM e-mail" for a whole page: the CRM e-mails the page's messages
   * answer are looked up in a few batched queries (In-Reply-To → `messageid`, tracking token, conversation →
   * `conversationindex`; the order and keys of correlation §5.9, smart matching off as for Exchange), not
   * three queries per message. A message answering one tracked earlier in the same page counts too: it
   * reaches the CRM in the same cycle.
   */
  private async decideResponses(worker: MailboxWorker, page: readonly Fields[], signal?: AbortSignal): Promise<boolean[]> {
    const prefix = worker.crm.options.trackingTokenPrefix
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined)
    const wanted = { messageid: new Set<string>(), trackingtoken: new Set<string>(), conversationindex: new Set<string>() }
    for (const f of page) {
      if (!candidateHeader(f)) continue
      const inReplyTo = str(f.inReplyTo)
      const token = extractTrackingToken(str(f.subject) ?? '', prefix)
      const conversation = str(f.conversationId)
      if (inReplyTo) wanted.messageid.add(inReplyTo)
      if (token) wanted.trackingtoken.add(token)
      if (conversation) wanted.conversationindex.add(conversation)
    }
    const found = {
      messageid: await existingValues(worker.crm, 'messageid', wanted.messageid, signal),
      trackingtoken: await existingValues(worker.crm, 'trackingtoken', wanted.trackingtoken, signal),
      conversationindex: await existingValues(worker.crm, 'conversationindex', wanted.conversationindex, signal),
    }
    const trackedIds = new Set<string>()
    const trackedConversations = new Set<string>()
    return page.map((f) => {
      if (!candidateHeader(f)) return false
      const inReplyTo = str(f.inReplyTo)
      const token = extractTrackingToken(str(f.subject) ?? '', prefix)
      const conversation = str(f.conversationId)
      const responds =
        (inReplyTo !== undefined && (found.messageid.has(inReplyTo) || trackedIds.has(inReplyTo))) ||
        (token !== null && found.trackingtoken.has(token)) ||
        (conversation !== undefined && (found.conversationindex.has(conversation) || trackedConversations.has(conversation)))
      const header = { sender: (f.from as { address: string }).address, recipients: [...addresses(f.to), ...addresses(f.cc)], subject: str(f.subject) ?? '' }
      const decision = shouldTrack(header, 'responsesToCrmEmail', { senderRecordTypes: [], respondsToTrackedEmail: responds })
      this.logger.debug({ mailboxId: worker.descriptor.mailboxId, track: decision.track, reason: decision.reason }, 'automatic tracking')
      if (decision.track) {
        const own = str(f.internetMessageId)
        if (own) trackedIds.add(own)
        if (conversation) trackedConversations.add(conversation)
      }
      return decision.track
    })
  }

  private async linkedToCrm(worker: MailboxWorker, entry: LogEntry): Promise<boolean> {
    const [link] = await worker.engineStore.getLinks([entry.concordId])
    return link?.natives[worker.crm.replicaId] !== undefined
  }

  /** The privacy rule: only sender, recipients and subject are looked at. */
  private async decide(worker: MailboxWorker, f: Fields, option: AutoTrackOption, signal?: AbortSignal): Promise<boolean> {
    const header = { sender: (f.from as { address: string }).address, recipients: [...addresses(f.to), ...addresses(f.cc)], subject: typeof f.subject === 'string' ? f.subject : '' }
    const correlation =
      option === 'responsesToCrmEmail'
        ? await correlateEmail(worker.crm, { subject: header.subject, from: header.sender, to: addresses(f.to), cc: addresses(f.cc), inReplyTo: typeof f.inReplyTo === 'string' ? f.inReplyTo : null, conversationId: typeof f.conversationId === 'string' ? f.conversationId : null }, { useSmartMatching: false }, signal)
        : null
    // The sender's CRM records are looked up only for the options that need them.
    const needsSender = option === 'fromLeadsContactsAccounts' || option === 'fromEmailEnabledRecords'
    const lookups = needsSender
      ? await trackingLookups(worker.crm, header, correlation, signal)
      : { senderRecordTypes: [], respondsToTrackedEmail: correlation !== null && correlation.method !== 'None' && correlation.method !== 'Skipped' }
    const decision = shouldTrack(header, option, lookups)
    this.logger.debug({ mailboxId: worker.descriptor.mailboxId, track: decision.track, reason: decision.reason }, 'automatic tracking')
    return decision.track
  }

  private async markTracked(worker: MailboxWorker, entry: LogEntry, f: Fields): Promise<void> {
    const categories = [...(Array.isArray(f.categories) ? (f.categories as string[]) : []), TRACKED_CATEGORY]
    const res = await worker.mailbox.push([{ opId: asOpId(`autotrack-${entry.concordId}-${entry.seq}`), type: 'update', concordId: entry.concordId, kind: 'email', nativeId: entry.nativeId, fields: { categories } }])
    const rejected = res.rejected[0]
    if (rejected) throw rejected.error
  }
}

const ValuesPageSchema = z.object({ value: z.array(z.record(z.string(), z.unknown())) }).loose()
const CHUNK = 20

/** Which of `values` some CRM e-mail the owner can read has in `column` (batched `eq … or eq …` queries). */
async function existingValues(crm: CrmAdapter, column: 'messageid' | 'trackingtoken' | 'conversationindex', values: ReadonlySet<string>, signal?: AbortSignal): Promise<Set<string>> {
  const out = new Set<string>()
  const list = [...values].filter((v) => v.length <= 1024)
  for (let i = 0; i < list.length; i += CHUNK) {
    const filter = list.slice(i, i + CHUNK).map((v) => `${column} eq '${v.replace(/'/g, "''")}'`).join(' or ')
    const page = await crm.http.getJson(`emails?$select=${column}&$filter=${encodeURIComponent(filter)}`, ValuesPageSchema, { Prefer: 'odata.maxpagesize=500' }, signal)
    for (const row of page.value) if (typeof row[column] === 'string') out.add(row[column])
  }
  return out
}
