/**
 * Test environment: the Graph emulator over https (self-signed), a fetch that trusts exactly its
 * certificate (a keep-alive https agent with that CA; TLS is never disabled globally), and adapters pointed at it.
 */
import { startGraphEmulator } from '@concord/emulator-graph'
import type { GraphEmulator, GraphEmulatorOptions } from '@concord/emulator-graph'
import type { Fields, ItemKind, NativeId } from '@concord/engine'
import { ExchangeAdapter } from '../adapter.js'
import { toGraph } from '../mapping.js'
import { createTrustedFetch } from '../trusted-fetch.js'
import { encodeNativeId } from '../native-id.js'
import type { ExchangeAdapterDeps, ExchangeAdapterOptions } from '../options.js'

export const UPN = 'alice@contoso.test'

export const EMULATOR_KIND = { email: 'message', appointment: 'event', contact: 'contact', task: 'task' } as const

export interface EmulatorEnv {
  em: GraphEmulator
  fetch: typeof fetch
  adapter(overrides?: Partial<ExchangeAdapterOptions>, deps?: ExchangeAdapterDeps): ExchangeAdapter
  /** Current id of the default To Do list (it changes when the emulator is reset). */
  listId(): string
  /** A person's change on the mailbox, outside Concord (seeded through the emulator's control API). */
  remote: {
    create(kind: ItemKind, fields: Fields, container?: string): Promise<NativeId>
    update(nativeId: NativeId, kind: ItemKind, patch: Fields): Promise<void>
    remove(nativeId: NativeId, kind: ItemKind): Promise<void>
  }
  graphId(nativeId: NativeId): string
  close(): Promise<void>
}

export async function startEmulatorEnv(options: GraphEmulatorOptions = {}): Promise<EmulatorEnv> {
  const em = await startGraphEmulator({ mailboxes: [UPN], https: true, ...options })
  const trusted = createTrustedFetch({ ca: em.certificate! })
  const trustedFetch = trusted.fetch
  const listId = () => em.control.containerId(UPN, 'todoList', 'defaultlist')
  const adapters: ExchangeAdapter[] = []
  const graphId = (nativeId: NativeId) => nativeId.split('~').at(-1)!
  return {
    em,
    fetch: trustedFetch,
    listId,
    adapter(overrides = {}, deps = {}) {
      const a = new ExchangeAdapter(
        {
          replicaId: 'alice',
          mailbox: UPN,
          tenantId: em.tenant,
          clientId: 'concord-test',
          clientSecret: 'test-secret',
          tokenUrl: em.tokenUrl,
          graphBaseUrl: em.url,
          // To Do keeps only the instant of a task date: the samples' dates are in this zone, so they read back unchanged.
          taskTimeZone: 'Europe/Berlin',
          ...overrides,
        },
        { fetch: trustedFetch, ...deps },
      )
      adapters.push(a)
      return a
    },
    remote: {
      async create(kind, fields, container) {
        const body = toGraph(kind, fields)
        const target = container ?? (kind === 'email' ? (fields['direction'] === 'outgoing' ? 'sentitems' : 'inbox') : undefined)
        const [seeded] = em.control.seed(UPN, EMULATOR_KIND[kind], [body], target)
        return encodeNativeId(kind, seeded!.immutableId, listId())
      },
      async update(nativeId, kind, patch) {
        em.control.updateItem(UPN, graphId(nativeId), toGraph(kind, patch))
      },
      async remove(nativeId) {
        em.control.deleteItem(UPN, graphId(nativeId))
      },
    },
    graphId,
    async close() {
      for (const a of adapters) await a.close()
      await em.close()
      trusted.close()
    },
  }
}

const DAY_MS = 86_400_000
/** Dates of sample events and tasks: 30–57 days from the day the tests start, inside the default calendar window. */
const BASE_DAY = Math.floor(Date.now() / DAY_MS) * DAY_MS + 30 * DAY_MS
const dateOf = (offsetDays: number) => new Date(BASE_DAY + offsetDays * DAY_MS).toISOString().slice(0, 10)

/** Canonical fields the adapter round-trips losslessly, per kind, varied by `n`. */
export function exchangeSampleFields(kind: ItemKind, n: number): Fields {
  const day = String((n % 27) + 1).padStart(2, '0')
  const date = dateOf(n % 27)
  switch (kind) {
    case 'email':
      return {
        subject: `Quarterly review #${n}`,
        body: `Hello,\nplease find the numbers for round ${n}.`,
        from: { name: 'Alice Adams', address: UPN },
        to: [{ name: 'Bob Brown', address: 'bob@fabrikam.test' }],
        cc: n % 2 ? [{ address: 'carol@fabrikam.test' }] : null,
        direction: n % 2 ? 'outgoing' : 'incoming',
        internetMessageId: `<msg-${n}@contoso.test>`,
        sentAt: `2026-11-${day}T08:00:00Z`,
        categories: n % 2 ? ['Tracked to Dynamics 365'] : [],
      }
    case 'appointment':
      return {
        subject: `Planning ${n}`,
        body: `Agenda item ${n}`,
        start: { dateTime: `${date}T09:00:00`, timeZone: 'Europe/Berlin' },
        end: { dateTime: `${date}T10:30:00`, timeZone: 'Europe/Berlin' },
        location: `Room ${n}`,
        organizer: { name: 'Alice Adams', address: UPN },
        requiredAttendees: [{ address: `guest${n}@fabrikam.test` }],
        optionalAttendees: n % 2 ? [{ name: 'Opt', address: `opt${n}@fabrikam.test` }] : null,
        isAllDay: false,
        showAs: n % 2 ? 'tentative' : 'busy',
        importance: 'normal',
        recurrence: n % 3 === 0 ? { pattern: { type: 'weekly', interval: 1, daysOfWeek: ['monday'] }, range: { type: 'endDate', startDate: date, endDate: dateOf(120) } } : null,
        categories: ['Customer'],
      }
    case 'contact':
      return {
        givenName: `Given${n}`,
        surname: `Family${n}`,
        email1: `person${n}@fabrikam.test`,
        email2: n % 2 ? `alt${n}@fabrikam.test` : null,
        jobTitle: n % 2 ? 'Buyer' : 'Engineer',
        businessPhone: `+49 30 ${1000 + n}`,
        mobilePhone: `+49 170 ${2000 + n}`,
        companyName: 'Fabrikam',
        businessAddress: { street: `Main St ${n}`, city: 'Berlin', countryOrRegion: 'Germany' },
        birthday: `1980-01-${day}`,
        notes: `Met at fair ${n}`,
        categories: ['VIP'],
      }
    case 'task':
      return {
        subject: `Follow up ${n}`,
        description: `Call back about order ${n}`,
        status: n % 2 ? 'inProgress' : 'notStarted',
        priority: n % 3 === 0 ? 'high' : 'normal',
        due: { dateTime: `${date}T17:00:00`, timeZone: 'Europe/Berlin' },
        start: { dateTime: `${date}T08:00:00`, timeZone: 'Europe/Berlin' },
        categories: ['CRM'],
      }
  }
}
