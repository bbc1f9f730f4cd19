/**
 * The task pane UI (no framework): connects with the user's client token, checks that the mailbox is
 * enabled for server-side sync, shows the e-mail's parties as CRM records and its tracking state, and
 * runs Track, Set Regarding (search → pick), Stop tracking and Add contact.
 */
import { OutlookProtocolError } from '../../src/errors.js'
import type { CrmRef, ItemInfoResult } from '../../src/protocol.js'
import { type OfficeLike, type OpenEmail, addressesOf, readOpenEmail, rememberedToken, storeToken, trackFieldsOf } from './office-item.js'
import { PaneClient, type PaneSocketConstructor } from './pane-client.js'

/** The timer functions the pane's reconnect uses (injected in tests). */
export interface PaneTimers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export interface PaneOptions {
  /** `ws(s)://host/client` of the sync server. */
  url: string
  WebSocket: PaneSocketConstructor
  /** A stable id for this installation (1–64 of A–Z a–z 0–9 . _ : -). */
  clientId: string
  /**
   * Reconnect backoff after the socket drops: delay = min(maxMs, initialMs·2^attempt)·(1 − jitter·random).
   * Defaults: 1 s, 60 s, 0.5.
   */
  backoff?: { initialMs?: number | undefined; maxMs?: number | undefined; jitter?: number | undefined } | undefined
  timers?: PaneTimers | undefined
  random?: (() => number) | undefined
}

export const NOT_ENABLED_MESSAGE = 'Your mailbox is not enabled for server-side synchronization, which the Concord App for Outlook requires. Ask your CRM administrator to enable it (Test & Enable).'
export const TRACKING_UNSUPPORTED_MESSAGE = 'Manual tracking (Track, Set Regarding, Stop tracking) is not available for your mailbox'

/** The pane's connection state (also on `document.body.dataset.connection`). */
export type PaneConnection = 'disconnected' | 'connecting' | 'connected' | 'reconnecting'

const ACTIONS = ['track', 'set-regarding', 'stop-tracking', 'add-contact'] as const

export class Pane {
  private client: PaneClient | undefined
  private email: OpenEmail | undefined
  private info: ItemInfoResult | undefined
  private enabled = false
  private manualTracking = true
  /** The token of the live session, kept in memory only, to reconnect with. */
  private token: string | undefined
  private attempt = 0
  private reconnectTimer: unknown
  /** The action that was waiting for an answer when the socket dropped (never resent). */
  private interrupted: string | undefined
  private readonly timers: PaneTimers
  private readonly random: () => number
  connection: PaneConnection = 'disconnected'

  constructor(
    private readonly doc: Document,
    private readonly office: OfficeLike,
    private readonly options: PaneOptions,
  ) {
    this.timers = options.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>) }
    this.random = options.random ?? Math.random
  }

  private setConnection(state: PaneConnection): void {
    this.connection = state
    this.doc.body.dataset.connection = state
  }

  /** The next reconnect delay: exponential, capped, with jitter so panes do not reconnect in step. */
  reconnectDelay(attempt: number): number {
    const b = this.options.backoff ?? {}
    const initial = b.initialMs ?? 1_000
    const max = b.maxMs ?? 60_000
    const jitter = Math.min(Math.max(b.jitter ?? 0.5, 0), 1)
    return Math.round(Math.min(max, initial * 2 ** attempt) * (1 - jitter * this.random()))
  }

  private el<T extends HTMLElement = HTMLElement>(id: string): T {
    const e = this.doc.getElementById(id)
    if (!e) throw new Error(`the task pane has no #${id}`)
    return e as T
  }

  private status(text: string, kind: 'info' | 'error' = 'info'): void {
    const s = this.el('status')
    s.textContent = text
    s.className = kind
  }

  /** Reads the item, wires the buttons, and connects with the remembered token (or asks for one). */
  async start(): Promise<void> {
    try {
      this.email = readOpenEmail(this.office)
    } catch (error) {
      this.status((error as Error).message, 'error')
      this.setActions(false)
      return
    }
    this.el('subject').textContent = this.email.subject || '(no subject)'
    this.el('connect').addEventListener('click', () => void this.connectFromForm())
    this.el('track').addEventListener('click', () => void this.run('Tracking…', () => this.track()))
    this.el('stop-tracking').addEventListener('click', () => void this.run('Stopping tracking…', () => this.stopTracking()))
    this.el('add-contact').addEventListener('click', () => void this.run('Adding contact…', () => this.addContact()))
    this.el('set-regarding').addEventListener('click', () => this.el('regarding-search').toggleAttribute('hidden'))
    this.el('search').addEventListener('click', () => void this.run('Searching…', () => this.search()))
    this.setActions(false)
    const token = rememberedToken(this.office)
    if (token) await this.connect(token)
    else this.el('login').hidden = false
  }

  private async connectFromForm(): Promise<void> {
    const token = this.el<HTMLInputElement>('token').value.trim()
    if (!token) return this.status('Enter your client token (ask your administrator).', 'error')
    await this.connect(token, this.el<HTMLInputElement>('remember').checked)
  }

  private async connect(token: string, remember?: boolean): Promise<void> {
    this.status('Connecting…')
    this.setConnection('connecting')
    this.cancelReconnect()
    try {
      this.client?.close()
      this.client = await this.open(token)
    } catch (error) {
      this.setConnection('disconnected')
      this.el('login').hidden = false
      return this.status(error instanceof OutlookProtocolError && error.code === 'unauthorized' ? 'The client token was refused.' : (error as Error).message, 'error')
    }
    this.token = token
    this.attempt = 0
    this.setConnection('connected')
    this.el('login').hidden = true
    if (remember !== undefined) await storeToken(this.office, token, remember).catch((error: unknown) => this.status((error as Error).message, 'error'))
    try {
      if (await this.readMailbox()) {
        await this.refresh()
        this.status('Connected.')
      }
    } catch (error) {
      this.status(this.describe(error), 'error')
    }
  }

  private open(token: string): Promise<PaneClient> {
    let client: PaneClient | undefined
    const opened = PaneClient.connect(this.options.url, token, this.options.clientId, this.options.WebSocket, (code, reason) => {
      if (client && client === this.client) this.disconnected(code, reason)
    })
    return opened.then((c) => (client = c))
  }

  /** Asks whether the mailbox is enabled (and may track) and shows it; false when the pane cannot act. */
  private async readMailbox(): Promise<boolean> {
    const mailbox = await this.client!.request('mailboxStatus', {})
    this.enabled = mailbox.serverSideSync
    this.manualTracking = mailbox.manualTracking ?? true
    const banner = this.el('not-enabled')
    if (!this.enabled) {
      banner.hidden = false
      banner.textContent = NOT_ENABLED_MESSAGE + (mailbox.reason ? ` (${mailbox.reason})` : '')
      this.setActions(false)
      this.status('Not enabled for server-side synchronization.', 'error')
      return false
    }
    banner.hidden = this.manualTracking
    banner.textContent = this.manualTracking ? '' : `${TRACKING_UNSUPPORTED_MESSAGE}${mailbox.reason ? ` (${mailbox.reason})` : ''}.`
    return true
  }

  /** The socket dropped after the handshake: reconnect with backoff, unless the server refused us. */
  private disconnected(code: number, reason: string): void {
    this.client = undefined
    this.setActions(false)
    if (code === 1008) {
      // Policy close: the token was revoked or refused. Do not retry with it.
      this.token = undefined
      this.setConnection('disconnected')
      this.el('login').hidden = false
      return this.status(`The sync server closed the connection (${reason || 'policy'}); enter your client token again.`, 'error')
    }
    this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    if (this.token === undefined) return
    const delay = this.reconnectDelay(this.attempt)
    this.attempt++
    this.setConnection('reconnecting')
    const note = this.interrupted ? ` “${this.interrupted}” was interrupted and is not resent; the e-mail's state is re-read after reconnecting.` : ''
    this.status(`Connection lost. Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s (attempt ${this.attempt})…${note}`, 'error')
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = undefined
      void this.reconnect()
    }, delay)
  }

  private cancelReconnect(): void {
    if (this.reconnectTimer !== undefined) this.timers.clearTimeout(this.reconnectTimer)
    this.reconnectTimer = undefined
  }

  private async reconnect(): Promise<void> {
    const token = this.token
    if (token === undefined || this.connection !== 'reconnecting') return
    try {
      this.client = await this.open(token)
    } catch (error) {
      if (error instanceof OutlookProtocolError && error.code === 'unauthorized') {
        this.token = undefined
        this.setConnection('disconnected')
        this.el('login').hidden = false
        return this.status('The client token was refused.', 'error')
      }
      return this.scheduleReconnect()
    }
    this.attempt = 0
    this.setConnection('connected')
    const interrupted = this.interrupted
    this.interrupted = undefined
    try {
      if (await this.readMailbox()) {
        await this.refresh()
        this.status(interrupted ? `Reconnected. “${interrupted}” was interrupted and not resent; the state above is the CRM's.` : 'Reconnected.')
      }
    } catch (error) {
      this.status(this.describe(error), 'error')
    }
  }

  private describe(error: unknown): string {
    return error instanceof OutlookProtocolError ? `${error.code}: ${error.message}` : (error as Error).message
  }

  /** Re-reads the parties and the tracking state from the CRM and redraws. */
  private async refresh(): Promise<void> {
    const email = this.email!
    this.info = await this.client!.request('itemInfo', { input: { addresses: addressesOf(email), ...(email.internetMessageId ? { internetMessageId: email.internetMessageId } : {}) } })
    this.render()
  }

  private render(): void {
    const email = this.email!
    const info = this.info!
    const parties = this.el('parties')
    parties.replaceChildren()
    const byAddress = new Map(info.parties.map((p) => [p.address, p.records]))
    const row = (role: string, a: { address: string; name?: string }) => {
      const li = this.doc.createElement('li')
      const records = byAddress.get(a.address.toLowerCase()) ?? []
      li.className = records.length > 0 ? 'party in-crm' : 'party not-in-crm'
      li.dataset.address = a.address.toLowerCase()
      const label = this.doc.createElement('span')
      label.className = 'role'
      label.textContent = `${role}: `
      const who = this.doc.createElement('span')
      who.className = 'who'
      who.textContent = records.length > 0 ? records.map((r) => `${r.name ?? r.id} (${r.table})`).join(', ') : `${a.name ? `${a.name} ` : ''}<${a.address}> — not in the CRM`
      li.append(label, who)
      parties.append(li)
    }
    row('From', email.from)
    for (const a of email.to) row('To', a)
    for (const a of email.cc) row('Cc', a)
    const tracked = info.tracked
    this.el('tracking').textContent = tracked ? `Tracked${tracked.regarding ? ` — regarding ${tracked.regarding.name ?? tracked.regarding.id} (${tracked.regarding.table})` : ' (no regarding record)'}` : 'Not tracked'
    this.el('tracking').dataset.state = tracked ? 'tracked' : 'untracked'
    this.setActions(true)
  }

  private setActions(on: boolean): void {
    const tracked = this.info?.tracked != null
    const senderKnown = (this.info?.parties.find((p) => p.address === this.email?.from.address.toLowerCase())?.records ?? []).some((r) => r.table === 'contact' || r.table === 'systemuser')
    const manual = this.manualTracking
    const allowed: Record<(typeof ACTIONS)[number], boolean> = { track: manual && !tracked, 'set-regarding': manual, 'stop-tracking': manual && tracked, 'add-contact': !senderKnown }
    const live = on && this.enabled && this.connection === 'connected'
    for (const id of ACTIONS) this.el<HTMLButtonElement>(id).disabled = !(live && allowed[id])
    this.el<HTMLButtonElement>('search').disabled = !(live && manual)
  }

  /**
   * Runs one action. Each request is sent once: when the socket drops before the answer, the action is
   * reported as interrupted and not resent (the CRM may or may not have applied it); after reconnecting
   * the pane re-reads the e-mail's state instead.
   */
  private async run(what: string, action: () => Promise<string>): Promise<void> {
    if (!this.client || this.connection !== 'connected') return this.status('Not connected to the sync server.', 'error')
    const client = this.client
    this.status(what)
    try {
      const done = await action()
      await this.refresh()
      this.status(done)
    } catch (error) {
      if (error instanceof OutlookProtocolError && error.code === 'unavailable' && client.closed) {
        this.interrupted = what.replace(/…$/, '')
        if ((this.connection as PaneConnection) === 'reconnecting') this.status(`Connection lost while “${this.interrupted}” waited for an answer; it is not resent. Reconnecting…`, 'error')
        return
      }
      if (error instanceof OutlookProtocolError && (error.code === 'mailbox_not_enabled' || error.code === 'profile_unsupported')) {
        // The server's answer wins over what the pane believed: re-read the mailbox's status.
        await this.readMailbox().catch(() => undefined)
        this.setActions(this.info !== undefined)
      }
      this.status(this.describe(error), 'error')
    }
  }

  private async track(regarding?: CrmRef): Promise<string> {
    const userEmail = this.office.context.mailbox.userProfile?.emailAddress
    const result = await this.client!.request('track', { input: { kind: 'email', fields: trackFieldsOf(this.email!, userEmail), ...(regarding ? { regarding } : {}) } })
    return `Tracked as ${result.crmId}.`
  }

  private async stopTracking(): Promise<string> {
    const tracked = this.info?.tracked
    if (!tracked) return 'Not tracked.'
    const result = await this.client!.request('stopTracking', { input: { crmId: tracked.crmId } })
    return result.deleted ? 'Stopped tracking; the CRM copy was deleted.' : 'Stopped tracking.'
  }

  private async addContact(): Promise<string> {
    const result = await this.client!.request('addContact', { input: { sender: this.email!.from } })
    return result.created ? `Added ${this.email!.from.address} as a CRM contact.` : `${this.email!.from.address} is already a CRM contact.`
  }

  private async search(): Promise<string> {
    const text = this.el<HTMLInputElement>('search-text').value.trim()
    if (!text) return 'Type part of a name to search.'
    const { records } = await this.client!.request('search', { input: { text } })
    const list = this.el('search-results')
    list.replaceChildren()
    for (const r of records) {
      const li = this.doc.createElement('li')
      const pick = this.doc.createElement('button')
      pick.type = 'button'
      pick.className = 'pick'
      pick.textContent = `${r.name ?? r.id} (${r.table})`
      pick.addEventListener('click', () => void this.run('Setting regarding…', () => this.setRegarding(r)))
      li.append(pick)
      list.append(li)
    }
    return records.length === 0 ? `No contact or account matches “${text}”.` : `${records.length} record(s) found; pick one.`
  }

  private async setRegarding(record: CrmRef): Promise<string> {
    const tracked = this.info?.tracked
    this.el('search-results').replaceChildren()
    this.el('regarding-search').hidden = true
    // Not tracked yet: Set Regarding tracks the e-mail with the record at once.
    if (!tracked) return this.track(record)
    await this.client!.request('setRegarding', { input: { crmId: tracked.crmId, regarding: record } })
    return `Regarding set to ${record.name ?? record.id}.`
  }
}
