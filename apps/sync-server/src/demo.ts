/**
 * `npm start`: both emulators in process, three seeded users (two enabled mailboxes and one whose
 * administrator just asked for Test & Enable), a few CRM contacts and an Outlook appointment each user tracked, and the
 * sync server keeping them in sync. Prints where the admin API is.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTrustedFetch } from '@concord/adapter-exchange'
import { type DataverseEmulator, startDataverseEmulator } from '@concord/emulator-dataverse'
import { type GraphEmulator, startGraphEmulator } from '@concord/emulator-graph'
import { type DovecotService, type SmtpSink, freePort, startSmtpSink, useDovecot } from '@concord/tools'
import nodemailer from 'nodemailer'
import type { Logger as PinoLogger } from 'pino'
import { type ServerConfig, parseServerConfig } from './config.js'
import { CrmMailboxDirectory } from './mailbox/crm-directory.js'
import { graphMailboxTester } from './mailbox/graph-tester.js'
import { SyncServer } from './server.js'
import { portFree } from './util/ports.js'

export const DEMO_ROLE = 'Concord Salesperson'

/** Privileges of a salesperson who syncs: organization-wide read (change tracking), own-record writes, sync to Outlook. */
export function salespersonPrivileges(): Record<string, string> {
  const p: Record<string, string> = { prvReadUser: 'Global', prvReadUserSettings: 'Basic', prvSyncToOutlook: 'Global', prvSendAsUser: 'Global' }
  // Leads and opportunities as for contacts (emulator privilege names prv<Access>Lead / prv<Access>Opportunity).
  for (const e of ['Contact', 'Activity', 'Account', 'Lead', 'Opportunity']) {
    p[`prvRead${e}`] = 'Global'
    for (const a of ['Create', 'Write', 'Delete', 'Append', 'AppendTo', 'Share', 'Assign']) p[`prv${a}${e}`] = 'Basic'
  }
  return p
}

export interface DemoOptions {
  /** Admin API port (default 8787; 0 = any free port). */
  port?: number | undefined
  /** Users to seed; the last one's mailbox waits for Test & Enable. Default alice, bob, carol. */
  users?: string[] | undefined
  dataDir?: string | undefined
  logger?: PinoLogger | undefined
  logLevel?: ServerConfig['logLevel'] | undefined
  /** Scheduler policy (default adaptive). */
  policy?: string | undefined
  /** Re-read CRM mailboxes this often (default 5 s in the demo). */
  refreshIntervalMs?: number | undefined
  /** Add an IMAP mailbox on a local Dovecot when Dovecot is installed (default true). */
  imap?: boolean | undefined
}

export const DEMO_IMAP_USER = { email: 'dora@contoso.test', user: 'dora' }

/** A Dovecot for the demo's IMAP mailbox and an SMTP sink for its outgoing mail, or why not. */
async function startDemoMailServer(): Promise<{ dovecot: DovecotService; sink: SmtpSink; password: string } | { skipped: string }> {
  const password = randomBytes(12).toString('base64url')
  let dovecot: DovecotService
  try {
    dovecot = await useDovecot({ via: ['local-binary'], users: [{ name: DEMO_IMAP_USER.user, password }] })
  } catch (error) {
    return { skipped: `Dovecot could not be started (${(error as Error).message.split('\n')[0]}); install it with: apt-get install -y ${'dovecot-imapd dovecot-pop3d dovecot-lmtpd'}` }
  }
  const sink = await startSmtpSink()
  // Two incoming messages, delivered as an MTA would (LMTP).
  const lmtp = nodemailer.createTransport({ host: dovecot.host, port: dovecot.lmtpPort, lmtp: true, ignoreTLS: true })
  try {
    for (const subject of ['Order 2001 from Fabrikam', 'Delivery date for order 2001']) {
      await lmtp.sendMail({ envelope: { from: 'c1.0@fabrikam.test', to: [`${DEMO_IMAP_USER.user}@localhost`] }, from: 'Contact1 <c1.0@fabrikam.test>', to: DEMO_IMAP_USER.email, subject, text: `${subject}.` })
    }
  } finally {
    lmtp.close()
  }
  return { dovecot, sink, password }
}

export interface Demo {
  /** The IMAP mailbox on a local Dovecot, or why there is none. */
  imap: { email: string; host: string; imapPort: number } | { skipped: string }
  server: SyncServer
  graph: GraphEmulator
  dataverse: DataverseEmulator
  config: ServerConfig
  users: Array<{ email: string; systemuserid: string; mailboxid: string }>
  stop(): Promise<void>
}

export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const emails = options.users ?? ['alice@contoso.test', 'bob@contoso.test', 'carol@contoso.test']
  const graph = await startGraphEmulator({ mailboxes: emails, https: true, clientId: 'concord-demo', clientSecret: 'demo-graph-secret' })
  const dataverse = await startDataverseEmulator({ users: [], testAndEnable: 'external' })
  let mail: Awaited<ReturnType<typeof startDemoMailServer>> | undefined
  const ownedDir = options.dataDir === undefined
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'concord-demo-')))
  try {
    dataverse.admin.upsertRole({ name: DEMO_ROLE, privileges: salespersonPrivileges() as never })
    const users = emails.map((email, i) => {
      const last = i === emails.length - 1 && emails.length > 1
      const u = dataverse.admin.addUser({ email, roles: [DEMO_ROLE], mailbox: last ? 'pending' : 'enabled' })
      return { email, systemuserid: u.systemuserid, mailboxid: u.mailboxid! }
    })
    // The administrator approves the last mailbox and asks for Test & Enable; the server runs the test.
    const last = users.at(-1)!
    if (emails.length > 1) {
      await dataverseApi(dataverse, 'PATCH', `mailboxes(${last.mailboxid})`, { emailrouteraccessapproval: 1, isemailaddressapprovedbyo365admin: true, enabledforincomingemail: true, enabledforoutgoingemail: true, enabledforact: true, orgmarkedasprimaryforexchangesync: true, testemailconfigurationscheduled: true })
    }
    // Some CRM contacts owned by each user, and an Outlook appointment each user tracked (category).
    for (const [i, u] of users.entries()) {
      for (let n = 1; n <= 3; n++) dataverse.admin.createRecord('contacts', { firstname: `Contact${n}`, lastname: `Of ${u.email.split('@')[0]}`, emailaddress1: `c${n}.${i}@fabrikam.test`, jobtitle: 'Buyer' }, u.systemuserid)
      graph.control.seed(u.email, 'event', [{ subject: `Customer visit ${i + 1}`, start: { dateTime: '2026-12-03T10:00:00.0000000', timeZone: 'UTC' }, end: { dateTime: '2026-12-03T11:00:00.0000000', timeZone: 'UTC' }, categories: ['Tracked to Dynamics 365'] }])
    }
    const clientState = randomBytes(24).toString('base64url')
    // The e-mail router path: one mailbox on IMAP + SMTP, when Dovecot is installed.
    mail = options.imap === false ? { skipped: 'disabled by the caller' } : await startDemoMailServer()
    if ('dovecot' in mail) {
      const u = dataverse.admin.addUser({ email: DEMO_IMAP_USER.email, roles: [DEMO_ROLE], mailbox: 'enabled' })
      const profile = dataverse.admin.createRecord('emailserverprofiles', { name: 'Contoso IMAP', servertype: 1 }).id
      await dataverseApi(dataverse, 'PATCH', `mailboxes(${u.mailboxid})`, { 'emailserverprofile@odata.bind': `/emailserverprofiles(${profile})` })
      await dataverseApi(dataverse, 'PATCH', `usersettingscollection(${u.systemuserid})`, { incomingemailfilteringmethod: 0 }) // track all email
      users.push({ email: DEMO_IMAP_USER.email, systemuserid: u.systemuserid, mailboxid: u.mailboxid! })
    }
    const profiles = 'dovecot' in mail
      ? [{ name: 'Contoso IMAP', type: 'imap', incoming: { host: mail.dovecot.host, port: mail.dovecot.imapPort }, outgoing: { host: '127.0.0.1', port: mail.sink.port }, mailboxes: { [DEMO_IMAP_USER.email]: { user: DEMO_IMAP_USER.user, password: mail.password } } }]
      : []
    const trusted = createTrustedFetch({ ca: graph.certificate! })
    const { server, config } = await onAdminPort(options.port ?? 8787, async (port) => {
      const config = await parseServerConfig({
        crm: { url: dataverse.url, tokenUrl: dataverse.tokenUrl, clientId: dataverse.clientId, clientSecret: dataverse.clientSecret },
        graph: { url: graph.url, tokenUrl: graph.tokenUrl, tenantId: graph.tenant, clientId: 'concord-demo', clientSecret: 'demo-graph-secret' },
        dataDir,
        admin: { port, token: randomBytes(18).toString('base64url') },
        push: { notificationUrl: `http://127.0.0.1:${port}/notifications`, clientState },
        scheduler: { policy: options.policy ?? 'adaptive' },
        mailboxes: { refreshIntervalMs: options.refreshIntervalMs ?? 5_000, retryDelayMs: 10_000 },
        logLevel: options.logLevel ?? 'info',
        ...(profiles.length ? { profiles } : {}),
      })
      const server = await SyncServer.start({
        config,
        directory: new CrmMailboxDirectory({ ...config.crm }),
        tester: graphMailboxTester({ ...config.graph, fetch: trusted.fetch }),
        graphFetch: trusted.fetch,
        ...(options.logger ? { logger: options.logger } : {}),
      })
      return { server, config }
    })
    const m = mail
    return {
      server, graph, dataverse, config, users,
      imap: 'dovecot' in m ? { email: DEMO_IMAP_USER.email, host: m.dovecot.host, imapPort: m.dovecot.imapPort } : { skipped: m.skipped },
      async stop() {
        await server.stop()
        await graph.close()
        await dataverse.close()
        if ('dovecot' in m) {
          await m.sink.close()
          await m.dovecot.stop()
        }
        if (ownedDir) await rm(dataDir, { recursive: true, force: true })
      },
    }
  } catch (error) {
    if (mail && 'dovecot' in mail) {
      await mail.sink.close()
      await mail.dovecot.stop()
    }
    await graph.close()
    await dataverse.close()
    if (ownedDir) await rm(dataDir, { recursive: true, force: true })
    throw error
  }
}

/**
 * Starts the server on the admin port `requested` (8787 by default) if it is free, else on a free one. The
 * port goes into the config (the notification URL), so it is picked before the server binds it: another
 * process (the demo's own Dovecot picks three free ports as it starts) may take it in between — then the
 * start is tried again on a new one.
 */
async function onAdminPort<T>(requested: number, start: (port: number) => Promise<T>): Promise<T> {
  const fixed = requested !== 0 && (await portFree(requested))
  for (let attempt = 1; ; attempt++) {
    const port = fixed ? requested : await freePort()
    try {
      return await start(port)
    } catch (error) {
      if (fixed || attempt >= 3 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
    }
  }
}

/** A Web API call as the emulator's application user (seeding). */
export async function dataverseApi(dv: DataverseEmulator, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${dv.apiUrl}/${path}`, {
    method,
    headers: { Authorization: `Bearer ${await dv.getToken()}`, Accept: 'application/json', 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  if (res.status >= 300) throw new Error(`Dataverse ${method} ${path} answered ${res.status}: ${await res.text()}`)
  return res.status === 204 ? undefined : res.json()
}
