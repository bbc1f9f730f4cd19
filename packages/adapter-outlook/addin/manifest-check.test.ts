import { readFileSync } from 'node:fs'
import { expect, test } from 'vitest'
import { fillManifest } from './build.js'
import { assertValidManifest, checkManifest } from './manifest-check.js'

const TEMPLATE = readFileSync(new URL('./manifest.xml', import.meta.url), 'utf8')
const ours = fillManifest(TEMPLATE, 'https://crm-sync.contoso.test')

/** Our manifest with one textual change (the test fails if the change no longer applies). */
function broken(from: string | RegExp, to: string): string {
  const xml = ours.replace(from, to)
  expect(xml).not.toBe(ours)
  return xml
}

test('our manifest passes', () => {
  expect(checkManifest(ours)).toEqual([])
  expect(() => assertValidManifest(ours)).not.toThrow()
  expect(checkManifest(fillManifest(TEMPLATE, 'https://[::1]:8443'))).toEqual([])
})

test.each([
  ['not well-formed', broken('</Hosts>\n  <Requirements>', '<Requirements>'), /not well-formed XML/],
  ['the wrong root', broken('<OfficeApp ', '<AddIn ').replace('</OfficeApp>', '</AddIn>'), /^\/: the root element must be OfficeApp$/],
  ['a TaskPaneApp', broken('xsi:type="MailApp"', 'xsi:type="TaskPaneApp"'), /OfficeApp: xsi:type must be MailApp/],
  ['a missing FormSettings', broken(/<FormSettings>[\s\S]*<\/FormSettings>/, ''), /OfficeApp\/FormSettings: is required/],
  ['elements out of order', broken(/(<Version>1\.0\.0\.0<\/Version>)\n(\s*<ProviderName>Concord<\/ProviderName>)/, '$2\n$1'), /OfficeApp\/Version: is out of order|OfficeApp\/ProviderName: is out of order/],
  ['an Id that is not a GUID', broken(/<Id>[^<]*<\/Id>/, '<Id>concord</Id>'), /OfficeApp\/Id: must be a GUID/],
  ['a bad version', broken('<Version>1.0.0.0</Version>', '<Version>1.0.beta</Version>'), /OfficeApp\/Version: must be/],
  ['an http pane URL', broken('<SourceLocation DefaultValue="https://crm-sync.contoso.test/addin/taskpane.html" />', '<SourceLocation DefaultValue="http://crm-sync.contoso.test/addin/taskpane.html" />'), /SourceLocation: must be an https URL/],
  ['an unknown permission', broken('<Permissions>ReadItem</Permissions>', '<Permissions>Everything</Permissions>'), /OfficeApp\/Permissions: must be one of/],
  ['a pane taller than allowed', broken('<RequestedHeight>450</RequestedHeight>', '<RequestedHeight>900</RequestedHeight>'), /RequestedHeight: must be 32–450/],
  ['a rule without an item type', broken('ItemType="Message" FormType="Read"', 'ItemType="Calendar" FormType="Read"'), /ItemIs needs ItemType Message or Appointment/],
  ['an undefined resid', broken('<Label resid="groupLabel" />', '<Label resid="noSuchLabel" />'), /resid "noSuchLabel" is not defined in Resources\/ShortStrings/],
  ['a resid of the wrong kind', broken('<Description resid="buttonTip" />', '<Description resid="buttonLabel" />'), /resid "buttonLabel" is not defined in Resources\/LongStrings/],
  ['an icon size missing', broken('<bt:Image size="80" resid="icon" />', ''), /needs an Image of size 80/],
  ['a description too long', broken(/<Description DefaultValue="[^"]*" \/>/, `<Description DefaultValue="${'x'.repeat(251)}" />`), /OfficeApp\/Description: DefaultValue is 251 characters; at most 250/],
  ['an unknown element', broken('<DisableEntityHighlighting>', '<Colour>red</Colour>\n  <DisableEntityHighlighting>'), /OfficeApp\/Colour: is not an element of a MailApp manifest/],
])('a manifest with %s fails', (_what, xml, expected) => {
  const problems = checkManifest(xml)
  expect(problems.length).toBeGreaterThan(0)
  expect(problems.map((p) => `${p.path}: ${p.message}`).join('\n')).toMatch(expected)
  expect(() => assertValidManifest(xml)).toThrow(/invalid add-in manifest/)
})
