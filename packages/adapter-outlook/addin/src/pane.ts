/**
 * The task pane UI (no framework): connects with the user's client token, checks that the mailbox is
 * enabled for server-side sync, shows the e-mail's parties as CRM records and its tracking state, and
 * runs Track, Set Regarding (search → pick), Stop tracking and Add contact.
 */
import { OutlookProtocolError } from '../../src/errors.js'
import type { CrmRef, ItemInfoResult } from '../../src/protocol.js'
import { type OfficeLike, type OpenEmail, addressesOf, readOpenEmail, rememberedToken, storeToken, trackFieldsOf } from './office-item.js'
import { PaneClient, type PaneSocketConstructor } from './pane-client.js'

export interface PaneOptions {
  /** `ws(s)://host/client` of the sync server. */
  url: string
  WebSocket: PaneSocketConstructor
  /** A stable id for this installation (1–64 of A–Z a–z 0–9 . _ : -). */
  clientId: string
}

export const NOT_ENABLED_MESSAGE = 'Your mailbox is not enabled for server-side synchronization, which the Concord App for Outlook requires. Ask your CRM administrator to enable it (Test & Enable).'

const ACTIONS = ['track', 'set-regarding', 'stop-tracking', 'add-contact'] as const

export class Pane {
  private client: PaneClient | undefined
  private email: OpenEmail | undefined
  private info: ItemInfoResult | undefined
  private enabled = false

  constructor(
    private readonly doc: Document,
    private readonly office: OfficeLike,
    private readonly options: PaneOptions,
  ) {}

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
    try {
      this.client?.close()
      this.client = await PaneClient.connect(this.options.url, token, this.options.clientId, this.options.WebSocket)
    } catch (error) {
      this.el('login').hidden = false
      return this.status(error instanceof OutlookProtocolError && error.code === 'unauthorized' ? 'The client token was refused.' : (error as Error).message, 'error')
    }
    this.el('login').hidden = true
    if (remember !== undefined) await storeToken(this.office, token, remember).catch((error: unknown) => this.status((error as Error).message, 'error'))
    const mailbox = await this.client.request('mailboxStatus', {})
    this.enabled = mailbox.serverSideSync
    if (!this.enabled) {
      const banner = this.el('not-enabled')
      banner.hidden = false
      banner.textContent = NOT_ENABLED_MESSAGE + (mailbox.reason ? ` (${mailbox.reason})` : '')
      this.setActions(false)
      return this.status('Not enabled for server-side synchronization.', 'error')
    }
    await this.refresh()
    this.status('Connected.')
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
    const allowed: Record<(typeof ACTIONS)[number], boolean> = { track: !tracked, 'set-regarding': true, 'stop-tracking': tracked, 'add-contact': !senderKnown }
    for (const id of ACTIONS) this.el<HTMLButtonElement>(id).disabled = !(on && this.enabled && allowed[id])
    this.el<HTMLButtonElement>('search').disabled = !(on && this.enabled)
  }

  private async run(what: string, action: () => Promise<string>): Promise<void> {
    this.status(what)
    try {
      const done = await action()
      await this.refresh()
      this.status(done)
    } catch (error) {
      this.status(error instanceof OutlookProtocolError ? `${error.code}: ${error.message}` : (error as Error).message, 'error')
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
