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

/**
 * `emailserverprofile.servertype` (global choice `emailserverprofile_servertype`; MicrosoftDocs/powerapps-docs,
 * reference/entities/emailserverprofile.md): 0 Exchange Server, 1 Other (POP3/SMTP), 2 Exchange Server
 * (Hybrid), 3 Exchange Online (Hybrid), 4 IMAP/SMTP. Value 4 is newer than the others (the CRM 2016
 * reference lists 0–3), so organisations set up before it keep IMAP servers under 1.
 */
export const CrmServerTypes = { ExchangeServer: 0, OtherPop3Smtp: 1, ExchangeServerHybrid: 2, ExchangeOnlineHybrid: 3, ImapSmtp: 4 } as const

/** What a CRM profile's server type says about the server: Exchange, POP3/SMTP ("Other") or IMAP/SMTP. */
export type CrmProfileType = 'exchange' | 'pop3' | 'imap'

/** The kind of server a `servertype` value names; undefined for a value this version does not know. */
export function crmProfileTypeOf(servertype: number | null | undefined): CrmProfileType | undefined {
  switch (servertype) {
    case CrmServerTypes.ExchangeServer:
    case CrmServerTypes.ExchangeServerHybrid:
    case CrmServerTypes.ExchangeOnlineHybrid:
      return 'exchange'
    case CrmServerTypes.OtherPop3Smtp:
      return 'pop3'
    case CrmServerTypes.ImapSmtp:
      return 'imap'
    default:
      return undefined
  }
}

/** Which configured profile types a CRM server type accepts ("Other (POP3/SMTP)" also IMAP, see above). */
const ACCEPTS: Record<CrmProfileType, readonly ProfileType[]> = { exchange: ['exchange'], pop3: ['pop3', 'imap'], imap: ['imap'] }
const CRM_LABEL: Record<CrmProfileType, string> = { exchange: 'an Exchange profile', pop3: 'an "Other (POP3/SMTP)" profile', imap: 'an IMAP/SMTP profile' }

/** The profile a CRM mailbox row points at (`_emailserverprofile_value` and its name). */
export interface RowProfile {
  id: string
  name: string
  /** What the CRM profile's `servertype` says (see `crmProfileTypeOf`); absent when unknown. */
  type?: CrmProfileType | undefined
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
  if (row.profile.type !== undefined && !ACCEPTS[row.profile.type].includes(server.type)) {
    return { reason: `email server profile "${row.profile.name}" is ${CRM_LABEL[row.profile.type]} in the CRM but ${server.type} in the sync server config` }
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
