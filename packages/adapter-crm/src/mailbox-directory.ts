/**
 * The CRM's `mailboxes` table as a server-side-sync runtime sees it (protocols.md §5.2): which mailboxes
 * exist and whom they belong to, whether each may sync per workload (`syncEligibility`, pure), and the
 * bookkeeping SSS writes back — Test & Enable results, last-sync statistics, disabling after permanent
 * errors, and the mailbox **alert wall** (`tracelog` rows regarding the mailbox). Every call runs as the
 * application user (no impersonation).
 */
import { SyncError, type Logger } from '@concord/engine'
import { z } from 'zod'
import type { WebApiClient } from './http.js'
import { createServiceClient, getAllPages, guidArg, parseCrmServiceOptions, type CrmServiceDeps, type CrmServiceOptions, type CrmServiceOptionsInput } from './service.js'

const LOOKUP_TYPE = '@Microsoft.Dynamics.CRM.lookuplogicalname'
const int = z.number().int()
const nInt = int.nullable().optional().transform((v) => v ?? null)
const nBool = z.boolean().nullable().optional().transform((v) => v ?? false)
const nStr = z.string().nullable().optional().transform((v) => v ?? null)
const choice = (max: number) => int.min(0).max(max).nullable().optional().transform((v) => v ?? 0)

/** Columns read by `listMailboxes` (Dataverse logical names). */
export const MAILBOX_COLUMNS = [
  'mailboxid',
  'name',
  'emailaddress',
  'emailrouteraccessapproval',
  'isemailaddressapprovedbyo365admin',
  'enabledforincomingemail',
  'enabledforoutgoingemail',
  'enabledforact',
  'incomingemailstatus',
  'outgoingemailstatus',
  'actstatus',
  'incomingemaildeliverymethod',
  'outgoingemaildeliverymethod',
  'actdeliverymethod',
  'testemailconfigurationscheduled',
  'orgmarkedasprimaryforexchangesync',
  'postponemailboxprocessinguntil',
  'postponesendinguntil',
  'postponetestemailconfigurationuntil',
  'lastsuccessfulsynccompletedon',
  'itemsprocessedforlastsync',
  'itemsfailedforlastsync',
  'lastsyncerrorcode',
  'lastsyncerrorcount',
  'statecode',
  'statuscode',
  '_ownerid_value',
  '_regardingobjectid_value',
  '_emailserverprofile_value',
] as const

/** One `mailboxes` row. Column names are Dataverse's; option sets keep their numeric values (§5.2). */
export const MailboxRowSchema = z
  .looseObject({
    '@odata.etag': z.string().min(1),
    mailboxid: z.string().regex(/^[0-9a-fA-F-]{36}$/),
    name: nStr,
    emailaddress: nStr,
    /** 0 Empty, 1 Approved, 2 Pending Approval, 3 Rejected. */
    emailrouteraccessapproval: choice(3),
    isemailaddressapprovedbyo365admin: nBool,
    enabledforincomingemail: nBool,
    enabledforoutgoingemail: nBool,
    enabledforact: nBool,
    /** 0 Not Run, 1 Success, 2 Failure. */
    incomingemailstatus: choice(2),
    outgoingemailstatus: choice(2),
    actstatus: choice(2),
    /** 0 None, 1 Outlook client, 2 Server-Side Synchronization, 3 Forward Mailbox. */
    incomingemaildeliverymethod: choice(3),
    /** 0 None, 1 Outlook client, 2 Server-Side Synchronization. */
    outgoingemaildeliverymethod: choice(2),
    /** 0 Outlook client, 1 Server-Side Synchronization, 2 None. */
    actdeliverymethod: choice(2),
    testemailconfigurationscheduled: nBool,
    orgmarkedasprimaryforexchangesync: nBool,
    postponemailboxprocessinguntil: nStr,
    postponesendinguntil: nStr,
    postponetestemailconfigurationuntil: nStr,
    lastsuccessfulsynccompletedon: nStr,
    itemsprocessedforlastsync: nInt,
    itemsfailedforlastsync: nInt,
    lastsyncerrorcode: nInt,
    lastsyncerrorcount: nInt,
    /** 0 Active, 1 Inactive. */
    statecode: int.min(0).max(1),
    statuscode: nInt,
    _ownerid_value: nStr,
    _regardingobjectid_value: nStr,
    [`_regardingobjectid_value${LOOKUP_TYPE}`]: nStr,
    _emailserverprofile_value: nStr,
  })
  .transform((r) => {
    const regardingType = r[`_regardingobjectid_value${LOOKUP_TYPE}`] as string | null
    const regardingId = r._regardingobjectid_value
    return {
      mailboxId: r.mailboxid.toLowerCase(),
      /** systemuserid of the user the mailbox belongs to (regarding user, else the owner); null for a queue's mailbox. */
      ownerId: regardingType === 'systemuser' && regardingId ? regardingId.toLowerCase() : regardingType === 'queue' ? null : (r._ownerid_value?.toLowerCase() ?? null),
      /** `systemuser` or `queue` (the mailbox's regarding record type). */
      regardingType,
      regardingId: regardingId?.toLowerCase() ?? null,
      etag: r['@odata.etag'],
      name: r.name,
      emailaddress: r.emailaddress,
      emailrouteraccessapproval: r.emailrouteraccessapproval,
      isemailaddressapprovedbyo365admin: r.isemailaddressapprovedbyo365admin,
      enabledforincomingemail: r.enabledforincomingemail,
      enabledforoutgoingemail: r.enabledforoutgoingemail,
      enabledforact: r.enabledforact,
      incomingemailstatus: r.incomingemailstatus,
      outgoingemailstatus: r.outgoingemailstatus,
      actstatus: r.actstatus,
      incomingemaildeliverymethod: r.incomingemaildeliverymethod,
      outgoingemaildeliverymethod: r.outgoingemaildeliverymethod,
      actdeliverymethod: r.actdeliverymethod,
      testemailconfigurationscheduled: r.testemailconfigurationscheduled,
      orgmarkedasprimaryforexchangesync: r.orgmarkedasprimaryforexchangesync,
      postponemailboxprocessinguntil: r.postponemailboxprocessinguntil,
      postponesendinguntil: r.postponesendinguntil,
      postponetestemailconfigurationuntil: r.postponetestemailconfigurationuntil,
      lastsuccessfulsynccompletedon: r.lastsuccessfulsynccompletedon,
      itemsprocessedforlastsync: r.itemsprocessedforlastsync,
      itemsfailedforlastsync: r.itemsfailedforlastsync,
      lastsyncerrorcode: r.lastsyncerrorcode,
      lastsyncerrorcount: r.lastsyncerrorcount,
      statecode: r.statecode,
      statuscode: r.statuscode,
      /** The mailbox's email server profile (`emailserverprofiles` row id), null when none is set. */
      emailServerProfileId: r._emailserverprofile_value?.toLowerCase() ?? null,
    }
  })
export type MailboxRow = z.output<typeof MailboxRowSchema>

/** One `emailserverprofiles` row: which mail server mailboxes of this profile sync with. */
export const EmailServerProfileRowSchema = z
  .looseObject({
    emailserverprofileid: z.string().regex(/^[0-9a-fA-F-]{36}$/),
    name: z.string().min(1),
    /** `SERVER_TYPE`: 0 Exchange Server, 1 Other (POP3/SMTP), 2 Exchange Server (Hybrid), 3 Exchange Online (Hybrid), 4 IMAP/SMTP. */
    servertype: nInt,
  })
  .transform((r) => ({ profileId: r.emailserverprofileid.toLowerCase(), name: r.name, serverType: r.servertype }))
export type EmailServerProfileRow = z.output<typeof EmailServerProfileRowSchema>

/**
 * `servertype` values of an email server profile (Dataverse global choice `emailserverprofile_servertype`,
 * EmailServerProfile table reference): 0 Exchange Server, 1 Other (POP3/SMTP), 2 Exchange Server (Hybrid),
 * 3 Exchange Online (Hybrid), 4 IMAP/SMTP. `ExchangeOnline` is the historical name of 3.
 */
export const SERVER_TYPE = { ExchangeServer: 0, Other: 1, ExchangeHybrid: 2, ExchangeOnline: 3, ImapSmtp: 4 } as const

/** Option-set values (protocols.md §5.2). */
export const APPROVAL = { Empty: 0, Approved: 1, PendingApproval: 2, Rejected: 3 } as const
export const TEST_STATUS = { NotRun: 0, Success: 1, Failure: 2 } as const
export const INCOMING_DELIVERY = { None: 0, OutlookClient: 1, ServerSideSync: 2, ForwardMailbox: 3 } as const
export const OUTGOING_DELIVERY = { None: 0, OutlookClient: 1, ServerSideSync: 2 } as const
export const ACT_DELIVERY = { OutlookClient: 0, ServerSideSync: 1, None: 2 } as const
/** `tracelog.level`: 1 Information, 2 Warning, 3 Error. */
export const ALERT_LEVEL = { information: 1, warning: 2, error: 3 } as const

export type Workload = 'incoming' | 'outgoing' | 'act'
export const Workloads: readonly Workload[] = ['incoming', 'outgoing', 'act']

export const EligibilityOptionsSchema = z.strictObject({
  /** System setting "Process emails only for approved users/queues" (ignored — always on — under the Exchange Online profile). */
  requireApproval: z.boolean(),
  /** The mailbox uses the Exchange Online server profile: the O365 admin approval is also required. */
  exchangeOnlineProfile: z.boolean(),
})
export type EligibilityOptions = z.infer<typeof EligibilityOptionsSchema>

export interface SyncEligibility {
  incoming: boolean
  outgoing: boolean
  act: boolean
  /** Why a workload is not eligible, one line each (empty when all three are). */
  reasons: string[]
}

const APPROVAL_LABEL = ['Empty', 'Approved', 'Pending Approval', 'Rejected']
const STATUS_LABEL = ['Not Run', 'Success', 'Failure']

/**
 * Pure: may server-side sync process this mailbox, per workload (protocols.md §5.2)? A workload needs
 * an active mailbox that is approved (`emailrouteraccessapproval` 1, when approval is required — always
 * under the Exchange Online profile), approved by an O365 admin (`isemailaddressapprovedbyo365admin`,
 * Exchange Online profile), enabled for the workload, delivered by server-side sync and tested with
 * status Success. Appointments, contacts and tasks also need a user's mailbox (queues never sync them)
 * that is marked as this organization's primary for Exchange sync.
 */
export function syncEligibility(row: MailboxRow, options: EligibilityOptions): SyncEligibility {
  const o = EligibilityOptionsSchema.safeParse(options)
  if (!o.success) throw new SyncError('Validation', `Invalid eligibility options: ${o.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
  const reasons: string[] = []
  const common: string[] = []
  if (row.statecode !== 0) common.push('mailbox is inactive (statecode 1)')
  if ((o.data.requireApproval || o.data.exchangeOnlineProfile) && row.emailrouteraccessapproval !== APPROVAL.Approved) {
    common.push(`email address not approved (emailrouteraccessapproval is ${row.emailrouteraccessapproval} ${APPROVAL_LABEL[row.emailrouteraccessapproval] ?? '?'}, not 1 Approved)`)
  }
  if (o.data.exchangeOnlineProfile && !row.isemailaddressapprovedbyo365admin) common.push('email address not approved by a Microsoft 365 administrator (isemailaddressapprovedbyo365admin false)')
  const check = (w: Workload, enabled: boolean, enabledCol: string, method: number, ssMethod: number, methodCol: string, status: number, statusCol: string, extra: string[]): boolean => {
    const why = [...common]
    if (!enabled) why.push(`${enabledCol} is false`)
    if (method !== ssMethod) why.push(`${methodCol} is ${method}, not ${ssMethod} (server-side synchronization)`)
    if (status !== TEST_STATUS.Success) why.push(`${statusCol} is ${status} (${STATUS_LABEL[status] ?? '?'}), not 1 (Success): run Test & Enable`)
    why.push(...extra)
    for (const r of why) reasons.push(`${w}: ${r}`)
    return why.length === 0
  }
  const actExtra: string[] = []
  if (row.regardingType === 'queue') actExtra.push('queue mailboxes never sync appointments, contacts and tasks')
  else if (!row.orgmarkedasprimaryforexchangesync) actExtra.push('this organization is not the primary for Exchange sync (orgmarkedasprimaryforexchangesync false)')
  return {
    incoming: check('incoming', row.enabledforincomingemail, 'enabledforincomingemail', row.incomingemaildeliverymethod, INCOMING_DELIVERY.ServerSideSync, 'incomingemaildeliverymethod', row.incomingemailstatus, 'incomingemailstatus', []),
    outgoing: check('outgoing', row.enabledforoutgoingemail, 'enabledforoutgoingemail', row.outgoingemaildeliverymethod, OUTGOING_DELIVERY.ServerSideSync, 'outgoingemaildeliverymethod', row.outgoingemailstatus, 'outgoingemailstatus', []),
    act: check('act', row.enabledforact, 'enabledforact', row.actdeliverymethod, ACT_DELIVERY.ServerSideSync, 'actdeliverymethod', row.actstatus, 'actstatus', actExtra),
    reasons,
  }
}

// ---------------------------------------------------------------------------------------------- inputs

const TestOutcome = z.enum(['success', 'failure', 'not-run'])
export type TestOutcome = z.infer<typeof TestOutcome>
const TEST_VALUE: Record<TestOutcome, number> = { 'not-run': 0, success: 1, failure: 2 }

export const TestResultSchema = z
  .strictObject({ incoming: TestOutcome.optional(), outgoing: TestOutcome.optional(), act: TestOutcome.optional() })
  .refine((r) => r.incoming !== undefined || r.outgoing !== undefined || r.act !== undefined, 'give at least one of incoming, outgoing, act')
export type TestResult = z.infer<typeof TestResultSchema>

const Instant = z.union([z.date(), z.iso.datetime({ offset: true })]).transform((d) => new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z'))

export const SyncOutcomeSchema = z.strictObject({
  /** When the cycle finished; stored in `lastsuccessfulsynccompletedon` only when it had no error. */
  completedOn: Instant,
  itemsProcessed: z.number().int().min(0),
  itemsFailed: z.number().int().min(0),
  /** Error code of the cycle (e.g. an HTTP status or a Graph/EWS error number); absent = success (clears `lastsyncerrorcode`). */
  errorCode: z.number().int().optional(),
  /** Consecutive failed cycles (`lastsyncerrorcount`); SSS disables the mailbox after 10 transient failures. */
  errorCount: z.number().int().min(0),
  /** Next cycle not before (`postponemailboxprocessinguntil`). */
  postponeUntil: Instant.optional(),
})
export type SyncOutcome = z.input<typeof SyncOutcomeSchema>

export const AlertSchema = z.strictObject({
  level: z.enum(['error', 'warning', 'information']),
  /** `tracelog.tracecode` (0 – 1,000,000,000), e.g. an HTTP status or an error number. */
  code: z.number().int().min(0).max(1_000_000_000),
  /** `tracelog.text` (Dataverse keeps 2,000 characters; longer text is cut with an ellipsis). */
  text: z.string().min(1),
})
export type AlertInput = z.infer<typeof AlertSchema>

export const DisableReasonSchema = z.strictObject({
  /** Error code (stored in `lastsyncerrorcode` and as the alert's `tracecode`). */
  code: z.number().int().min(0).max(1_000_000_000),
  text: z.string().min(1),
  /** Workloads to disable; default all three. */
  workloads: z.array(z.enum(['incoming', 'outgoing', 'act'])).min(1).optional(),
})
export type DisableReason = z.infer<typeof DisableReasonSchema>

export interface MailboxAlert {
  alertId: string
  mailboxId: string
  level: 'error' | 'warning' | 'information'
  code: number | null
  text: string
  createdOn: string | null
}

const AlertRowSchema = z.looseObject({
  tracelogid: z.string().min(1),
  text: z.string().nullable(),
  level: z.union([z.literal(1), z.literal(2), z.literal(3)]),
  tracecode: int.nullable().optional(),
  createdon: z.string().nullable().optional(),
  _regardingobjectid_value: z.string().nullable().optional(),
})

function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value)
  if (!r.success) throw new SyncError('Validation', `Invalid ${what}: ${r.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ')}`, {}, { cause: r.error })
  return r.data
}

/** Writes one alert (`tracelog`) regarding a mailbox; returns its tracelogid. Shared by the directory and the outgoing queue. */
export async function writeAlert(http: WebApiClient, mailboxId: string, alert: AlertInput, signal?: AbortSignal): Promise<string> {
  const a = check(AlertSchema, alert, 'alert')
  const id = guidArg('mailboxId', mailboxId)
  const text = a.text.length > 2000 ? `${a.text.slice(0, 1999)}…` : a.text
  const res = await http.request('POST', 'tracelogs', {
    body: JSON.stringify({ text, level: ALERT_LEVEL[a.level], tracecode: a.code, tracestatus: a.level === 'information', 'regardingobjectid_mailbox@odata.bind': `/mailboxes(${id})` }),
    signal,
  })
  const m = /\(([0-9a-fA-F-]{36})\)\s*$/.exec(res.headers.get('odata-entityid') ?? '')
  if (!m) throw new SyncError('InvalidRemoteData', 'Creating a tracelog returned no OData-EntityId', { url: res.url })
  return (m[1] as string).toLowerCase()
}

const LEVEL_NAME = { 1: 'information', 2: 'warning', 3: 'error' } as const

export class MailboxDirectory {
  readonly options: CrmServiceOptions
  readonly http: WebApiClient
  private readonly logger: Logger | undefined

  constructor(options: CrmServiceOptionsInput, deps: CrmServiceDeps = {}) {
    this.options = parseCrmServiceOptions(options)
    this.http = createServiceClient(this.options, deps)
    this.logger = deps.logger
  }

  /** Every mailbox (all pages), zod-parsed. `filter` is an optional extra OData `$filter`. */
  async listMailboxes(opts: { filter?: string | undefined; signal?: AbortSignal | undefined } = {}): Promise<MailboxRow[]> {
    const filter = opts.filter === undefined ? '' : `&$filter=${encodeURIComponent(opts.filter)}`
    return getAllPages(this.http, `mailboxes?$select=${MAILBOX_COLUMNS.join(',')}${filter}`, MailboxRowSchema, this.options.pageSize, 'mailbox', opts.signal, [
      `odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"`,
    ])
  }

  /** Every email server profile (id, name, server type). */
  async listEmailServerProfiles(signal?: AbortSignal): Promise<EmailServerProfileRow[]> {
    return getAllPages(this.http, 'emailserverprofiles?$select=emailserverprofileid,name,servertype', EmailServerProfileRowSchema, this.options.pageSize, 'emailserverprofile', signal)
  }

  /** One mailbox, or null when it does not exist. */
  async getMailbox(mailboxId: string, signal?: AbortSignal): Promise<MailboxRow | null> {
    const id = guidArg('mailboxId', mailboxId)
    const rows = await this.listMailboxes({ filter: `mailboxid eq ${id}`, signal })
    return rows[0] ?? null
  }

  /** Mailboxes waiting for Test & Enable (`testemailconfigurationscheduled` true): the runtime tests each and calls `recordTestResult`. */
  scheduledTests(signal?: AbortSignal): Promise<MailboxRow[]> {
    return this.listMailboxes({ filter: 'testemailconfigurationscheduled eq true', signal })
  }

  /** What the "Test & Enable Mailbox" button does: sets `testemailconfigurationscheduled`. */
  async scheduleTest(mailboxId: string, signal?: AbortSignal): Promise<void> {
    await this.patch(mailboxId, { testemailconfigurationscheduled: true }, signal)
  }

  private async patch(mailboxId: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<void> {
    const id = guidArg('mailboxId', mailboxId)
    // If-Match: * — update only; a missing mailbox is a 404, never an accidental create.
    await this.http.request('PATCH', `mailboxes(${id})`, { body: JSON.stringify(body), headers: { 'If-Match': '*' }, signal })
  }

  /** Records a Test & Enable result: `success`/`failure`/`not-run` → 1/2/0 per workload; clears `testemailconfigurationscheduled`. */
  async recordTestResult(mailboxId: string, result: TestResult, signal?: AbortSignal): Promise<void> {
    const r = check(TestResultSchema, result, 'test result')
    const body: Record<string, unknown> = { testemailconfigurationscheduled: false }
    if (r.incoming) body.incomingemailstatus = TEST_VALUE[r.incoming]
    if (r.outgoing) body.outgoingemailstatus = TEST_VALUE[r.outgoing]
    if (r.act) body.actstatus = TEST_VALUE[r.act]
    await this.patch(mailboxId, body, signal)
  }

  /** Records one sync cycle: items processed/failed, error code and count, last successful completion. */
  async recordSyncOutcome(mailboxId: string, outcome: SyncOutcome, signal?: AbortSignal): Promise<void> {
    const o = check(SyncOutcomeSchema, outcome, 'sync outcome')
    const body: Record<string, unknown> = {
      itemsprocessedforlastsync: o.itemsProcessed,
      itemsfailedforlastsync: o.itemsFailed,
      lastsyncerrorcode: o.errorCode ?? null,
      lastsyncerrorcount: o.errorCount,
    }
    if (o.errorCode === undefined) body.lastsuccessfulsynccompletedon = o.completedOn
    if (o.postponeUntil !== undefined) body.postponemailboxprocessinguntil = o.postponeUntil
    await this.patch(mailboxId, body, signal)
  }

  /**
   * What server-side sync does after a permanent error or the 10th transient failure (protocols.md
   * §5.2): the workloads' test statuses become 2 (Failure) — so `syncEligibility` no longer admits them
   * until an administrator runs Test & Enable again — `lastsyncerrorcode` records the code, and an
   * error alert is written to the mailbox's alert wall. The mailbox row stays active (statecode 0); the
   * approval and the `enabledfor*` configuration are left alone. Returns the alert's tracelogid.
   */
  async disableMailbox(mailboxId: string, reason: DisableReason, signal?: AbortSignal): Promise<string> {
    const r = check(DisableReasonSchema, reason, 'disable reason')
    const workloads = r.workloads ?? Workloads
    const body: Record<string, unknown> = { lastsyncerrorcode: r.code }
    if (workloads.includes('incoming')) body.incomingemailstatus = TEST_STATUS.Failure
    if (workloads.includes('outgoing')) body.outgoingemailstatus = TEST_STATUS.Failure
    if (workloads.includes('act')) body.actstatus = TEST_STATUS.Failure
    await this.patch(mailboxId, body, signal)
    this.logger?.warn({ mailboxId, code: r.code, workloads }, 'mailbox disabled for server-side synchronization')
    return writeAlert(this.http, mailboxId, { level: 'error', code: r.code, text: `Server-side synchronization was disabled for ${workloads.join(', ')}: ${r.text}` }, signal)
  }

  /** Writes an alert to the mailbox's alert wall (a `tracelog` regarding the mailbox); returns its tracelogid. */
  raiseAlert(mailboxId: string, alert: AlertInput, signal?: AbortSignal): Promise<string> {
    return writeAlert(this.http, mailboxId, alert, signal)
  }

  /** The mailbox's alerts, newest first (optionally only one level). */
  async listAlerts(mailboxId: string, opts: { level?: MailboxAlert['level'] | undefined; signal?: AbortSignal | undefined } = {}): Promise<MailboxAlert[]> {
    const id = guidArg('mailboxId', mailboxId)
    const level = opts.level === undefined ? '' : ` and level eq ${ALERT_LEVEL[check(AlertSchema.shape.level, opts.level, 'alert level')]}`
    const filter = encodeURIComponent(`_regardingobjectid_value eq ${id}${level}`)
    const rows = await getAllPages(this.http, `tracelogs?$select=text,level,tracecode,createdon,_regardingobjectid_value&$filter=${filter}&$orderby=createdon desc`, AlertRowSchema, this.options.pageSize, 'tracelog', opts.signal)
    return rows.map((r) => ({ alertId: r.tracelogid.toLowerCase(), mailboxId: id, level: LEVEL_NAME[r.level], code: r.tracecode ?? null, text: r.text ?? '', createdOn: r.createdon ?? null }))
  }
}
