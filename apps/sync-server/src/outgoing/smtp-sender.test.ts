import { expect, test } from 'vitest'
import { htmlToText } from './smtp-sender.js'

test('the CRM HTML body becomes the text of the SMTP message', () => {
  expect(htmlToText('<p>Dear Carol,</p><p>the quote is attached.<br>Price: 10 &lt; 12 &amp; more&#33;</p><style>p{}</style>')).toBe('Dear Carol,\nthe quote is attached.\nPrice: 10 < 12 & more!')
  expect(htmlToText('plain text &unknown; stays')).toBe('plain text &unknown; stays')
})
