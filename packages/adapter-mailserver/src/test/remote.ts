/** "A person with a mail client": changes made directly on the IMAP server, outside Concord. */
import { EmailFieldsSchema, asNativeId, type Fields, type NativeId } from '@concord/engine'
import type { ImapFlow } from 'imapflow'
import { composeMessage, messageIdOf, normalizeMessageId, parseMessage } from '../mime.js'

export async function uidOf(c: ImapFlow, folder: string, nativeId: NativeId): Promise<number | undefined> {
  await c.mailboxOpen(folder)
  const mid = messageIdOf(nativeId)
  if (!mid) return undefined
  const uids = (await c.search({ header: { 'message-id': mid } }, { uid: true })) || []
  return uids.sort((a, b) => b - a)[0]
}

export function imapRemote(c: ImapFlow, folder: string) {
  return {
    async create(_kind: string, fields: Fields): Promise<NativeId> {
      const f = EmailFieldsSchema.parse(fields)
      const messageId = normalizeMessageId(f.internetMessageId) ?? `<remote-${Date.now()}-${Math.random().toString(36).slice(2)}@fabrikam.test>`
      await c.append(folder, await composeMessage({ fields: f, messageId, date: new Date('2026-11-20T10:00:00Z'), keepBcc: true }), ['\\Seen'])
      return asNativeId(`mid:${messageId}`)
    },
    /** Content is immutable on IMAP: a client "edits" by appending the new version and deleting the old one. */
    async update(nativeId: NativeId, _kind: string, patch: Fields): Promise<void> {
      const uid = await uidOf(c, folder, nativeId)
      if (uid === undefined) throw new Error(`remote.update: ${nativeId} not found`)
      const m = await c.fetchOne(String(uid), { uid: true, source: true }, { uid: true })
      if (!m || !m.source) throw new Error('remote.update: no source')
      const current = await parseMessage(m.source, { direction: 'incoming', flags: [] })
      const merged = EmailFieldsSchema.parse({ ...current.fields, ...patch, internetMessageId: current.fields.internetMessageId })
      await c.append(folder, await composeMessage({ fields: merged, messageId: current.fields.internetMessageId!, date: new Date('2026-11-21T10:00:00Z'), keepBcc: true }), ['\\Seen'])
      await c.mailboxOpen(folder)
      await c.messageDelete(String(uid), { uid: true })
    },
    async remove(nativeId: NativeId): Promise<void> {
      const uid = await uidOf(c, folder, nativeId)
      if (uid !== undefined) await c.messageDelete(String(uid), { uid: true })
    },
    /** Deletes and re-creates the folder with the same mail (a restore): a new UIDVALIDITY. */
    async resetUidValidity(): Promise<void> {
      const hold = `${folder}-hold-${Date.now()}`
      await c.mailboxCreate(hold)
      const mb = await c.mailboxOpen(folder)
      if (mb.exists > 0) await c.messageCopy('1:*', hold)
      await c.mailboxOpen('INBOX')
      await c.mailboxDelete(folder)
      await c.mailboxCreate(folder)
      const h = await c.mailboxOpen(hold)
      if (h.exists > 0) await c.messageCopy('1:*', folder)
      await c.mailboxOpen('INBOX')
      await c.mailboxDelete(hold)
    },
  }
}
