/**
 * Per-message problems of imap/pop3 mailboxes (mail that cannot be parsed: broken MIME, wrong
 * charsets, over the size limit). Such a message is still synced from its envelope and the rest of
 * the mailbox flows; the problem is kept here for the admin API (`GET /api/mailboxes/:id/problems`)
 * and raised once as an alert on the CRM mailbox.
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

  /** Records a problem; true when this message was not reported before (raise an alert). */
  async record(mailboxId: string, p: MessageProblem): Promise<boolean> {
    const key = `${mailboxId}\u0000${p.nativeId}`
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
