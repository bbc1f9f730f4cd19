/**
 * Email server profiles (server-side sync's `emailserverprofile`): which server a mailbox syncs with.
 * The CRM `mailboxes` row names the profile; the server's config says how to reach it. `exchange`
 * mailboxes go over Graph (today's path); `imap` / `pop3` mailboxes read incoming email from a plain
 * mail server and send over SMTP — email only (protocols.md §5.1).
 */
import type { MailServerOptionsInput } from '@concord/adapter-mailserver'
import type { EmailServerProfile, MailboxCredentials, ServerConfig } from '../config.js'
import type { MailboxRow } from './directory.js'

export const ProfileTypes = ['exchange', 'imap', 'pop3'] as const
export type ProfileType = (typeof ProfileTypes)[number]

/** The profile a CRM mailbox row points at (`_emailserverprofile_value` and its name). */
export interface RowProfile {
  id: string
  name: string
  /** The CRM profile's server type (`servertype`): Exchange, or "Other" (POP3/IMAP + SMTP); absent when unknown. */
  type?: 'exchange' | 'other' | undefined
}

/** How one mailbox is synced. Holds resolved secrets: never log it. */
export type MailboxBinding = { type: 'exchange'; profile?: string | undefined } | { type: 'imap' | 'pop3'; profile: string; server: EmailServerProfile; credentials: MailboxCredentials }

/** Why an imap/pop3 mailbox syncs email only (shown in the admin API). */
export const EMAIL_ONLY_REASON = 'a POP3/IMAP + SMTP email server profile syncs email only; appointments, contacts and tasks need an Exchange profile'

/** Resolves the row's profile against the config: a binding, or the reason the mailbox cannot sync. */
export function bindMailbox(config: Pick<ServerConfig, 'profiles'>, row: Pick<MailboxRow, 'email' | 'profile'>): { binding: MailboxBinding } | { reason: string } {
  if (!row.profile) return { binding: { type: 'exchange' } }
  const wanted = row.profile.name.toLowerCase()
  const server = config.profiles.find((p) => p.name.toLowerCase() === wanted)
  if (!server) return { reason: `email server profile "${row.profile.name}" is not configured in the sync server (config profiles[].name)` }
  if (row.profile.type !== undefined && (row.profile.type === 'exchange') !== (server.type === 'exchange')) {
    const crm = row.profile.type === 'exchange' ? 'an Exchange profile' : 'a POP3/IMAP + SMTP profile'
    return { reason: `email server profile "${row.profile.name}" is ${crm} in the CRM but ${server.type} in the sync server config` }
  }
  if (server.type === 'exchange') return { binding: { type: 'exchange', profile: server.name } }
  const credentials = server.mailboxes[row.email.toLowerCase()]
  if (!credentials) return { reason: `email server profile "${server.name}" has no credentials for ${row.email} (config profiles[].mailboxes)` }
  return { binding: { type: server.type, profile: server.name, server, credentials } }
}

/** adapter-mailserver options of a mailbox bound to an imap/pop3 profile. */
export function mailServerOptionsOf(binding: Extract<MailboxBinding, { type: 'imap' | 'pop3' }>, replicaId: string, email: string): MailServerOptionsInput {
  const s = binding.server
  const c = binding.credentials
  const incoming = s.incoming!
  const common = { host: incoming.host, port: incoming.port, secure: incoming.tls, user: c.user, password: c.password, timeoutMs: incoming.timeoutMs }
  return {
    replicaId,
    incoming: binding.type === 'imap' ? { protocol: 'imap', ...common, folders: s.folders, sentFolder: s.sentFolder } : { protocol: 'pop3', ...common, leaveOnServer: s.leaveOnServer },
    ...(s.outgoing
      ? {
          outgoing: {
            host: s.outgoing.host,
            port: s.outgoing.port,
            secure: s.outgoing.tls,
            requireTls: s.outgoing.requireTls,
            timeoutMs: s.outgoing.timeoutMs,
            ...(c.smtpUser !== undefined ? { user: c.smtpUser, password: c.smtpPassword } : {}),
          },
        }
      : {}),
    messageIdDomain: email.split('@')[1] ?? 'concord.invalid',
  }
}
