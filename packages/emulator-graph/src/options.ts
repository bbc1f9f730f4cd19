/** Options of the emulator, validated with zod at the edge (CLI flags and programmatic callers). */
import { z } from 'zod'

export const GraphEmulatorOptionsSchema = z.strictObject({
  port: z.number().int().min(0).max(65535).default(0),
  host: z.string().min(1).default('127.0.0.1'),
  mailboxes: z.array(z.string().regex(/^[^@\s]+@[^@\s]+$/, 'expected a user principal name like a@contoso.test')).default([]),
  clientId: z.string().min(1).optional(),
  clientSecret: z.string().min(1).optional(),
  tenant: z.string().min(1).optional(),
  latencyMs: z.number().int().min(0).max(60_000).default(0),
  https: z.boolean().default(false),
  dataDir: z.string().min(1).optional(),
  /** Admin key for `/_emulator`; when set, requests must send `x-emulator-admin-key`. */
  adminKey: z.string().min(1).optional(),
  tokenLifetimeSeconds: z.number().int().min(1).default(3599),
  throttle: z
    .strictObject({
      requestsPerWindow: z.number().int().min(1).default(10_000),
      windowMs: z.number().int().min(1).default(600_000),
      concurrentRequests: z.number().int().min(1).default(4),
      uploadBytesPerWindow: z.number().int().min(1).default(150 * 1024 * 1024),
      uploadWindowMs: z.number().int().min(1).default(300_000),
    })
    .prefault({}),
  delta: z
    .strictObject({
      defaultPageSize: z.number().int().min(1).max(1000).default(10),
      maxPageSize: z.number().int().min(1).default(1000),
      /** Generations kept per sync state (K). */
      generations: z.number().int().min(1).default(4),
      maxSyncStates: z.number().int().min(1).default(10_000),
    })
    .prefault({}),
  subscriptions: z
    .strictObject({
      validationTimeoutMs: z.number().int().min(1).default(10_000),
      ackTimeoutMs: z.number().int().min(1).default(3_000),
      retryWindowMs: z.number().int().min(0).default(4 * 3600_000),
    })
    .prefault({}),
  /** Exchange Online sending limits per mailbox (protocols.md §2.2); `sendMail` / `send` over them → 429 ErrorSubmissionQuotaExceeded. */
  sending: z
    .strictObject({
      messagesPerMinute: z.number().int().min(1).default(30),
      recipientsPerDay: z.number().int().min(1).default(10_000),
    })
    .prefault({}),
  bodyLimitBytes: z.number().int().min(1024).default(10 * 1024 * 1024),
})

export type GraphEmulatorOptions = z.input<typeof GraphEmulatorOptionsSchema>
export type ResolvedOptions = z.output<typeof GraphEmulatorOptionsSchema>
