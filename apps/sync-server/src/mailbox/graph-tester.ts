/**
 * Test & Enable over Graph: proves the application can reach the mailbox's folders for each workload
 * (inbox and sent items for email, calendar and contacts and To Do for appointments, contacts, tasks).
 */
import { ExchangeAdapter } from '@concord/adapter-exchange'
import type { MailboxRow, TestStatus } from './directory.js'

export interface GraphTesterOptions {
  url: string
  tokenUrl?: string | undefined
  tenantId: string
  clientId: string
  clientSecret: string
  fetch: typeof fetch
}

export function graphMailboxTester(options: GraphTesterOptions) {
  return async (row: MailboxRow): Promise<{ incoming: TestStatus; outgoing: TestStatus; act: TestStatus; reason?: string | undefined }> => {
    const adapter = new ExchangeAdapter(
      { replicaId: `test:${row.mailboxId}`, mailbox: row.email, tenantId: options.tenantId, clientId: options.clientId, clientSecret: options.clientSecret, graphBaseUrl: options.url, ...(options.tokenUrl ? { tokenUrl: options.tokenUrl } : {}) },
      { fetch: options.fetch },
    )
    const user = `/users/${encodeURIComponent(row.email)}`
    const reasons: string[] = []
    const probe = async (paths: string[]): Promise<TestStatus> => {
      for (const path of paths) {
        const res = await adapter.http.send('GET', `${user}${path}`)
        if (res.status !== 200) {
          const code = (res.body as { error?: { code?: string } } | undefined)?.error?.code
          reasons.push(`GET ${path} answered ${res.status}${code ? ` ${code}` : ''}`)
          return 'failure'
        }
      }
      return 'success'
    }
    const mail = await probe(['/mailFolders/inbox', '/mailFolders/sentitems'])
    const act = await probe(['/calendar', '/contactFolders?$top=1', '/todo/lists?$top=1'])
    return { incoming: mail, outgoing: mail, act, ...(reasons.length ? { reason: reasons.join('; ') } : {}) }
  }
}
