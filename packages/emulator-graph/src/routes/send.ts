/**
 * Sending mail: `POST /users/{id}/sendMail` and `POST /users/{id}/messages/{id}/send`. The sent copy goes
 * to Sent Items; recipients that are mailboxes of this emulator get a copy in their Inbox (same
 * internetMessageId). Mail to other addresses goes nowhere.
 *
 * A client-supplied `internetMessageId` is kept on every copy; single-value extended properties of the
 * message are kept on the Sent Items copy (they are the sender's own MAPI properties) and not on the
 * recipients' copies. Every submission counts against the mailbox's sending limits (send-limits.ts).
 */
import { z } from 'zod'
import { GraphHttpError } from '../errors.js'
import { newGuid } from '../ids.js'
import type { Router } from '../router.js'
import { messageSchema } from '../store/schemas.js'
import type { WriteInput } from '../store/store.js'
import type { Item, Mailbox } from '../store/types.js'
import { mailboxOf, ok, readBody, type Ctx, type Handler } from './context.js'

const sendMailSchema = z.strictObject({
  message: messageSchema,
  saveToSentItems: z.union([z.boolean(), z.enum(['true', 'false'])]).optional(),
})

type Recipient = { emailAddress?: { address?: string | null; name?: string | null } }

function recipientsOf(data: Record<string, unknown>): string[] {
  const out: string[] = []
  for (const k of ['toRecipients', 'ccRecipients', 'bccRecipients']) {
    for (const r of (data[k] as Recipient[] | undefined) ?? []) {
      const a = r.emailAddress?.address
      if (typeof a === 'string' && a) out.push(a)
    }
  }
  return out
}

function deliver(ctx: Ctx, sender: Mailbox, data: Record<string, unknown>, saveToSent: boolean): void {
  const store = ctx.core.store
  const recipients = recipientsOf(data)
  if (recipients.length === 0) {
    throw new GraphHttpError(400, 'ErrorInvalidRecipients', 'At least one recipient is required, but none were found.')
  }
  const now = ctx.core.clock.iso()
  const from = data['from'] ?? { emailAddress: { name: sender.displayName, address: sender.upn } }
  ctx.core.sendLimits.admit(sender.id, recipients.length)
  const { singleValueExtendedProperties: ext, multiValueExtendedProperties: _m, ...fields } = data
  const common = { ...fields, from, sender: from, sentDateTime: now, receivedDateTime: now, isDraft: false }
  const internetMessageId = typeof data['internetMessageId'] === 'string' ? data['internetMessageId'] : `<${newGuid()}@emulator.contoso.test>`
  if (saveToSent) {
    store.createItem(sender, 'message', store.requireContainer(sender, 'mailFolder', 'sentitems'), {
      fields: { ...common, internetMessageId, isRead: true },
      ext: ext as WriteInput['ext'],
    })
  }
  const seen = new Set<string>()
  for (const address of recipients) {
    const target = store.findMailbox(address)
    if (!target || seen.has(target.id)) continue
    seen.add(target.id)
    store.createItem(target, 'message', store.requireContainer(target, 'mailFolder', 'inbox'), {
      fields: { ...common, internetMessageId, isRead: false, bccRecipients: [] },
    })
  }
}

export function registerSendRoutes(r: Router<Handler>): void {
  r.add('POST', 'users/:user/sendMail', (ctx) => {
    const mb = mailboxOf(ctx)
    const body = readBody(ctx, sendMailSchema, 'sendMail')
    deliver(ctx, mb, body.message as Record<string, unknown>, body.saveToSentItems !== false && body.saveToSentItems !== 'false')
    return ok(undefined, 202)
  })
  r.add('POST', 'users/:user/messages/:id/send', (ctx) => {
    const mb = mailboxOf(ctx)
    const item: Item = ctx.core.store.requireItem(mb, ctx.params['id'] ?? '', 'message')
    if (item.data['isDraft'] !== true) {
      throw new GraphHttpError(400, 'ErrorInvalidOperation', 'Only draft messages can be sent.')
    }
    deliver(ctx, mb, item.data, false)
    const now = ctx.core.clock.iso()
    ctx.core.store.updateItem(mb, item, { fields: { isDraft: false, sentDateTime: now, isRead: true, from: item.data['from'] ?? { emailAddress: { name: mb.displayName, address: mb.upn } } } })
    ctx.core.store.moveItem(mb, item, ctx.core.store.requireContainer(mb, 'mailFolder', 'sentitems'))
    return ok(undefined, 202)
  })
}
