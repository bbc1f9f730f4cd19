import type { Security } from './security.js'
import type { Store } from './store/store.js'

/** Shared state handed to every module of the emulator. */
export interface EmulatorContext {
  store: Store
  security: Security
  now(): number
  /** Absolute Web API base, e.g. http://127.0.0.1:1234/api/data/v9.2 (set once listening). */
  apiBase: string
  /** Change tracking retention (ExpireChangeTrackingInDays), in ms. */
  retentionMs: number
  /** Exchange Online profile: mailboxes also need isemailaddressapprovedbyo365admin. */
  requireO365Approval: boolean
  /** `auto`: setting testemailconfigurationscheduled runs Test & Enable in the emulator; `external`: left to the client. */
  testAndEnable: 'auto' | 'external'
  /** Tracking-token counter per user number (see SendEmail). */
  trackingCounters: Map<string, number>
}

/** The effective caller of a Web API request (after impersonation). */
export interface Caller {
  /** systemuserid whose security applies. */
  userId: string
  /** systemuserid of the authenticated application user. */
  principalId: string
  clientId: string
}

export const isoNow = (ctx: EmulatorContext): string => new Date(ctx.now()).toISOString().replace(/\.\d{3}Z$/, 'Z')
