import { z } from 'zod'
import type { ItemKind } from '../model/item.js'

/**
 * Sync direction of one field pair (Dynamics "synchronized fields", protocols.md §5.5):
 * - `both`       two-way;
 * - `toCrm`      mailbox (Exchange/Outlook) → CRM only;
 * - `toExchange` CRM → mailbox only;
 * - `none`       not synchronized.
 * One-way semantics: an edit on the forbidden side stays local, is never sent, and is overwritten
 * the next time the source side's value changes.
 */
export const Directions = ['both', 'toCrm', 'toExchange', 'none'] as const
export const DirectionSchema = z.enum(Directions)
export type Direction = (typeof Directions)[number]

export type DirectionTable = Readonly<Record<string, Direction>>

/**
 * Dynamics 365 defaults per kind (protocols.md §5.5):
 * - appointments: every documented pair is two-way; Appointment Time (start, end, all-day) is fixed
 *   two-way; categories are not synchronized;
 * - contacts: the legacy pairs are two-way; categories are not synchronized;
 * - tasks: subject, body, due, start, completion date (actualend), priority, status two-way; categories
 *   and reminders not synchronized (§5.5 "Not synced: reminders");
 * - e-mail is not in the synchronized-fields table: a tracked e-mail flows mailbox → CRM (the mailbox
 *   holds the delivered message), Regarding is two-way, categories stay in the mailbox.
 */
export const DYNAMICS_DEFAULT_DIRECTIONS: Readonly<Record<ItemKind, DirectionTable>> = {
  email: {
    subject: 'toCrm',
    body: 'toCrm',
    from: 'toCrm',
    to: 'toCrm',
    cc: 'toCrm',
    bcc: 'toCrm',
    sentAt: 'toCrm',
    receivedAt: 'toCrm',
    internetMessageId: 'toCrm',
    inReplyTo: 'toCrm',
    conversationId: 'toCrm',
    direction: 'toCrm',
    regarding: 'both',
    categories: 'none',
  },
  appointment: {
    subject: 'both',
    body: 'both',
    start: 'both',
    end: 'both',
    location: 'both',
    organizer: 'both',
    requiredAttendees: 'both',
    optionalAttendees: 'both',
    resourceAttendees: 'both',
    recurrence: 'both',
    isAllDay: 'both',
    showAs: 'both',
    importance: 'both',
    categories: 'none',
    regarding: 'both',
  },
  contact: {
    givenName: 'both',
    middleName: 'both',
    surname: 'both',
    displayName: 'both',
    email1: 'both',
    email2: 'both',
    email3: 'both',
    businessPhone: 'both',
    homePhone: 'both',
    mobilePhone: 'both',
    companyName: 'both',
    jobTitle: 'both',
    department: 'both',
    businessAddress: 'both',
    homeAddress: 'both',
    otherAddress: 'both',
    birthday: 'both',
    notes: 'both',
    categories: 'none',
  },
  task: {
    subject: 'both',
    description: 'both',
    due: 'both',
    start: 'both',
    reminder: 'none',
    completedOn: 'both',
    status: 'both',
    priority: 'both',
    percentComplete: 'both',
    categories: 'none',
    regarding: 'both',
  },
}

/** Pairs an admin cannot change (Appointment Time is always two-way, §5.5). */
export const FIXED_DIRECTIONS: Readonly<Record<ItemKind, readonly string[]>> = {
  email: [],
  appointment: ['start', 'end', 'isAllDay'],
  contact: [],
  task: [],
}

/** The directions of every kind after applying an admin's overrides to the Dynamics defaults. */
export function resolveDirections(overrides: Partial<Record<ItemKind, Partial<Record<string, Direction>>>> = {}): Record<ItemKind, Record<string, Direction>> {
  const out = {} as Record<ItemKind, Record<string, Direction>>
  for (const kind of Object.keys(DYNAMICS_DEFAULT_DIRECTIONS) as ItemKind[]) {
    const table: Record<string, Direction> = { ...DYNAMICS_DEFAULT_DIRECTIONS[kind] }
    for (const [name, direction] of Object.entries(overrides[kind] ?? {})) if (direction !== undefined) table[name] = direction
    out[kind] = table
  }
  return out
}

/** Whether a value may flow from CRM to mailbox / mailbox to CRM under `direction`. */
export const flowsToMailbox = (direction: Direction): boolean => direction === 'both' || direction === 'toExchange'
export const flowsToCrm = (direction: Direction): boolean => direction === 'both' || direction === 'toCrm'
