import { OfficeMockObject } from 'office-addin-mock'
import { expect, test } from 'vitest'
import { type OfficeLike, OfficeItemError, TOKEN_SETTING, addressesOf, readOpenEmail, rememberedToken, storeToken, trackFieldsOf } from './office-item.js'

/** An Office.js stand-in for Outlook (office-addin-mock), with roaming settings kept in a Map. */
function officeMock(item: Record<string, unknown> | null, saved = new Map<string, unknown>(), saveStatus = 'succeeded') {
  const data = {
    context: {
      mailbox: { ...(item ? { item } : {}), userProfile: { emailAddress: 'alice@contoso.test' } },
      roamingSettings: {
        get: (name: string) => saved.get(name),
        set: (name: string, value: unknown) => void saved.set(name, value),
        remove: (name: string) => void saved.delete(name),
        saveAsync: (callback?: (r: { status: string; error: { message: string } | null }) => void) => callback?.({ status: saveStatus, error: saveStatus === 'failed' ? { message: 'quota exceeded' } : null }),
      },
    },
  }
  return { office: new OfficeMockObject(data, 'outlook' as never) as unknown as OfficeLike, saved }
}

const message = {
  itemType: 'message',
  itemId: 'AAMkAGI2TG93AAA=',
  internetMessageId: '<m1@fabrikam.test>',
  subject: 'Quarterly review',
  from: { emailAddress: 'Dan@Fabrikam.test', displayName: 'Dan Jump' },
  to: [{ emailAddress: 'alice@contoso.test', displayName: 'Alice' }],
  cc: [{ emailAddress: 'erin@fabrikam.test', displayName: '' }],
  dateTimeCreated: new Date('2026-11-20T10:00:00Z'),
}

test('reads the open message: from, to, cc, subject, internetMessageId, itemId', () => {
  const { office } = officeMock(message)
  const email = readOpenEmail(office)
  expect(email).toEqual({
    itemId: 'AAMkAGI2TG93AAA=',
    internetMessageId: '<m1@fabrikam.test>',
    subject: 'Quarterly review',
    from: { address: 'Dan@Fabrikam.test', name: 'Dan Jump' },
    to: [{ address: 'alice@contoso.test', name: 'Alice' }],
    cc: [{ address: 'erin@fabrikam.test' }],
    createdAt: '2026-11-20T10:00:00.000Z',
  })
  expect(addressesOf(email)).toEqual(['dan@fabrikam.test', 'alice@contoso.test', 'erin@fabrikam.test'])
})

test('track fields: only what the reading pane shows; direction from the user profile', () => {
  const { office } = officeMock(message)
  const email = readOpenEmail(office)
  expect(trackFieldsOf(email, 'alice@contoso.test')).toEqual({
    subject: 'Quarterly review',
    from: { address: 'Dan@Fabrikam.test', name: 'Dan Jump' },
    to: [{ address: 'alice@contoso.test', name: 'Alice' }],
    cc: [{ address: 'erin@fabrikam.test' }],
    internetMessageId: '<m1@fabrikam.test>',
    direction: 'incoming',
  })
  expect(trackFieldsOf(email, 'dan@fabrikam.test').direction).toBe('outgoing')
})

test('no item, an appointment, or a message without a sender: a clear error naming the field', () => {
  expect(() => readOpenEmail(officeMock(null).office)).toThrow(new OfficeItemError('no item is open'))
  expect(() => readOpenEmail(officeMock({ ...message, itemType: 'appointment' }).office)).toThrow(/item\.itemType: the open item is not an e-mail message/)
  const { from: _from, ...noSender } = message
  expect(() => readOpenEmail(officeMock(noSender).office)).toThrow(/item\.from/)
  expect(() => readOpenEmail(officeMock({ ...message, to: [{ emailAddress: '' }] }).office)).toThrow(/item\.to\.0\.emailAddress/)
  // No Internet message id (e.g. not yet delivered): read without one.
  expect(readOpenEmail(officeMock({ ...message, internetMessageId: '' }).office).internetMessageId).toBeUndefined()
})

test('the client token is kept in roaming settings only when the user opts in', async () => {
  const { office, saved } = officeMock(message)
  expect(rememberedToken(office)).toBeUndefined()
  await storeToken(office, 'cct_secret', false)
  expect(saved.has(TOKEN_SETTING)).toBe(false)
  await storeToken(office, 'cct_secret', true)
  expect(rememberedToken(office)).toBe('cct_secret')
  // Opting out later forgets it.
  await storeToken(office, 'cct_secret', false)
  expect(rememberedToken(office)).toBeUndefined()
  const failing = officeMock(message, new Map(), 'failed').office
  await expect(storeToken(failing, 'cct_secret', true)).rejects.toThrow('saving the roaming settings failed: quota exceeded')
})
