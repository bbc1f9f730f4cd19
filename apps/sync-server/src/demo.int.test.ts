/** `npm start`'s demo: both emulators, three Exchange users (one enabled by Test & Enable), one IMAP mailbox on Dovecot. */
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type Demo, startDemo } from './demo.js'
import { until } from './test/world.js'

let demo: Demo
beforeAll(async () => {
  demo = await startDemo({ port: 0, logLevel: 'silent', refreshIntervalMs: 500 })
}, 60_000)
afterAll(async () => {
  await demo?.stop()
})

test('the demo syncs every mailbox: CRM contacts reach Exchange, tracked meetings and IMAP mail reach the CRM', async () => {
  const states = async () => (await demo.server.listMailboxes()).map((m) => m.state)
  await until(async () => (await states()).length === demo.users.length && (await states()).every((s) => s === 'enabled'), 'every demo mailbox to be enabled', 600, 100)
  for (const u of demo.users.filter((u) => u.email !== 'dora@contoso.test')) {
    await until(() => demo.graph.control.count(u.email, 'contact') === 3, `the contacts of ${u.email}`, 600, 100)
  }
  await until(() => demo.dataverse.admin.rows('appointments').length === 3, 'the tracked meetings in the CRM', 600, 100)
  expect('email' in demo.imap).toBe(true) // Dovecot is installed wherever the tests run (npm test installs it)
  await until(() => demo.dataverse.admin.rows('emails').filter((r) => String(r.values['subject']).includes('order 2001') || String(r.values['subject']).includes('Order 2001')).length === 2, 'the IMAP mail in the CRM', 600, 100)
})
