/**
 * What a user's Outlook clients (the App for Outlook and the client replica) may do, decided from the
 * sync server's own view of the user's mailbox (`SyncServer.mailboxOfUser`: the server's `MailboxState`
 * and the mailbox's email server profile), never from the CRM `mailboxes` row directly:
 *
 * - Track, Set Regarding, Stop tracking and Add contact need server-side sync: refused with
 *   `mailbox_not_enabled` unless the user's mailbox is in state `enabled`.
 * - Manual tracking (Track, Set Regarding, Stop tracking) is unsupported for POP3/SMTP mailboxes
 *   (protocols.md §5.1): refused with `profile_unsupported`. IMAP/SMTP and Exchange mailboxes may track.
 * - A mailbox's sync method for appointments, contacts and tasks is server-side sync or the Outlook
 *   client, never both (`actdeliverymethod`; "do not mix Outlook-client sync and SSS for appointments,
 *   contacts and tasks", §5.1): while the mailbox syncs any of them server-side, designating an Outlook
 *   sync client and syncing one are refused with `sync_method_conflict`. Email-only mailboxes
 *   (POP3/IMAP profiles, or ACT not enabled) leave ACT to the Outlook client.
 * - The Outlook sync client syncs only the kinds the server does not (`syncKinds`, the client pair's
 *   sync scope): no e-mail while the user's incoming e-mail is delivered by server-side sync (the CRM
 *   row has incoming e-mail enabled with delivery method server-side sync, tested or not — while it is
 *   pending or failing, e-mail waits for server-side sync; it never falls back to the Outlook client), so
 *   one message is never tracked by two paths (duplicates, §5.1, §5.8). Track and Set Regarding from
 *   Outlook are requests the server executes, not client sync: they still work.
 */
import { ALL_KINDS, type GuardedAction, type MailboxStatusResult, OutlookProtocolError, type RequestContext } from '@concord/adapter-outlook'
import type { ItemKind } from '@concord/engine'
import type { MailboxSummary } from '../server.js'

/** Reads the server's view of a user's mailbox. */
export type MailboxOfUser = (userId: string) => Promise<MailboxSummary | undefined>

/** Requests that need the user's mailbox enabled for server-side sync. */
export const NEEDS_SERVER_SIDE_SYNC: ReadonlySet<GuardedAction> = new Set(['track', 'setRegarding', 'stopTracking', 'addContact'])
/** Manual tracking requests, refused for POP3/SMTP mailboxes. */
export const MANUAL_TRACKING: ReadonlySet<GuardedAction> = new Set(['track', 'setRegarding', 'stopTracking'])
/** Requests that make or use an Outlook sync client for appointments, contacts and tasks. */
export const OUTLOOK_ITEM_SYNC: ReadonlySet<GuardedAction> = new Set(['designate', 'syncNow'])

export const POP3_TRACKING_REASON = 'manual tracking (Track, Set Regarding, Stop tracking) is not supported for mailboxes with a POP3/SMTP email server profile'
const ACT_KINDS: ReadonlySet<ItemKind> = new Set(['appointment', 'contact', 'task'])

/** Why the mailbox is not enabled for server-side sync, or undefined when it is. */
function notEnabledReason(mailbox: MailboxSummary | undefined): string | undefined {
  if (!mailbox) return 'this user has no mailbox that the sync server knows'
  if (mailbox.state === 'enabled') return undefined
  return `the mailbox ${mailbox.email ?? mailbox.mailboxId} is ${mailbox.state}${mailbox.reason ? `: ${mailbox.reason}` : ''}`
}

/** The appointments, contacts and tasks the enabled mailbox syncs server-side. */
function serverSideActKinds(mailbox: MailboxSummary | undefined): ItemKind[] {
  if (mailbox?.state !== 'enabled') return []
  return mailbox.kinds.filter((k) => ACT_KINDS.has(k))
}

/** Whether the user's incoming e-mail is delivered by server-side sync (so never by the Outlook client). */
function emailServerSide(mailbox: MailboxSummary | undefined): boolean {
  if (!mailbox) return false
  return mailbox.configured?.incoming === true || (mailbox.state === 'enabled' && mailbox.kinds.includes('email'))
}

/** The kinds the server syncs (or leaves to server-side sync) for the user: never the Outlook client's. */
export function serverSideKinds(mailbox: MailboxSummary | undefined): ItemKind[] {
  const kinds = new Set<ItemKind>(serverSideActKinds(mailbox))
  if (emailServerSide(mailbox)) kinds.add('email')
  return ALL_KINDS.filter((k) => kinds.has(k))
}

export class ClientSyncPolicy {
  constructor(private readonly mailboxOf: MailboxOfUser) {}

  /** The App for Outlook's `mailboxStatus`. */
  async status(userId: string): Promise<MailboxStatusResult> {
    const mailbox = await this.mailboxOf(userId)
    const profile = mailbox?.profile?.type
    const notEnabled = notEnabledReason(mailbox)
    if (notEnabled !== undefined) return { serverSideSync: false, reason: notEnabled.slice(0, 2000), ...(profile ? { profile } : {}) }
    if (profile === 'pop3') return { serverSideSync: true, profile, manualTracking: false, reason: POP3_TRACKING_REASON }
    return { serverSideSync: true, ...(profile ? { profile } : {}), manualTracking: true }
  }

  /**
   * `ClientSessionHostOptions.syncScope`: of the kinds the server syncs at all (`mailboxes.kinds`), those
   * the user's Outlook sync client syncs — all but the ones synced server-side for the user.
   */
  async syncKinds(userId: string, configured: readonly ItemKind[]): Promise<ItemKind[]> {
    const serverSide = new Set(serverSideKinds(await this.mailboxOf(userId)))
    return ALL_KINDS.filter((k) => configured.includes(k) && !serverSide.has(k))
  }

  /** `ClientSessionHostOptions.authorize`: throws the refusal, or returns when the action is allowed. */
  async authorize(ctx: RequestContext, action: GuardedAction): Promise<void> {
    const needsMailbox = NEEDS_SERVER_SIDE_SYNC.has(action)
    const itemSync = OUTLOOK_ITEM_SYNC.has(action)
    if (!needsMailbox && !itemSync) return
    const mailbox = await this.mailboxOf(ctx.userId)
    if (needsMailbox) {
      const reason = notEnabledReason(mailbox)
      if (reason !== undefined) throw new OutlookProtocolError('mailbox_not_enabled', `${action} requires server-side synchronization, and ${reason}. Ask your CRM administrator to enable the mailbox (Test & Enable).`)
      if (MANUAL_TRACKING.has(action) && mailbox?.profile?.type === 'pop3') throw new OutlookProtocolError('profile_unsupported', `${action}: ${POP3_TRACKING_REASON} (profile ${JSON.stringify(mailbox.profile.name ?? 'pop3')})`)
    }
    if (itemSync) {
      const kinds = serverSideActKinds(mailbox)
      if (kinds.length > 0) {
        throw new OutlookProtocolError(
          'sync_method_conflict',
          `${action}: the mailbox ${mailbox?.email ?? ''} syncs ${kinds.join(', ')} with server-side synchronization; a mailbox syncs appointments, contacts and tasks either server-side or through one Outlook sync client, never both`,
        )
      }
    }
  }
}
