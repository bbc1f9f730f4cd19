/** `MailboxDirectoryPort` over adapter-crm's `MailboxDirectory` (the `mailboxes` and `tracelogs` tables, as the application user). */
import { ACT_DELIVERY, INCOMING_DELIVERY, MailboxDirectory, OUTGOING_DELIVERY, syncEligibility } from '@concord/adapter-crm'
import { AlertCodes, type MailboxAlert, type MailboxDirectoryPort, type MailboxRow, type TestStatus } from './directory.js'
import { type RowProfile, crmProfileTypeOf } from './profiles.js'

export interface CrmDirectoryOptions {
  url: string
  tokenUrl: string
  clientId: string
  clientSecret: string
  /** "Process emails only for approved users/queues". */
  requireApproval: boolean
  /** The Exchange Online server profile (the O365 administrator's approval is required too). */
  exchangeOnlineProfile?: boolean | undefined
  fetch?: typeof fetch | undefined
}

export class CrmMailboxDirectory implements MailboxDirectoryPort {
  private readonly directory: MailboxDirectory

  constructor(private readonly options: CrmDirectoryOptions) {
    this.directory = new MailboxDirectory(
      { orgUrl: options.url, tokenUrl: options.tokenUrl, clientId: options.clientId, clientSecret: options.clientSecret },
      options.fetch ? { fetch: options.fetch } : {},
    )
  }

  async list(): Promise<MailboxRow[]> {
    const eligibility = { requireApproval: this.options.requireApproval, exchangeOnlineProfile: this.options.exchangeOnlineProfile ?? false }
    const mailboxes = await this.directory.listMailboxes()
    // Email server profiles are read only when a mailbox names one (an Exchange-only CRM costs nothing).
    const profiles = new Map<string, RowProfile>()
    if (mailboxes.some((r) => r.emailServerProfileId !== null)) {
      for (const p of await this.directory.listEmailServerProfiles()) {
        const type = crmProfileTypeOf(p.serverType)
        profiles.set(p.profileId, { id: p.profileId, name: p.name, ...(type ? { type } : {}) })
      }
    }
    return mailboxes
      .filter((r) => r.emailaddress)
      .map((r) => ({
        ...(r.emailServerProfileId !== null ? { profile: profiles.get(r.emailServerProfileId) ?? { id: r.emailServerProfileId, name: `(missing profile ${r.emailServerProfileId})` } } : {}),
        mailboxId: r.mailboxId,
        ownerId: r.ownerId,
        email: r.emailaddress!,
        eligibility: syncEligibility(r, eligibility),
        testScheduled: r.testemailconfigurationscheduled,
        configured: {
          incoming: r.enabledforincomingemail && r.incomingemaildeliverymethod === INCOMING_DELIVERY.ServerSideSync,
          outgoing: r.enabledforoutgoingemail && r.outgoingemaildeliverymethod === OUTGOING_DELIVERY.ServerSideSync,
          act: r.enabledforact && r.actdeliverymethod === ACT_DELIVERY.ServerSideSync,
        },
      }))
  }

  async recordTestResult(mailboxId: string, result: { incoming: TestStatus; outgoing: TestStatus; act: TestStatus }): Promise<void> {
    await this.directory.recordTestResult(mailboxId, result)
  }

  async recordSyncOutcome(mailboxId: string, outcome: { completedOn: Date; itemsProcessed: number; itemsFailed: number; errorCode?: number | undefined; errorCount: number }): Promise<void> {
    await this.directory.recordSyncOutcome(mailboxId, outcome)
  }

  async disable(mailboxId: string, reason: string, workloads?: Array<'incoming' | 'outgoing' | 'act'>): Promise<void> {
    await this.directory.disableMailbox(mailboxId, { code: AlertCodes.MailboxDisabled, text: `Mailbox disabled for synchronization: ${reason}`, ...(workloads ? { workloads } : {}) })
  }

  async raiseAlert(mailboxId: string, alert: MailboxAlert): Promise<void> {
    await this.directory.raiseAlert(mailboxId, alert)
  }
}
