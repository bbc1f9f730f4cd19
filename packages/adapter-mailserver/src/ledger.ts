/**
 * The send ledger: what makes "send once" survive a crash. Before a CRM e-mail goes to SMTP its
 * Message-ID is recorded as `prepared`; after SMTP accepted it, `sent`; after the copy is in the
 * Sent folder, `filed`. A `prepared` entry found on a replay means a crash hit while the message
 * was with SMTP: it is never sent again automatically (`send-uncertain`), an operator decides.
 */
import { open, readFile, rename, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { z } from 'zod'
import { MailServerError } from './errors.js'

export const SendLedgerEntrySchema = z.strictObject({
  concordId: z.string().min(1).max(256),
  messageId: z.string().min(3).max(998),
  state: z.enum(['prepared', 'sent', 'filed']),
  /** ms since epoch of the last transition. */
  at: z.number().int().nonnegative(),
})
export type SendLedgerEntry = z.infer<typeof SendLedgerEntrySchema>

export interface SendLedger {
  get(concordId: string): Promise<SendLedgerEntry | undefined>
  /** Durable when it resolves. */
  put(entry: SendLedgerEntry): Promise<void>
  delete(concordId: string): Promise<void>
}

export class MemorySendLedger implements SendLedger {
  private readonly entries = new Map<string, SendLedgerEntry>()
  async get(concordId: string) {
    return this.entries.get(concordId)
  }
  async put(entry: SendLedgerEntry) {
    this.entries.set(entry.concordId, SendLedgerEntrySchema.parse(entry))
  }
  async delete(concordId: string) {
    this.entries.delete(concordId)
  }
}

const LedgerFileSchema = z.strictObject({ v: z.literal(1), entries: z.array(SendLedgerEntrySchema) })

/** A JSON file, rewritten atomically (temp file + fsync + rename) on every transition. */
export class FileSendLedger implements SendLedger {
  private entries: Map<string, SendLedgerEntry> | undefined
  private chain: Promise<void> = Promise.resolve()
  constructor(readonly path: string) {}

  private async load(): Promise<Map<string, SendLedgerEntry>> {
    if (this.entries) return this.entries
    let text: string | undefined
    try {
      text = await readFile(this.path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new MailServerError('invalid-options', `Cannot read the send ledger ${this.path}: ${(error as Error).message}`, {}, { cause: error })
    }
    const map = new Map<string, SendLedgerEntry>()
    if (text !== undefined) {
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch (error) {
        throw new MailServerError('invalid-options', `The send ledger ${this.path} is not JSON`, {}, { cause: error })
      }
      const parsed = LedgerFileSchema.safeParse(json)
      if (!parsed.success) throw new MailServerError('invalid-options', `The send ledger ${this.path} is invalid: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`)
      for (const e of parsed.data.entries) map.set(e.concordId, e)
    }
    this.entries = map
    return map
  }

  async get(concordId: string) {
    return (await this.load()).get(concordId)
  }

  put(entry: SendLedgerEntry): Promise<void> {
    return this.serialize(async () => {
      const map = await this.load()
      map.set(entry.concordId, SendLedgerEntrySchema.parse(entry))
      await this.flush(map)
    })
  }

  delete(concordId: string): Promise<void> {
    return this.serialize(async () => {
      const map = await this.load()
      if (map.delete(concordId)) await this.flush(map)
    })
  }

  private serialize(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn)
    this.chain = next.catch(() => {})
    return next
  }

  private async flush(map: Map<string, SendLedgerEntry>) {
    await mkdir(dirname(this.path), { recursive: true })
    const tmp = `${this.path}.${process.pid}.tmp`
    const fh = await open(tmp, 'w')
    try {
      await fh.writeFile(JSON.stringify({ v: 1, entries: [...map.values()] }))
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, this.path)
  }
}
