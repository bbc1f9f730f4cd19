/**
 * `MailboxDirectoryPort` over the Dataverse Web API `mailboxes` and `tracelogs` tables, as the
 * application user (not impersonated). Eligibility follows protocols.md §5.2.
 */
import { z } from 'zod'
import { ServerError } from '../errors.js'
import type { Eligibility, MailboxAlert, MailboxDirectoryPort, MailboxRow, TestStatus } from './directory.js'

const GUID = z.string().regex(/^[0-9a-fA-F-]{36}$/)
const MailboxRowSchema = z.looseObject({
  mailboxid: GUID,
  emailaddress: z.string().nullable(),
  _regardingobjectid_value: GUID.nullable().optional(),
  '_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname': z.string().optional(),
  emailrouteraccessapproval: z.number().int().nullable(),
  isemailaddressapprovedbyo365admin: z.boolean().nullable(),
  enabledforincomingemail: z.boolean().nullable(),
  enabledforoutgoingemail: z.boolean().nullable(),
  enabledforact: z.boolean().nullable(),
  incomingemailstatus: z.number().int().nullable(),
  outgoingemailstatus: z.number().int().nullable(),
  actstatus: z.number().int().nullable(),
  incomingemaildeliverymethod: z.number().int().nullable(),
  outgoingemaildeliverymethod: z.number().int().nullable(),
  actdeliverymethod: z.number().int().nullable(),
  testemailconfigurationscheduled: z.boolean().nullable(),
  statecode: z.number().int().nullable().optional(),
})
type Row = z.infer<typeof MailboxRowSchema>
const PageSchema = z.looseObject({ value: z.array(z.unknown()), '@odata.nextLink': z.string().optional() })
const TokenSchema = z.looseObject({ access_token: z.string().min(1), expires_in: z.coerce.number().positive() })

const SUCCESS = 1
const FAILURE = 2
const SSS_INCOMING = 2
const SSS_OUTGOING = 2
const SSS_ACT = 1
const STATUS: Record<TestStatus, number> = { 'not-run': 0, success: SUCCESS, failure: FAILURE }
const SELECT = Object.keys(MailboxRowSchema.shape).filter((k) => !k.includes('@') && k !== '_regardingobjectid_value').concat('_regardingobjectid_value').join(',')

export interface CrmDirectoryOptions {
  url: string
  tokenUrl: string
  clientId: string
  clientSecret: string
  requireApproval: boolean
  fetch?: typeof fetch | undefined
  now?: (() => number) | undefined
}

/** Which workloads of a mailbox row may sync, and why not (protocols.md §5.2). */
export function eligibilityOf(row: Row, requireApproval: boolean): { eligibility: Eligibility; configured: MailboxRow['configured'] } {
  const reasons: string[] = []
  const approved = !requireApproval || (row.emailrouteraccessapproval === 1 && row.isemailaddressapprovedbyo365admin === true)
  if (!approved) reasons.push(row.emailrouteraccessapproval !== 1 ? 'the mailbox email address is not approved' : 'the email address is not approved by a Microsoft 365 administrator')
  if (row.statecode === 1) reasons.push('the mailbox is inactive')
  const configured = {
    incoming: row.enabledforincomingemail === true && row.incomingemaildeliverymethod === SSS_INCOMING,
    outgoing: row.enabledforoutgoingemail === true && row.outgoingemaildeliverymethod === SSS_OUTGOING,
    act: row.enabledforact === true && row.actdeliverymethod === SSS_ACT,
  }
  const workload = (name: string, isConfigured: boolean, status: number | null): boolean => {
    if (!isConfigured) return false
    if (status !== SUCCESS) reasons.push(status === FAILURE ? `${name}: Test & Enable failed` : `${name}: Test & Enable has not run`)
    return approved && row.statecode !== 1 && status === SUCCESS
  }
  const eligibility = {
    incoming: workload('incoming email', configured.incoming, row.incomingemailstatus),
    outgoing: workload('outgoing email', configured.outgoing, row.outgoingemailstatus),
    act: workload('appointments, contacts and tasks', configured.act, row.actstatus),
    reasons,
  }
  if (!configured.incoming && !configured.outgoing && !configured.act) reasons.push('no workload uses server-side synchronization')
  return { eligibility, configured }
}

export class CrmMailboxDirectory implements MailboxDirectoryPort {
  private token: { value: string; expiresAt: number } | undefined
  private readonly fetch: typeof fetch
  private readonly now: () => number
  private readonly api: string

  constructor(private readonly options: CrmDirectoryOptions) {
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis)
    this.now = options.now ?? Date.now
    this.api = `${options.url.replace(/\/$/, '')}/api/data/v9.2`
  }

  private async bearer(): Promise<string> {
    if (this.token && this.token.expiresAt - 60_000 > this.now()) return this.token.value
    const res = await this.fetch(this.options.tokenUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: this.options.clientId, client_secret: this.options.clientSecret, scope: `${this.options.url}/.default` }).toString(),
    })
    if (!res.ok) throw new ServerError('Auth', `CRM token request failed with ${res.status}`)
    const body = TokenSchema.parse(await res.json())
    this.token = { value: body.access_token, expiresAt: this.now() + body.expires_in * 1000 }
    return body.access_token
  }

  private async call(method: string, url: string, body?: unknown): Promise<unknown> {
    const res = await this.fetch(url.startsWith('http') ? url : `${this.api}/${url}`, {
      method,
      headers: {
        Authorization: `Bearer ${await this.bearer()}`,
        Accept: 'application/json',
        'OData-Version': '4.0',
        Prefer: 'odata.include-annotations="*"',
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    if (!res.ok) throw new ServerError('Mailbox', `CRM ${method} ${url.split('?')[0]} failed with ${res.status}: ${(await res.text()).slice(0, 300)}`)
    return res.status === 204 ? undefined : res.json()
  }

  async list(): Promise<MailboxRow[]> {
    const out: MailboxRow[] = []
    let next: string | undefined = `mailboxes?$select=${SELECT}`
    for (let page = 0; next !== undefined && page < 10_000; page++) {
      const body = PageSchema.parse(await this.call('GET', next))
      for (const raw of body.value) {
        const parsed = MailboxRowSchema.safeParse(raw)
        if (!parsed.success || !parsed.data.emailaddress) continue
        const r = parsed.data
        const owner = r['_regardingobjectid_value@Microsoft.Dynamics.CRM.lookuplogicalname'] === 'queue' ? null : (r._regardingobjectid_value ?? null)
        out.push({ mailboxId: r.mailboxid, ownerId: owner, email: r.emailaddress!, testScheduled: r.testemailconfigurationscheduled === true, ...eligibilityOf(r, this.options.requireApproval) })
      }
      next = body['@odata.nextLink']
    }
    return out
  }

  async recordTestResult(mailboxId: string, result: { incoming: TestStatus; outgoing: TestStatus; act: TestStatus }): Promise<void> {
    await this.call('PATCH', `mailboxes(${mailboxId})`, {
      incomingemailstatus: STATUS[result.incoming],
      outgoingemailstatus: STATUS[result.outgoing],
      actstatus: STATUS[result.act],
      testemailconfigurationscheduled: false,
    })
  }

  async recordSyncOutcome(mailboxId: string, o: { completedOn: Date; itemsProcessed: number; itemsFailed: number; errorCode?: number | undefined; errorCount: number }): Promise<void> {
    await this.call('PATCH', `mailboxes(${mailboxId})`, {
      lastsuccessfulsynccompletedon: o.completedOn.toISOString(),
      itemsprocessedforlastsync: o.itemsProcessed,
      itemsfailedforlastsync: o.itemsFailed,
      lastsyncerrorcount: o.errorCount,
      ...(o.errorCode === undefined ? {} : { lastsyncerrorcode: o.errorCode }),
    })
  }

  async disable(mailboxId: string, reason: string): Promise<void> {
    await this.call('PATCH', `mailboxes(${mailboxId})`, { incomingemailstatus: FAILURE, outgoingemailstatus: FAILURE, actstatus: FAILURE })
    await this.raiseAlert(mailboxId, { level: 'error', code: 'MailboxDisabled', text: `Mailbox disabled for synchronization: ${reason}` })
  }

  async raiseAlert(mailboxId: string, alert: MailboxAlert): Promise<void> {
    const level = alert.level === 'error' ? 1 : alert.level === 'warning' ? 2 : 3
    await this.call('POST', 'tracelogs', { text: `[${alert.code}] ${alert.text}`.slice(0, 4000), level, 'regardingobjectid_mailbox@odata.bind': `/mailboxes(${mailboxId})` })
  }
}
