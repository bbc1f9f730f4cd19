/**
 * "Test & Enable" for Exchange (protocols.md §5.2): proves the application can reach a mailbox per
 * workload before server-side sync uses it. Incoming e-mail = read the Inbox; outgoing e-mail = read
 * Sent Items (a test never sends mail); appointments, contacts and tasks = read the calendar, the
 * contacts and the To Do lists. 401/403/404 (e.g. `ErrorInvalidUser`: the mailbox does not exist) are
 * failures with a reason; 429/5xx are thrown as the classified `SyncError` (the test did not run).
 */
import type { ExchangeAdapter } from './adapter.js'
import { classifyGraphFailure, graphErrorCode } from './errors.js'

export type WorkloadTestStatus = 'success' | 'failure'

export interface AccessCheck {
  /** What was read, e.g. `inbox`, `calendar`. */
  name: 'inbox' | 'sentitems' | 'calendar' | 'contacts' | 'todoLists'
  ok: boolean
  status: number
  /** Graph error code of a failure, e.g. `ErrorInvalidUser`. */
  code?: string | undefined
}

export interface WorkloadResult {
  status: WorkloadTestStatus
  /** Why it failed (first failing check), absent on success. */
  reason?: string | undefined
}

export interface MailboxAccessReport {
  mailbox: string
  incoming: WorkloadResult
  outgoing: WorkloadResult
  /** Appointments, contacts and tasks. */
  act: WorkloadResult
  checks: AccessCheck[]
}

const CHECKS: Array<{ name: AccessCheck['name']; path: string }> = [
  { name: 'inbox', path: 'mailFolders/inbox/messages?$top=1&$select=id' },
  { name: 'sentitems', path: 'mailFolders/sentitems/messages?$top=1&$select=id' },
  { name: 'calendar', path: 'calendar?$select=id' },
  { name: 'contacts', path: 'contacts?$top=1&$select=id' },
  { name: 'todoLists', path: 'todo/lists?$top=1' },
]

function describe(check: AccessCheck, mailbox: string): string {
  const what = `${check.name} of ${mailbox}`
  if (check.status === 404 && check.code === 'ErrorInvalidUser') return `mailbox ${mailbox} was not found (404 ErrorInvalidUser)`
  if (check.status === 404) return `${what} was not found (404${check.code ? ` ${check.code}` : ''})`
  if (check.status === 401) return `the application is not authenticated for ${what} (401${check.code ? ` ${check.code}` : ''})`
  if (check.status === 403) return `the application may not read ${what} (403${check.code ? ` ${check.code}` : ''}); check the Graph application permissions and access policy`
  return `reading ${what} failed (${check.status}${check.code ? ` ${check.code}` : ''})`
}

/**
 * Runs the access checks for the adapter's mailbox (application permissions, no impersonation) and
 * reports per workload. Map `status` straight onto the CRM mailbox test fields (`success` → 1,
 * `failure` → 2) with `MailboxDirectory.recordTestResult`.
 */
export async function testMailboxAccess(adapter: ExchangeAdapter): Promise<MailboxAccessReport> {
  const mailbox = adapter.options.mailbox
  const user = `/users/${encodeURIComponent(mailbox)}`
  const checks: AccessCheck[] = []
  for (const c of CHECKS) {
    const res = await adapter.http.send('GET', `${user}/${c.path}`)
    if (res.status === 429 || res.status >= 500) throw classifyGraphFailure(res)
    const ok = res.status >= 200 && res.status < 300
    checks.push({ name: c.name, ok, status: res.status, code: ok ? undefined : graphErrorCode(res.body) })
    // An unknown mailbox fails every check the same way; stop after the first.
    if (!ok && res.status === 404 && graphErrorCode(res.body) === 'ErrorInvalidUser') break
  }
  const result = (names: Array<AccessCheck['name']>): WorkloadResult => {
    for (const n of names) {
      const check = checks.find((c) => c.name === n)
      if (!check) {
        const first = checks.find((c) => !c.ok)
        return { status: 'failure', reason: first ? describe(first, mailbox) : `${n} was not checked` }
      }
      if (!check.ok) return { status: 'failure', reason: describe(check, mailbox) }
    }
    return { status: 'success' }
  }
  return { mailbox, incoming: result(['inbox']), outgoing: result(['sentitems']), act: result(['calendar', 'contacts', 'todoLists']), checks }
}

