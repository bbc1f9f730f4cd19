/** Test & Enable over Graph: adapter-exchange's `testMailboxAccess` for the mailbox's workloads. */
import { ExchangeAdapter, testMailboxAccess } from '@concord/adapter-exchange'
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
    const r = await testMailboxAccess(adapter)
    const reasons = [...new Set([r.incoming.reason, r.outgoing.reason, r.act.reason].filter((x): x is string => x !== undefined))]
    return { incoming: r.incoming.status, outgoing: r.outgoing.status, act: r.act.status, ...(reasons.length ? { reason: reasons.join('; ') } : {}) }
  }
}
