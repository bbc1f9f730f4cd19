import type { SyncFilterSet } from './filters.js'

/** The mailbox owner a pair syncs for. */
export interface MergeUser {
  /** CRM system-user id (compared with `CrmRecordMeta.ownerId` / `attendeeIds`). */
  id: string
  /** The user's e-mail addresses (matched case-insensitively against attendees). */
  addresses?: readonly string[] | undefined
}

/** Field-level security of one field for the mailbox owner. */
export interface FieldAccess {
  read: boolean
  update: boolean
}

/**
 * What the CRM adapter reports the mailbox owner may do. Computed per user (and per record for
 * `canReadRecord`); see `computeSecurityMask`.
 */
export interface SecurityMask {
  /** The security role grants the sync privilege at all. Without it nothing syncs. */
  canSync: boolean
  /** May send e-mail / meeting invitations from the CRM through the mailbox. */
  canSendFromCrm: boolean
  /** May read this record (sharing / business-unit access). False = lost access. */
  canReadRecord: boolean
  /** Per field; a field not listed is readable and updatable. */
  fields?: Readonly<Record<string, FieldAccess>> | undefined
}

/** CRM metadata of the record, used by sync filters and the stop-tracking rule. */
export interface CrmRecordMeta {
  ownerId?: string | undefined
  /** System-user ids of the appointment's attendees. */
  attendeeIds?: readonly string[] | undefined
  /** State (e.g. `open`, `completed`, `canceled`, `active`, `inactive`). */
  state?: string | undefined
}

/**
 * Everything a policy-driven merge needs beyond the changes and the base. Every member is optional:
 * absent means "no restriction" (full access, no filter, no HLC), so an unwired loop behaves like a
 * plain two-way merge. See the report / README for what the sync loop must supply.
 */
export interface MergeContext {
  user?: MergeUser | undefined
  mask?: SecurityMask | undefined
  /** CRM metadata of the record (owner, attendees, state). Filters are only evaluated when present. */
  crmMeta?: CrmRecordMeta | undefined
  /** The mailbox item is tracked (App for Outlook "Track", Set Regarding, or the tracking category). */
  tracked?: boolean | undefined
  /** This user's sync filters; overrides the organization's default filters from the config. */
  filters?: SyncFilterSet | undefined
  /** Encoded HLC per field and side (the time each side last wrote the field), for `lww`. */
  fieldClocks?: Partial<Record<'crm' | 'mailbox', Record<string, string>>> | undefined
  /**
   * "Now" from the pair's injected clock (ms since epoch), for the start-time deletion rules.
   * Absent = those conditions are not evaluated. The merge never reads the wall clock itself.
   */
  now?: number | undefined
}
