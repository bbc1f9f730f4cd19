/**
 * The server's own durable state, next to the engine's data in the same LevelDB: per-mailbox lifecycle
 * state, a bounded sync history, per-user sync filters, the organization's direction overrides, and the
 * outgoing-email journal. Values are JSON; every read is validated with zod (a corrupt value is an error
 * naming the key, never a crash later).
 */
import type { StoreDatabase } from '@concord/engine'
import { DirectionSchema, SyncFilterSetSchema, type SyncFilterSet } from '@concord/engine'
import { z } from 'zod'
import { ServerError } from './errors.js'

export const MailboxLifecycleStates = ['pending', 'enabled', 'disabled'] as const
export type MailboxLifecycleState = (typeof MailboxLifecycleStates)[number]

export const MailboxStateSchema = z.strictObject({
  mailboxId: z.string(),
  state: z.enum(MailboxLifecycleStates),
  /** Why it is not enabled (eligibility reasons, or the error that disabled it). */
  reason: z.string().optional(),
  /** Transient failures in a row. */
  failures: z.number().int().min(0),
  lastSyncAt: z.number().optional(),
  lastSuccessAt: z.number().optional(),
  lastError: z.string().optional(),
  disabledAt: z.number().optional(),
  /** The CRM test statuses the mailbox was disabled under: it is re-enabled when a new Test & Enable passes. */
  disabledTestStamp: z.string().optional(),
})
export type MailboxState = z.infer<typeof MailboxStateSchema>

export const HistoryEntrySchema = z.strictObject({
  at: z.number(),
  durationMs: z.number(),
  outcome: z.enum(['ok', 'throttled', 'error', 'skipped']),
  reason: z.string().optional(),
  pulled: z.strictObject({ crm: z.number(), mailbox: z.number() }),
  pushed: z.strictObject({ crm: z.number(), mailbox: z.number() }),
  /** Pushes that failed and stay owed (retried next cycle) or were re-merged after a conflict. */
  rejected: z.strictObject({ crm: z.number(), mailbox: z.number() }),
  merged: z.number(),
  conflicts: z.number(),
  requests: z.strictObject({ crm: z.number(), mailbox: z.number() }),
  error: z.string().optional(),
})
export type HistoryEntry = z.infer<typeof HistoryEntrySchema>

export const DirectionOverridesSchema = z.partialRecord(z.enum(['email', 'appointment', 'contact', 'task']), z.record(z.string(), DirectionSchema))
export type DirectionOverrides = z.infer<typeof DirectionOverridesSchema>

export const SendJournalEntrySchema = z.strictObject({
  emailId: z.string(),
  mailboxId: z.string(),
  internetMessageId: z.string(),
  state: z.enum(['claimed', 'sent', 'failed']),
  at: z.number(),
  /** What is being sent (kept so that a send interrupted after the CRM claim can be finished). */
  mail: z.record(z.string(), z.unknown()).optional(),
  error: z.string().optional(),
})
export type SendJournalEntry = z.infer<typeof SendJournalEntrySchema>

const HISTORY_LIMIT = 200
const pad = (n: number) => n.toString().padStart(16, '0')

export class ServerStateStore {
  constructor(private readonly db: StoreDatabase) {}

  private async getJson<T>(key: string, schema: z.ZodType<T>): Promise<T | undefined> {
    const raw = await this.db.get(key)
    if (raw === undefined) return undefined
    let value: unknown
    try {
      value = JSON.parse(raw)
    } catch (error) {
      throw new ServerError('Internal', `server state ${key} is not JSON`, { cause: error })
    }
    const parsed = schema.safeParse(value)
    if (!parsed.success) throw new ServerError('Internal', `server state ${key} is malformed: ${parsed.error.issues[0]?.message}`, { cause: parsed.error })
    return parsed.data
  }

  private async values<T>(prefix: string, schema: z.ZodType<T>, options: { reverse?: boolean; limit?: number } = {}): Promise<T[]> {
    const out: T[] = []
    for await (const raw of this.db.values({ gt: prefix, lt: `${prefix}\uffff`, reverse: options.reverse ?? false, limit: options.limit ?? -1 })) {
      const parsed = schema.safeParse(JSON.parse(raw))
      if (parsed.success) out.push(parsed.data)
    }
    return out
  }

  getMailbox(mailboxId: string): Promise<MailboxState | undefined> {
    return this.getJson(`mbx:${mailboxId}`, MailboxStateSchema)
  }

  async putMailbox(state: MailboxState): Promise<void> {
    await this.db.put(`mbx:${state.mailboxId}`, JSON.stringify(MailboxStateSchema.parse(state)))
  }

  listMailboxes(): Promise<MailboxState[]> {
    return this.values('mbx:', MailboxStateSchema)
  }

  /** Appends a history entry and trims the mailbox's history to the newest `HISTORY_LIMIT`. */
  async appendHistory(mailboxId: string, entry: HistoryEntry): Promise<void> {
    const prefix = `hist:${mailboxId}:`
    const keys: string[] = []
    for await (const key of this.db.keys({ gt: prefix, lt: `${prefix}\uffff`, reverse: true })) keys.push(key)
    const last = keys[0] ? Number(keys[0].slice(prefix.length)) : 0
    const ops: Array<{ type: 'put'; key: string; value: string } | { type: 'del'; key: string }> = [
      { type: 'put', key: `${prefix}${pad(last + 1)}`, value: JSON.stringify(entry) },
    ]
    for (const key of keys.slice(HISTORY_LIMIT - 1)) ops.push({ type: 'del', key })
    await this.db.batch(ops)
  }

  /** Newest first. */
  history(mailboxId: string, limit = 50): Promise<HistoryEntry[]> {
    return this.values(`hist:${mailboxId}:`, HistoryEntrySchema, { reverse: true, limit })
  }

  getFilters(userId: string): Promise<SyncFilterSet | undefined> {
    return this.getJson(`filters:${userId}`, SyncFilterSetSchema)
  }

  async putFilters(userId: string, filters: SyncFilterSet): Promise<void> {
    await this.db.put(`filters:${userId}`, JSON.stringify(filters))
  }

  async getDirections(): Promise<DirectionOverrides> {
    return (await this.getJson('directions', DirectionOverridesSchema)) ?? {}
  }

  async putDirections(overrides: DirectionOverrides): Promise<void> {
    await this.db.put('directions', JSON.stringify(DirectionOverridesSchema.parse(overrides)))
  }

  async getAutoTrackMark(mailboxId: string): Promise<number> {
    const raw = await this.db.get(`autotrack:${mailboxId}`)
    return raw === undefined ? 0 : Number(raw)
  }

  async putAutoTrackMark(mailboxId: string, seq: number): Promise<void> {
    await this.db.put(`autotrack:${mailboxId}`, String(seq))
  }

  /** The mailbox's Graph subscription snapshot (adapter-exchange `SubscriptionState`; no secret in it). */
  async getSubscriptions(mailboxId: string): Promise<unknown> {
    const raw = await this.db.get(`subs:${mailboxId}`)
    return raw === undefined ? undefined : (JSON.parse(raw) as unknown)
  }

  async putSubscriptions(mailboxId: string, snapshot: unknown): Promise<void> {
    await this.db.put(`subs:${mailboxId}`, JSON.stringify(snapshot))
  }

  getSend(emailId: string): Promise<SendJournalEntry | undefined> {
    return this.getJson(`send:${emailId}`, SendJournalEntrySchema)
  }

  /** Sends of a mailbox that were claimed in the CRM but not recorded as sent (a crash interrupted them). */
  async unfinishedSends(mailboxId: string): Promise<SendJournalEntry[]> {
    return (await this.values('send:', SendJournalEntrySchema)).filter((e) => e.mailboxId === mailboxId && e.state === 'claimed')
  }

  async putSend(entry: SendJournalEntry): Promise<void> {
    await this.db.put(`send:${entry.emailId}`, JSON.stringify(SendJournalEntrySchema.parse(entry)))
  }
}
