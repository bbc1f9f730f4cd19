/**
 * Per-message problems of imap/pop3 mailboxes. A problem never stops the rest of the mailbox, and the
 * message itself is synced anyway:
 * - `outcome: 'synced'` — synced with its content and reported: an unknown or wrong charset (read as
 *   UTF-8, unreadable bytes replaced), no Date header (no sent time), broken MIME that mailparser still
 *   read, an attachment above the CRM's attachment limit (not synced);
 * - `outcome: 'envelope'` — only its envelope/headers were synced: unparseable mail, or a message above
 *   `maxMessageBytes`.
 * Each (message, reason) is kept here for the admin API (`GET /api/mailboxes/:id/problems`) and raised
 * once as an alert on the CRM mailbox; a re-listing (e.g. after a restart) only counts it again.
 */
import type { MessageProblem } from '@concord/adapter-mailserver'
import type { StoreDatabase } from '@concord/engine'
import { z } from 'zod'

export const MessageProblemRecordSchema = z.strictObject({
  mailboxId: z.string(),
  nativeId: z.string(),
  folder: z.string(),
  /** IMAP UID or POP3 UIDL. */
  uid: z.union([z.number(), z.string()]),
  reason: z.string(),
  message: z.string(),
  /** `synced`: the e-mail synced with its content; `envelope`: only from its envelope (absent in records of older versions). */
  outcome: z.enum(['synced', 'envelope']).optional(),
  firstSeenAt: z.number(),
  lastSeenAt: z.number(),
  /** How often it was reported (each re-listing of the mailbox reports it again). */
  count: z.number().int().min(1),
})
export type MessageProblemRecord = z.infer<typeof MessageProblemRecordSchema>

const LIMIT = 1_000

export class MessageProblemLog {
  constructor(
    private readonly db: StoreDatabase,
    private readonly now: () => number,
  ) {}

  /** Records a problem; true when this message was not reported for this reason before (raise an alert). */
  async record(mailboxId: string, p: MessageProblem): Promise<boolean> {
    const key = `${mailboxId}\u0000${p.nativeId}\u0000${p.error.reason}`
    const raw = await this.db.get(key)
    const prior = raw === undefined ? undefined : MessageProblemRecordSchema.safeParse(JSON.parse(raw)).data
    const at = this.now()
    const record: MessageProblemRecord = {
      mailboxId,
      nativeId: String(p.nativeId),
      folder: p.folder,
      uid: p.uid,
      reason: p.error.reason,
      message: p.error.message,
      outcome: p.outcome,
      firstSeenAt: prior?.firstSeenAt ?? at,
      lastSeenAt: at,
      count: (prior?.count ?? 0) + 1,
    }
    await this.db.put(key, JSON.stringify(record))
    return prior === undefined
  }

  async list(mailboxId: string): Promise<MessageProblemRecord[]> {
    const prefix = `${mailboxId}\u0000`
    const out: MessageProblemRecord[] = []
    for await (const raw of this.db.values({ gt: prefix, lt: `${prefix}\uffff`, limit: LIMIT })) {
      const parsed = MessageProblemRecordSchema.safeParse(JSON.parse(raw))
      if (parsed.success) out.push(parsed.data)
    }
    return out.sort((a, b) => a.firstSeenAt - b.firstSeenAt)
  }
}

/** The CRM alert text of a problem (raised once per message and reason). */
export function alertTextOf(p: MessageProblem): string {
  const where = `${p.folder} ${typeof p.uid === 'number' ? `UID ${p.uid}` : `UIDL ${p.uid}`}`
  return p.outcome === 'envelope'
    ? `An email in ${where} could not be read (${p.error.reason}): ${p.error.message}. It was synced from its envelope; the other emails were not affected.`
    : `An email in ${where} has a problem (${p.error.reason}): ${p.error.message}. It was synced; the other emails were not affected.`
}
