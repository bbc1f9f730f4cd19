/**
 * Offline validation of the add-in's XML manifest (a `MailApp`). Microsoft's own validator
 * (`office-addin-manifest validate`) posts the manifest to an online service, and the MailApp XSD files
 * are not shipped in any package, so this checks the rules of Microsoft's manifest reference that a
 * MailApp must follow: well-formed XML (fast-xml-parser), the OfficeApp namespace and type, the child
 * elements in schema order with the required ones present, value formats (GUID id, version, locale,
 * string lengths, https URLs, permission and rule enumerations, RequestedHeight range), and in
 * `VersionOverrides` that every `resid` names a resource of the right kind and control ids are unique.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser'

export interface ManifestProblem {
  /** Element path, e.g. `OfficeApp/FormSettings/Form[0]/DesktopSettings/RequestedHeight`. */
  path: string
  message: string
}

interface XmlNode {
  name: string
  attrs: Record<string, string>
  children: XmlNode[]
  text: string
}

const NS = {
  app: 'http://schemas.microsoft.com/office/appforoffice/1.1',
  basicTypes: 'http://schemas.microsoft.com/office/officeappbasictypes/1.0',
  mailOverrides: 'http://schemas.microsoft.com/office/mailappversionoverrides',
  xsi: 'http://www.w3.org/2001/XMLSchema-instance',
}

/** The MailApp children of OfficeApp, in schema order, and whether each is required. */
const MAIL_APP_CHILDREN: ReadonlyArray<[string, boolean]> = [
  ['Id', true],
  ['AlternateId', false],
  ['Version', true],
  ['ProviderName', true],
  ['DefaultLocale', true],
  ['DisplayName', true],
  ['Description', true],
  ['IconUrl', false],
  ['HighResolutionIconUrl', false],
  ['SupportUrl', false],
  ['AppDomains', false],
  ['Hosts', false],
  ['Requirements', false],
  ['FormSettings', true],
  ['Permissions', true],
  ['Rule', true],
  ['DisableEntityHighlighting', false],
  ['VersionOverrides', false],
]

const GUID = /^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$/
const VERSION = /^\d{1,5}(\.\d{1,5}){0,3}$/
const LOCALE = /^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$/
const PERMISSIONS = ['Restricted', 'ReadItem', 'ReadWriteItem', 'ReadWriteMailbox']
const RESID = /^.{1,32}$/

function toTree(ordered: unknown[]): XmlNode[] {
  const out: XmlNode[] = []
  for (const entry of ordered as Array<Record<string, unknown>>) {
    const name = Object.keys(entry).find((k) => k !== ':@')
    if (name === undefined || name === '#text' || name === '?xml' || name.startsWith('#')) continue
    const rawAttrs = (entry[':@'] ?? {}) as Record<string, unknown>
    const attrs: Record<string, string> = {}
    for (const [k, v] of Object.entries(rawAttrs)) attrs[k.replace(/^@_/, '')] = String(v)
    const inner = entry[name] as unknown[]
    const text = inner
      .filter((c) => typeof c === 'object' && c !== null && '#text' in (c as object))
      .map((c) => String((c as { '#text': unknown })['#text']))
      .join('')
    out.push({ name, attrs, children: toTree(inner), text: text.trim() })
  }
  return out
}

/** The element's local name (prefix dropped) and whether its prefix is `bt` etc. */
const local = (name: string) => name.split(':').pop()!

/** Validates a filled manifest; an empty list means valid. */
export function checkManifest(xml: string): ManifestProblem[] {
  const problems: ManifestProblem[] = []
  const add = (path: string, message: string) => problems.push({ path, message })
  const wellFormed = XMLValidator.validate(xml)
  if (wellFormed !== true) return [{ path: `line ${wellFormed.err.line}`, message: `not well-formed XML: ${wellFormed.err.msg}` }]
  const parsed = new XMLParser({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '@_', parseTagValue: false, parseAttributeValue: false, trimValues: true }).parse(xml) as unknown[]
  const roots = toTree(parsed)
  const root = roots[0]
  if (roots.length !== 1 || !root || root.name !== 'OfficeApp') return [{ path: '/', message: 'the root element must be OfficeApp' }]
  if (root.attrs.xmlns !== NS.app) add('OfficeApp', `xmlns must be ${NS.app}`)
  if (root.attrs['xmlns:xsi'] !== NS.xsi) add('OfficeApp', `xmlns:xsi must be ${NS.xsi}`)
  if (root.attrs['xsi:type'] !== 'MailApp') add('OfficeApp', `xsi:type must be MailApp (an Outlook add-in), not ${JSON.stringify(root.attrs['xsi:type'])}`)

  // Children: known, in schema order, each at most once, required ones present.
  const order = new Map(MAIL_APP_CHILDREN.map(([n], i) => [n, i]))
  let last = -1
  const seen = new Map<string, XmlNode>()
  for (const child of root.children) {
    const at = order.get(child.name)
    if (at === undefined) {
      add(`OfficeApp/${child.name}`, 'is not an element of a MailApp manifest')
      continue
    }
    if (seen.has(child.name)) add(`OfficeApp/${child.name}`, 'appears more than once')
    else if (at < last) add(`OfficeApp/${child.name}`, `is out of order: it must come before ${MAIL_APP_CHILDREN[last]![0]}`)
    seen.set(child.name, child)
    last = Math.max(last, at)
  }
  for (const [name, required] of MAIL_APP_CHILDREN) if (required && !seen.has(name)) add(`OfficeApp/${name}`, 'is required in a MailApp manifest')

  const value = (name: string) => seen.get(name)?.text
  const defaultValue = (name: string) => seen.get(name)?.attrs.DefaultValue
  const id = value('Id')
  if (id !== undefined && !GUID.test(id)) add('OfficeApp/Id', `must be a GUID, not ${JSON.stringify(id)}`)
  const version = value('Version')
  if (version !== undefined && !VERSION.test(version)) add('OfficeApp/Version', `must be n[.n[.n[.n]]], not ${JSON.stringify(version)}`)
  const provider = value('ProviderName')
  if (provider !== undefined && (provider.length === 0 || provider.length > 125)) add('OfficeApp/ProviderName', 'must be 1–125 characters')
  const locale = value('DefaultLocale')
  if (locale !== undefined && !LOCALE.test(locale)) add('OfficeApp/DefaultLocale', `must be a culture name such as en-US, not ${JSON.stringify(locale)}`)
  for (const [name, max] of [['DisplayName', 125], ['Description', 250]] as const) {
    if (!seen.has(name)) continue
    const v = defaultValue(name)
    if (v === undefined || v.length === 0) add(`OfficeApp/${name}`, 'needs a DefaultValue')
    else if (v.length > max) add(`OfficeApp/${name}`, `DefaultValue is ${v.length} characters; at most ${max}`)
  }
  for (const name of ['IconUrl', 'HighResolutionIconUrl', 'SupportUrl']) if (seen.has(name)) checkUrl(defaultValue(name), `OfficeApp/${name}`, add)
  for (const [i, d] of (seen.get('AppDomains')?.children ?? []).entries()) {
    if (d.name !== 'AppDomain') add(`OfficeApp/AppDomains/${d.name}`, 'only AppDomain elements are allowed')
    else checkUrl(d.text, `OfficeApp/AppDomains/AppDomain[${i}]`, add)
  }
  const hosts = seen.get('Hosts')
  if (hosts && !hosts.children.some((h) => h.name === 'Host' && h.attrs.Name === 'Mailbox')) add('OfficeApp/Hosts', 'a MailApp must declare <Host Name="Mailbox" />')
  const sets = seen.get('Requirements')?.children.find((c) => c.name === 'Sets')
  for (const [i, set] of (sets?.children ?? []).entries()) {
    if (set.name !== 'Set' || !set.attrs.Name) add(`OfficeApp/Requirements/Sets/${set.name}[${i}]`, 'must be a Set with a Name')
    else if (set.attrs.MinVersion !== undefined && !/^\d+\.\d+$/.test(set.attrs.MinVersion)) add(`OfficeApp/Requirements/Sets/Set[${i}]`, `MinVersion must be n.n, not ${JSON.stringify(set.attrs.MinVersion)}`)
  }
  checkForms(seen.get('FormSettings'), add)
  const permissions = value('Permissions')
  if (permissions !== undefined && !PERMISSIONS.includes(permissions)) add('OfficeApp/Permissions', `must be one of ${PERMISSIONS.join(', ')}, not ${JSON.stringify(permissions)}`)
  const rule = seen.get('Rule')
  if (rule) checkRule(rule, 'OfficeApp/Rule', add)
  const highlighting = value('DisableEntityHighlighting')
  if (highlighting !== undefined && !['true', 'false'].includes(highlighting)) add('OfficeApp/DisableEntityHighlighting', 'must be true or false')
  const overrides = seen.get('VersionOverrides')
  if (overrides) checkOverrides(overrides, add)
  return problems
}

/** Throws listing every problem (for build steps and tests). */
export function assertValidManifest(xml: string): void {
  const problems = checkManifest(xml)
  if (problems.length > 0) throw new Error(`invalid add-in manifest:\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`)
}

function checkUrl(url: string | undefined, path: string, add: (path: string, message: string) => void): void {
  if (url === undefined || url.length === 0) return add(path, 'needs a URL')
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return add(path, `is not a URL: ${JSON.stringify(url)}`)
  }
  if (parsed.protocol !== 'https:') add(path, `must be an https URL (Office loads add-ins over HTTPS only), not ${JSON.stringify(url)}`)
  if (url.length > 2048) add(path, 'is longer than 2048 characters')
}

function checkForms(formSettings: XmlNode | undefined, add: (path: string, message: string) => void): void {
  if (!formSettings) return
  const forms = formSettings.children.filter((c) => c.name === 'Form')
  if (forms.length === 0) add('OfficeApp/FormSettings', 'needs at least one Form')
  for (const [i, form] of forms.entries()) {
    const path = `OfficeApp/FormSettings/Form[${i}]`
    const type = form.attrs['xsi:type']
    if (type !== 'ItemRead' && type !== 'ItemEdit') add(path, `xsi:type must be ItemRead or ItemEdit, not ${JSON.stringify(type)}`)
    const desktop = form.children.find((c) => c.name === 'DesktopSettings')
    if (!desktop) {
      add(`${path}/DesktopSettings`, 'is required')
      continue
    }
    const source = desktop.children.find((c) => c.name === 'SourceLocation')
    if (!source) add(`${path}/DesktopSettings/SourceLocation`, 'is required')
    else checkUrl(source.attrs.DefaultValue, `${path}/DesktopSettings/SourceLocation`, add)
    const height = desktop.children.find((c) => c.name === 'RequestedHeight')
    if (type === 'ItemRead') {
      if (!height) add(`${path}/DesktopSettings/RequestedHeight`, 'is required for an ItemRead form')
      else if (!/^\d+$/.test(height.text) || Number(height.text) < 32 || Number(height.text) > 450) add(`${path}/DesktopSettings/RequestedHeight`, `must be 32–450, not ${JSON.stringify(height.text)}`)
    }
  }
}

function checkRule(rule: XmlNode, path: string, add: (path: string, message: string) => void): void {
  const type = rule.attrs['xsi:type']
  if (type === 'RuleCollection') {
    if (rule.attrs.Mode !== 'And' && rule.attrs.Mode !== 'Or') add(path, `a RuleCollection needs Mode="And" or Mode="Or", not ${JSON.stringify(rule.attrs.Mode)}`)
    const rules = rule.children.filter((c) => c.name === 'Rule')
    if (rules.length === 0) add(path, 'a RuleCollection needs at least one Rule')
    for (const [i, r] of rules.entries()) checkRule(r, `${path}/Rule[${i}]`, add)
    return
  }
  if (type === 'ItemIs') {
    if (rule.attrs.ItemType !== 'Message' && rule.attrs.ItemType !== 'Appointment') add(path, `ItemIs needs ItemType Message or Appointment, not ${JSON.stringify(rule.attrs.ItemType)}`)
    if (rule.attrs.FormType !== undefined && !['Read', 'Edit', 'ReadOrEdit'].includes(rule.attrs.FormType)) add(path, `FormType must be Read, Edit or ReadOrEdit, not ${JSON.stringify(rule.attrs.FormType)}`)
    return
  }
  if (!['ItemHasAttachment', 'ItemHasKnownEntity', 'ItemHasRegularExpressionMatch'].includes(type ?? '')) add(path, `unknown rule xsi:type ${JSON.stringify(type)}`)
}

/** Which resource collection each resid-bearing element refers to. */
const RESID_KIND: Record<string, 'Images' | 'Urls' | 'ShortStrings' | 'LongStrings'> = {
  Image: 'Images',
  SourceLocation: 'Urls',
  FunctionFile: 'Urls',
  Label: 'ShortStrings',
  Title: 'ShortStrings',
  Description: 'LongStrings',
}

function checkOverrides(overrides: XmlNode, add: (path: string, message: string) => void): void {
  const base = 'OfficeApp/VersionOverrides'
  if (overrides.attrs.xmlns !== NS.mailOverrides && overrides.attrs.xmlns !== `${NS.mailOverrides}/1.1`) add(base, `xmlns must be ${NS.mailOverrides} (or /1.1)`)
  if (overrides.attrs['xsi:type'] !== 'VersionOverridesV1_0' && overrides.attrs['xsi:type'] !== 'VersionOverridesV1_1') add(base, 'xsi:type must be VersionOverridesV1_0 or VersionOverridesV1_1')
  const resources = overrides.children.find((c) => c.name === 'Resources')
  const defined: Record<string, Set<string>> = { Images: new Set(), Urls: new Set(), ShortStrings: new Set(), LongStrings: new Set() }
  for (const group of resources?.children ?? []) {
    const kind = local(group.name)
    if (!(kind in defined)) {
      add(`${base}/Resources/${group.name}`, 'is not a resource collection (Images, Urls, ShortStrings, LongStrings)')
      continue
    }
    for (const item of group.children) {
      const id = item.attrs.id
      const path = `${base}/Resources/${group.name}/${item.name}`
      if (!id || !RESID.test(id)) add(path, 'needs an id of 1–32 characters')
      else if (defined[kind]!.has(id)) add(path, `id ${JSON.stringify(id)} is defined twice`)
      else defined[kind]!.add(id)
      const v = item.attrs.DefaultValue
      if (kind === 'Images' || kind === 'Urls') checkUrl(v, `${path}[${id ?? '?'}]`, add)
      else if (!v) add(`${path}[${id ?? '?'}]`, 'needs a DefaultValue')
      else if (kind === 'ShortStrings' && v.length > 125) add(`${path}[${id}]`, 'is longer than 125 characters')
      else if (kind === 'LongStrings' && v.length > 250) add(`${path}[${id}]`, 'is longer than 250 characters')
    }
  }
  const controlIds = new Set<string>()
  const walk = (node: XmlNode, path: string) => {
    const name = local(node.name)
    if (node.attrs.resid !== undefined) {
      const kind = RESID_KIND[name]
      if (!kind) add(path, `resid on an unexpected element ${node.name}`)
      else if (!defined[kind]!.has(node.attrs.resid)) add(path, `resid ${JSON.stringify(node.attrs.resid)} is not defined in Resources/${kind}`)
    }
    if ((name === 'Control' || name === 'Group') && node.attrs.id !== undefined) {
      if (controlIds.has(node.attrs.id)) add(path, `id ${JSON.stringify(node.attrs.id)} is used twice`)
      controlIds.add(node.attrs.id)
    }
    if (name === 'Icon') {
      const sizes = node.children.filter((c) => local(c.name) === 'Image').map((c) => c.attrs.size)
      for (const size of ['16', '32', '80']) if (!sizes.includes(size)) add(path, `needs an Image of size ${size}`)
    }
    for (const [i, child] of node.children.entries()) walk(child, `${path}/${child.name}[${i}]`)
  }
  for (const child of overrides.children) if (child.name !== 'Resources') walk(child, `${base}/${child.name}`)
  if (!overrides.children.some((c) => c.name === 'Hosts')) add(`${base}/Hosts`, 'is required')
}
