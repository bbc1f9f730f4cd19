import type { Fields, ItemKind } from '../model/item.js'

/** Deterministic, schema-valid canonical fields of each kind, varied by `n`. */
export function sampleFields(kind: ItemKind, n: number): Fields {
  switch (kind) {
    case 'email':
      return {
        subject: `Quarterly review #${n}`,
        body: `Hello,\nplease find the numbers for round ${n}.`,
        from: { name: 'Alice Adams', address: 'alice@contoso.test' },
        to: [{ name: 'Bob Brown', address: 'bob@fabrikam.test' }],
        direction: 'outgoing',
        internetMessageId: `<msg-${n}@contoso.test>`,
        categories: n % 2 ? ['Tracked to Dynamics 365'] : [],
      }
    case 'appointment':
      return {
        subject: `Planning ${n}`,
        body: `Agenda item ${n}`,
        start: { dateTime: `2026-12-${String((n % 27) + 1).padStart(2, '0')}T09:00:00`, timeZone: 'Europe/Berlin' },
        end: { dateTime: `2026-12-${String((n % 27) + 1).padStart(2, '0')}T10:00:00`, timeZone: 'Europe/Berlin' },
        location: `Room ${n}`,
        isAllDay: false,
        showAs: 'busy',
        requiredAttendees: [{ address: `guest${n}@fabrikam.test` }],
      }
    case 'contact':
      return {
        givenName: `Given${n}`,
        surname: `Family${n}`,
        email1: `person${n}@fabrikam.test`,
        jobTitle: n % 2 ? 'Buyer' : 'Engineer',
        businessPhone: `+49 30 ${1000 + n}`,
      }
    case 'task':
      return {
        subject: `Follow up ${n}`,
        description: `Call back about order ${n}`,
        status: 'notStarted',
        priority: n % 3 === 0 ? 'high' : 'normal',
        due: { dateTime: `2026-12-${String((n % 27) + 1).padStart(2, '0')}T17:00:00`, timeZone: 'UTC' },
      }
  }
}
