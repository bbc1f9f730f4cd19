// Runs the embedding example from README.md ("Embedding example"); keep the two in sync.
import { expect, test } from 'vitest'
import { startGraphEmulator } from './index.js'

test('README embedding example', async () => {
  // --- README snippet start ---
  const emulator = await startGraphEmulator({ mailboxes: ['alex@contoso.test'] })
  try {
    // Seed state directly (no throttling, no HTTP).
    emulator.control.seed('alex@contoso.test', 'message', [{ subject: 'Quarterly review' }])

    // OAuth2 client credentials, as against login.microsoftonline.com.
    const tokenRes = await fetch(emulator.tokenUrl, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: 'my-app',
        client_secret: 'my-secret',
        scope: 'https://graph.microsoft.com/.default',
      }),
    })
    const { access_token } = (await tokenRes.json()) as { access_token: string }

    // One delta round over the inbox: follow @odata.nextLink until @odata.deltaLink.
    let url = `${emulator.url}/v1.0/users/alex@contoso.test/mailFolders/inbox/messages/delta`
    const subjects: string[] = []
    let deltaLink: string | undefined
    while (deltaLink === undefined) {
      const res = await fetch(url, { headers: { authorization: `Bearer ${access_token}`, prefer: 'odata.maxpagesize=50' } })
      const page = (await res.json()) as { value: Array<{ subject: string }>; '@odata.nextLink'?: string; '@odata.deltaLink'?: string }
      subjects.push(...page.value.map((m) => m.subject))
      deltaLink = page['@odata.deltaLink']
      url = page['@odata.nextLink'] ?? url
    }
    console.log(subjects) // [ 'Quarterly review' ]
    // --- README snippet end ---
    expect(subjects).toEqual(['Quarterly review'])
    expect(deltaLink).toContain('$deltatoken=')
  } finally {
    await emulator.close()
  }
})
