/**
 * The App for Outlook end to end: the sync server (with both emulators) serves the task pane, and
 * headless Chromium (Debian's /usr/bin/chromium) runs it against an Office.js stand-in describing an
 * e-mail: connect with a client token, see the sender as a CRM contact, Track, Set Regarding, Stop
 * tracking — checked in the CRM emulator — and the "not enabled for server-side sync" message.
 */
import { existsSync } from 'node:fs'
import { inflateSync } from 'node:zlib'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { checkManifest } from '@concord/adapter-outlook/addin'
import { RawClient } from '@concord/adapter-outlook/testing'
import { type World, startWorld } from '../test/world.js'
import { OFFICE_JS_URL, type StandInMessage, officeStandInScript } from './office-stand-in.js'

const CHROMIUM = '/usr/bin/chromium'
const VIEWPORT = { width: 420, height: 640, deviceScaleFactor: 1 }
const MESSAGE_ID = '<q4-review-1@fabrikam.test>'
let w: World
let browser: Browser
let alice: { email: string; systemuserid: string; mailboxid: string | null }
let bob: { email: string; systemuserid: string }
let danId: string

const message = (to: string): StandInMessage => ({
  itemId: 'AAMkADanQ4Review=',
  internetMessageId: MESSAGE_ID,
  subject: 'Q4 review',
  from: { emailAddress: 'dan@fabrikam.test', displayName: 'Dan Jump' },
  to: [{ emailAddress: to, displayName: 'Alice' }],
  cc: [{ emailAddress: 'erin@elsewhere.test', displayName: 'Erin' }],
  dateTimeCreated: '2026-11-20T10:00:00Z',
})

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: this test needs Debian's Chromium. Install it with: apt-get install -y chromium`)
  // alice's mailbox is enabled for server-side sync; bob's waits for Test & Enable; carol has none.
  w = await startWorld({ users: [{ email: 'alice@contoso.test' }, { email: 'bob@contoso.test', mailbox: 'pending' }, { email: 'carol@contoso.test', mailbox: 'none' }] })
  alice = w.users[0]!
  bob = w.users[1]!
  danId = (w.dv.admin.createRecord('contacts', { firstname: 'Dan', lastname: 'Jump', emailaddress1: 'dan@fabrikam.test' }, alice.systemuserid) as { id: string }).id
  // The e-mail is in alice's mailbox and tracked nowhere.
  w.graph.control.seed(alice.email, 'message', [
    { subject: 'Q4 review', internetMessageId: MESSAGE_ID, body: { contentType: 'text', content: 'Numbers attached.' }, from: { emailAddress: { address: 'dan@fabrikam.test', name: 'Dan Jump' } }, toRecipients: [{ emailAddress: { address: alice.email } }], receivedDateTime: '2026-11-20T10:00:00Z' },
  ])
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
})

afterAll(async () => {
  await browser?.close()
  await w?.stop()
})

async function issueToken(userId: string): Promise<string> {
  const res = await w.api('POST', `/api/users/${userId}/client-tokens`, { label: 'App for Outlook' })
  expect(res.status).toBe(201)
  return res.body.token as string
}

/** Opens the pane with the Office.js stand-in; the page may reach only the sync server. */
async function openPane(item: StandInMessage, userEmail: string, problems: string[]): Promise<Page> {
  const page = await browser.newPage()
  await page.setViewport(VIEWPORT)
  page.on('pageerror', (error) => problems.push(`page error: ${String(error)}`))
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`)
  })
  await page.setRequestInterception(true)
  page.on('request', (request) => {
    const url = request.url()
    if (url === OFFICE_JS_URL) void request.respond({ status: 200, contentType: 'text/javascript', body: officeStandInScript(item, userEmail) })
    else if (url.startsWith(w.server.adminUrl)) void request.continue()
    else {
      problems.push(`network request: ${url}`)
      void request.abort()
    }
  })
  await page.goto(`${w.server.adminUrl}/addin/taskpane.html`, { waitUntil: 'load' })
  return page
}

async function connect(page: Page, token: string, remember: boolean): Promise<void> {
  await page.waitForSelector('#login:not([hidden])')
  await page.type('#token', token)
  if (remember) await page.click('#remember')
  await page.click('#connect')
}

const text = (page: Page, selector: string) => page.$eval(selector, (e) => e.textContent ?? '')
const crmEmails = () => w.dv.admin.rows('emails', `messageid eq '${MESSAGE_ID}'`) as Array<{ id: string; values: Record<string, unknown>; lookups: Record<string, { id: string } | null> }>

/** Width, height and number of distinct pixel rows of a PNG (8-bit RGB/RGBA, non-interlaced). */
function pngFacts(png: Buffer): { width: number; height: number; distinctRows: number } {
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
  const width = png.readUInt32BE(16)
  const height = png.readUInt32BE(20)
  const channels = png[25] === 6 ? 4 : 3
  const idat: Buffer[] = []
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at)
    if (png.toString('ascii', at + 4, at + 8) === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + length))
    at += 12 + length
  }
  const raw = inflateSync(Buffer.concat(idat))
  const stride = width * channels + 1
  const rows = new Set<string>()
  // Filtered rows differ whenever the pixels differ (a blank page gives one or two distinct rows).
  for (let y = 0; y < height; y++) rows.add(raw.subarray(y * stride, (y + 1) * stride).toString('base64'))
  return { width, height, distinctRows: rows.size }
}

test('the pane and the manifest are served without the admin token; the rest of the API still needs it', async () => {
  const html = await fetch(`${w.server.adminUrl}/addin/taskpane.html`)
  expect(html.status).toBe(200)
  expect(html.headers.get('content-type')).toContain('text/html')
  expect(await html.text()).toContain('<script src="taskpane.js"></script>')
  const js = await fetch(`${w.server.adminUrl}/addin/taskpane.js`)
  expect(js.headers.get('content-type')).toContain('text/javascript')
  expect((await js.text()).length).toBeGreaterThan(1000)
  const manifest = await fetch(`${w.server.adminUrl}/addin/manifest.xml`, { headers: { 'X-Forwarded-Host': 'crm-sync.contoso.test' } })
  expect(manifest.headers.get('content-type')).toContain('application/xml')
  const xml = await manifest.text()
  expect(xml).toContain('xsi:type="MailApp"')
  expect(xml).toContain('<SourceLocation DefaultValue="https://crm-sync.contoso.test/addin/taskpane.html" />')
  expect(xml).not.toContain('{{origin}}')
  // The manifest the server hands out passes the offline MailApp manifest check.
  expect(checkManifest(xml)).toEqual([])
  const icon = Buffer.from(await (await fetch(`${w.server.adminUrl}/addin/icon-80.png`)).arrayBuffer())
  expect(pngFacts(icon)).toMatchObject({ width: 80, height: 80 })
  expect((await fetch(`${w.server.adminUrl}/addin/nothing.js`)).status).toBe(404)
  expect((await fetch(`${w.server.adminUrl}/addin/..%2Fserver.ts`)).status).toBe(404)
  expect((await fetch(`${w.server.adminUrl}/addin/manifest.xml`, { headers: { 'X-Forwarded-Host': 'evil"host' } })).status).toBe(400)
  expect((await w.api('GET', '/api/mailboxes', undefined, null)).status).toBe(401)
})

test('headless Chromium: the pane shows the sender as a CRM contact; Track, Set Regarding and Stop tracking reach the CRM', async () => {
  const token = await issueToken(alice.systemuserid)
  const problems: string[] = []
  const page = await openPane(message(alice.email), alice.email, problems)
  try {
    await connect(page, token, true)
    await page.waitForSelector('#tracking[data-state="untracked"]')
    expect(await text(page, '.party[data-address="dan@fabrikam.test"] .who')).toBe('Dan Jump (contact)')
    expect(await text(page, '.party[data-address="alice@contoso.test"] .who')).toContain('(systemuser)')
    expect(await text(page, '.party[data-address="erin@elsewhere.test"] .who')).toContain('not in the CRM')
    expect(await text(page, '#subject')).toBe('Q4 review')
    // Connected: the token form is gone from view.
    expect(await page.$eval('#login', (e) => getComputedStyle(e).display)).toBe('none')
    // The user opted in: the token is kept in roaming settings.
    expect(await page.evaluate(() => (window as unknown as { Office: { context: { roamingSettings: { get(n: string): unknown } } } }).Office.context.roamingSettings.get('concordClientToken'))).toBe(token)
    // The sender is already a contact: Add contact is disabled; Stop tracking too (not tracked).
    expect(await page.$eval('#add-contact', (b) => (b as HTMLButtonElement).disabled)).toBe(true)
    expect(await page.$eval('#stop-tracking', (b) => (b as HTMLButtonElement).disabled)).toBe(true)
    expect(crmEmails()).toEqual([])

    // The screenshot shows the rendered pane.
    const shot = Buffer.from(await page.screenshot({ type: 'png' }))
    const facts = pngFacts(shot)
    expect({ width: facts.width, height: facts.height }).toEqual({ width: VIEWPORT.width, height: VIEWPORT.height })
    expect(facts.distinctRows).toBeGreaterThan(20)

    await page.click('#track')
    await page.waitForSelector('#tracking[data-state="tracked"]')
    // Server-side sync runs for alice meanwhile (the CRM change feed wakes her mailbox): let it settle.
    await w.syncUntilQuiet(alice.mailboxid!)
    const [tracked] = crmEmails()
    expect(tracked?.values).toMatchObject({ subject: 'Q4 review', messageid: MESSAGE_ID })
    expect(tracked?.lookups.ownerid?.id).toBe(alice.systemuserid)
    expect(await text(page, '#status')).toBe(`Tracked as emails(${tracked!.id}).`)

    // Set Regarding: search, pick, and the CRM e-mail is regarding Dan's contact.
    await page.click('#set-regarding')
    await page.type('#search-text', 'Jump')
    await page.click('#search')
    await page.waitForSelector('#search-results .pick')
    expect(await text(page, '#search-results .pick')).toBe('Dan Jump (contact)')
    await page.click('#search-results .pick')
    await page.waitForFunction(() => document.getElementById('tracking')?.textContent?.includes('regarding Dan Jump'))
    expect(crmEmails()[0]?.lookups.regardingobjectid?.id).toBe(danId)

    // Stop tracking: alice owns the CRM copy, so it is deleted.
    await page.click('#stop-tracking')
    await page.waitForSelector('#tracking[data-state="untracked"]')
    await w.syncUntilQuiet(alice.mailboxid!)
    expect(crmEmails()).toEqual([])
    expect(problems).toEqual([])
  } finally {
    await page.close()
  }
})

test('headless Chromium: a user whose mailbox is not enabled for server-side sync sees why, and every action is disabled', async () => {
  const token = await issueToken(bob.systemuserid)
  const problems: string[] = []
  const page = await openPane(message(bob.email), bob.email, problems)
  try {
    await connect(page, token, false)
    await page.waitForSelector('#not-enabled:not([hidden])')
    expect(await text(page, '#not-enabled')).toContain('Your mailbox is not enabled for server-side synchronization')
    expect(await text(page, '#not-enabled')).toContain('incoming:')
    for (const id of ['track', 'set-regarding', 'stop-tracking', 'add-contact', 'search']) expect(await page.$eval(`#${id}`, (b) => (b as HTMLButtonElement).disabled)).toBe(true)
    // Not opted in: nothing is kept.
    expect(await page.evaluate(() => (window as unknown as { Office: { context: { roamingSettings: { get(n: string): unknown } } } }).Office.context.roamingSettings.get('concordClientToken'))).toBeUndefined()
    expect(problems).toEqual([])
  } finally {
    await page.close()
  }
})

test('headless Chromium: a refused token is reported and the pane asks again; Add contact creates the unknown sender', async () => {
  const problems: string[] = []
  const item = { ...message(alice.email), itemId: 'AAMkNewPerson=', internetMessageId: '<hello-1@northwind.test>', subject: 'Hello', from: { emailAddress: 'Nora.Field@northwind.test', displayName: 'Nora Field' } }
  const page = await openPane(item, alice.email, problems)
  try {
    await connect(page, 'cct_not-a-real-token', false)
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'The client token was refused.')
    expect(await page.$eval('#login', (e) => (e as HTMLElement).hidden)).toBe(false)
    expect(await page.$eval('#track', (b) => (b as HTMLButtonElement).disabled)).toBe(true)

    await page.$eval('#token', (e) => ((e as HTMLInputElement).value = ''))
    await connect(page, await issueToken(alice.systemuserid), false)
    await page.waitForSelector('#tracking[data-state="untracked"]')
    expect(await text(page, '.party[data-address="nora.field@northwind.test"] .who')).toContain('not in the CRM')
    expect(w.dv.admin.rows('contacts', `emailaddress1 eq 'Nora.Field@northwind.test'`)).toEqual([])
    await page.click('#add-contact')
    await page.waitForFunction(() => document.querySelector('.party[data-address="nora.field@northwind.test"] .who')?.textContent === 'Nora Field (contact)')
    const [nora] = w.dv.admin.rows('contacts', `emailaddress1 eq 'Nora.Field@northwind.test'`) as Array<{ values: Record<string, unknown>; lookups: Record<string, { id: string } | null> }>
    expect(nora?.values).toMatchObject({ firstname: 'Nora', lastname: 'Field' })
    expect(nora?.lookups.ownerid?.id).toBe(alice.systemuserid)
    expect(await page.$eval('#add-contact', (b) => (b as HTMLButtonElement).disabled)).toBe(true)
  } finally {
    await page.close()
  }
})

test('headless Chromium: the pane reconnects after the server drops its socket, and works again', async () => {
  const problems: string[] = []
  const page = await openPane(message(alice.email), alice.email, problems)
  try {
    await connect(page, await issueToken(alice.systemuserid), false)
    await page.waitForSelector('body[data-connection="connected"] #tracking[data-state="untracked"]')
    // Record what the pane shows at every change (the reconnecting state may last only half a second).
    await page.evaluate(() => {
      const seen: Array<{ connection?: string; status?: string | null; trackDisabled: boolean }> = []
      ;(window as unknown as { seen: typeof seen }).seen = seen
      new MutationObserver(() => seen.push({ connection: document.body.dataset.connection, status: document.getElementById('status')?.textContent, trackDisabled: (document.getElementById('track') as HTMLButtonElement).disabled })).observe(document.body, { attributes: true, subtree: true, childList: true, characterData: true })
    })
    const dropped = await w.api('POST', `/api/users/${alice.systemuserid}/clients/disconnect`)
    expect(dropped.body.disconnected).toBeGreaterThanOrEqual(1)
    // Real timers: the first retry comes within a second (1 s backoff with jitter).
    await page.waitForFunction(() => document.body.dataset.connection === 'connected' && document.getElementById('status')?.textContent === 'Reconnected.')
    const seen = await page.evaluate(() => (window as unknown as { seen: Array<{ connection?: string; status?: string | null; trackDisabled: boolean }> }).seen)
    const reconnecting = seen.filter((s) => s.connection === 'reconnecting')
    expect(reconnecting.length).toBeGreaterThan(0)
    expect(reconnecting.some((s) => /^Connection lost\. Reconnecting in \d+ s \(attempt 1\)/.test(s.status ?? ''))).toBe(true)
    expect(reconnecting.every((s) => s.trackDisabled)).toBe(true)
    expect(await page.$eval('#track', (b) => (b as HTMLButtonElement).disabled)).toBe(false)
    await page.click('#track')
    await page.waitForSelector('#tracking[data-state="tracked"]')
    expect(crmEmails()).toHaveLength(1)
    await page.click('#stop-tracking')
    await page.waitForSelector('#tracking[data-state="untracked"]')
    await w.syncUntilQuiet(alice.mailboxid!)
    expect(crmEmails()).toEqual([])
    // The dropped socket is the only network failure the page saw (Chromium logs it as an error).
    expect(problems.filter((p) => !/WebSocket/i.test(p))).toEqual([])
  } finally {
    await page.close()
  }
})

test('over the socket: mailboxStatus without a CRM mailbox, itemInfo and search as the user, bad input named', async () => {
  const raw = await RawClient.connect(`${w.server.adminUrl.replace(/^http/, 'ws')}/client`)
  try {
    raw.send({ type: 'hello', protocol: 1, token: await issueToken(w.users[2]!.systemuserid), clientId: 'carol-pane', syncItems: false })
    await raw.frame((f) => f.type === 'welcome')
    raw.send({ type: 'mailboxStatus', id: 'm1' })
    expect(await raw.frame((f) => f.id === 'm1')).toEqual({ type: 'result', id: 'm1', result: { serverSideSync: false, reason: 'this user has no mailbox that the sync server knows' } })
    // The server refuses the action itself, not only the pane's button.
    raw.send({ type: 'addContact', id: 'a1', input: { sender: { address: 'nora@northwind.test' } } })
    expect(await raw.frame((f) => f.id === 'a1')).toMatchObject({ type: 'error', code: 'mailbox_not_enabled' })
    raw.send({ type: 'itemInfo', id: 'i1', input: { internetMessageId: '<never-tracked@x.test>', addresses: ['DAN@fabrikam.test', 'nobody@x.test'] } })
    expect(await raw.frame((f) => f.id === 'i1')).toEqual({
      type: 'result',
      id: 'i1',
      result: { tracked: null, parties: [{ address: 'dan@fabrikam.test', records: [{ table: 'contact', id: danId, name: 'Dan Jump' }] }, { address: 'nobody@x.test', records: [] }] },
    })
    raw.send({ type: 'search', id: 's1', input: { text: "Ju'mp" } })
    expect(await raw.frame((f) => f.id === 's1')).toEqual({ type: 'result', id: 's1', result: { records: [] } })
    raw.send({ type: 'search', id: 's2', input: { text: '' } })
    expect(await raw.frame((f) => f.id === 's2')).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringContaining('input.text') })
  } finally {
    raw.close()
  }
})
