/**
 * What the server needs from the CRM's `mailboxes` table (server-side sync's mailbox records): which
 * mailboxes exist and may sync, where to write test results, sync outcomes and alerts.
 */
import type { RowProfile } from './profiles.js'

export interface Eligibility {
  /** Incoming email may sync. */
  incoming: boolean
  /** Outgoing email may be sent. */
  outgoing: boolean
  /** Appointments, contacts and tasks may sync. */
  act: boolean
  /** Why a workload is not eligible (empty when all are). */
  reasons: string[]
}

export interface MailboxRow {
  mailboxId: string
  /** systemuserid of the owning user; null for queue mailboxes (never synced by this server). */
  ownerId: string | null
  email: string
  eligibility: Eligibility
  /** An administrator asked for Test & Enable and it has not run yet. */
  testScheduled: boolean
  /** The workloads the mailbox is configured for (enabled + delivery method server-side sync), tested or not. */
  configured: { incoming: boolean; outgoing: boolean; act: boolean }
  /** The CRM email server profile of the mailbox (absent: the Exchange path over Graph). */
  profile?: RowProfile | undefined
}

export type TestStatus = 'success' | 'failure' | 'not-run'

/** Alert codes the server writes on a mailbox's alert wall (`tracelog.tracecode`). */
export const AlertCodes = { TestAndEnableSucceeded: 7000, TestAndEnableFailed: 7001, MailboxDisabled: 7002, SendFailed: 7003, MessageUnreadable: 7004 } as const
export type AlertCode = (typeof AlertCodes)[keyof typeof AlertCodes]

export interface MailboxAlert {
  level: 'error' | 'warning' | 'information'
  code: AlertCode
  text: string
}

export interface MailboxDirectoryPort {
  list(): Promise<MailboxRow[]>
  recordTestResult(mailboxId: string, result: { incoming: TestStatus; outgoing: TestStatus; act: TestStatus }): Promise<void>
  recordSyncOutcome(mailboxId: string, outcome: { completedOn: Date; itemsProcessed: number; itemsFailed: number; errorCode?: number | undefined; errorCount: number }): Promise<void>
  /** Disables the mailbox for synchronization (after a permanent error or too many transient ones) and raises an alert. */
  disable(mailboxId: string, reason: string, workloads?: Array<'incoming' | 'outgoing' | 'act'>): Promise<void>
  raiseAlert(mailboxId: string, alert: MailboxAlert): Promise<void>
}
