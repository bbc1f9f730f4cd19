/** Prometheus metrics of the server (prom-client), served at `/metrics`. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export type Side = 'crm' | 'mailbox'

export class ServerMetrics {
  readonly registry = new Registry()
  readonly cycles = new Counter({ name: 'concord_sync_cycles_total', help: 'Sync cycles by outcome (ok, throttled, error, skipped)', labelNames: ['outcome'] as const, registers: [this.registry] })
  readonly items = new Counter({ name: 'concord_items_total', help: 'Changed items pulled and pushed, by side and direction', labelNames: ['side', 'op'] as const, registers: [this.registry] })
  readonly conflicts = new Counter({ name: 'concord_conflicts_total', help: 'Field conflicts decided by a conflict policy', registers: [this.registry] })
  readonly apiCalls = new Counter({ name: 'concord_api_calls_total', help: 'HTTP requests to the CRM and to Graph', labelNames: ['side'] as const, registers: [this.registry] })
  readonly throttles = new Counter({ name: 'concord_throttles_total', help: 'Throttled responses (429/503) by side', labelNames: ['side'] as const, registers: [this.registry] })
  readonly notifications = new Counter({ name: 'concord_notifications_total', help: 'Graph change notifications by result (accepted, rejected, validation)', labelNames: ['result'] as const, registers: [this.registry] })
  readonly sent = new Counter({ name: 'concord_outgoing_emails_total', help: 'CRM emails sent through mailboxes, by result', labelNames: ['result'] as const, registers: [this.registry] })
  readonly cycleSeconds = new Histogram({ name: 'concord_sync_cycle_seconds', help: 'Duration of one mailbox sync cycle', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [this.registry] })
  readonly staleness = new Gauge({ name: 'concord_mailbox_staleness_seconds', help: 'Seconds since the last successful sync, per mailbox state', labelNames: ['stat'] as const, registers: [this.registry] })
  readonly mailboxes = new Gauge({ name: 'concord_mailboxes', help: 'Mailboxes by lifecycle state', labelNames: ['state'] as const, registers: [this.registry] })

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry })
  }

  text(): Promise<string> {
    return this.registry.metrics()
  }
}
