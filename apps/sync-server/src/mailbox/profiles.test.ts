import { expect, test } from 'vitest'
import type { EmailServerProfile, ServerConfig } from '../config.js'
import { CrmServerTypes, bindMailbox, crmProfileTypeOf, mailServerOptionsOf } from './profiles.js'

const imap: EmailServerProfile = {
  name: 'Contoso IMAP',
  type: 'imap',
  incoming: { host: 'imap.contoso.test', port: 993, tls: true, requireTls: false, timeoutMs: 30_000 },
  outgoing: { host: 'smtp.contoso.test', port: 587, tls: false, requireTls: true, timeoutMs: 30_000 },
  folders: ['INBOX'],
  sentFolder: 'Sent',
  leaveOnServer: true,
  mailboxes: { 'ina@contoso.test': { user: 'ina', password: 'imap-pw', smtpUser: 'ina-smtp', smtpPassword: 'smtp-pw' } },
}
const config: Pick<ServerConfig, 'profiles'> = { profiles: [imap, { ...imap, name: 'Exchange Online', type: 'exchange', mailboxes: {} }] }

test('no CRM profile: Exchange over Graph, as before', () => {
  expect(bindMailbox(config, { email: 'ann@contoso.test' })).toEqual({ binding: { type: 'exchange' } })
})

test('the CRM profile name selects the configured profile (case-insensitive) and the mailbox credentials', () => {
  const r = bindMailbox(config, { email: 'Ina@contoso.test', profile: { id: 'p1', name: 'contoso imap', type: 'imap' } })
  expect(r).toMatchObject({ binding: { type: 'imap', profile: 'Contoso IMAP', credentials: { user: 'ina' } } })
  expect(bindMailbox(config, { email: 'x@contoso.test', profile: { id: 'p2', name: 'Exchange Online', type: 'exchange' } })).toEqual({ binding: { type: 'exchange', profile: 'Exchange Online' } })
})

test('an unknown profile, a type mismatch or missing credentials: not eligible, with the reason', () => {
  expect(bindMailbox(config, { email: 'ina@contoso.test', profile: { id: 'p', name: 'Gmail' } })).toEqual({ reason: expect.stringContaining('"Gmail" is not configured') })
  expect(bindMailbox(config, { email: 'ina@contoso.test', profile: { id: 'p', name: 'Contoso IMAP', type: 'exchange' } })).toEqual({ reason: expect.stringContaining('is an Exchange profile in the CRM but imap') })
  expect(bindMailbox(config, { email: 'bob@contoso.test', profile: { id: 'p', name: 'Contoso IMAP' } })).toEqual({ reason: expect.stringContaining('no credentials for bob@contoso.test') })
  const pop3Config = { profiles: [{ ...imap, name: 'Contoso POP3', type: 'pop3' as const }] }
  expect(bindMailbox(pop3Config, { email: 'ina@contoso.test', profile: { id: 'p', name: 'Contoso POP3', type: 'imap' } })).toEqual({ reason: expect.stringContaining('is an IMAP/SMTP profile in the CRM but pop3') })
  expect(bindMailbox(config, { email: 'x@contoso.test', profile: { id: 'p', name: 'Exchange Online', type: 'pop3' } })).toEqual({ reason: expect.stringContaining('is an "Other (POP3/SMTP)" profile in the CRM but exchange') })
})

test('CRM servertype values (Dataverse emailserverprofile_servertype): 0/2/3 Exchange, 1 Other (POP3/SMTP, also IMAP), 4 IMAP/SMTP', () => {
  expect([0, 1, 2, 3, 4, 5, null].map((v) => crmProfileTypeOf(v))).toEqual(['exchange', 'pop3', 'exchange', 'exchange', 'imap', undefined, undefined])
  expect(CrmServerTypes).toEqual({ ExchangeServer: 0, OtherPop3Smtp: 1, ExchangeServerHybrid: 2, ExchangeOnlineHybrid: 3, ImapSmtp: 4 })
  // "Other (POP3/SMTP)" predates IMAP/SMTP (4): an IMAP server configured under it is accepted.
  expect(bindMailbox(config, { email: 'ina@contoso.test', profile: { id: 'p', name: 'Contoso IMAP', type: 'pop3' } })).toMatchObject({ binding: { type: 'imap' } })
})

test('adapter options: incoming login, SMTP with its own login, Message-IDs in the mailbox domain', () => {
  const r = bindMailbox(config, { email: 'ina@contoso.test', profile: { id: 'p1', name: 'Contoso IMAP' } })
  if (!('binding' in r) || r.binding.type === 'exchange') throw new Error('expected an imap binding')
  expect(mailServerOptionsOf(r.binding, 'mbx:1', 'ina@contoso.test')).toEqual({
    replicaId: 'mbx:1',
    incoming: { protocol: 'imap', host: 'imap.contoso.test', port: 993, secure: true, user: 'ina', password: 'imap-pw', timeoutMs: 30_000, folders: ['INBOX'], sentFolder: 'Sent' },
    outgoing: { host: 'smtp.contoso.test', port: 587, secure: false, requireTls: true, timeoutMs: 30_000, user: 'ina-smtp', password: 'smtp-pw' },
    messageIdDomain: 'contoso.test',
  })
})
