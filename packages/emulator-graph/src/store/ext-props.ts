/**
 * Single-value extended property ids: `{type} {guid} Name {name}`, `{type} {guid} Id {0x8000}` or
 * `{type} {proptag}`. Type, GUID and the Name/Id keyword are case-insensitive; the name is
 * case-sensitive.
 */
export function normaliseExtId(id: string): string {
  const parts = id.trim().split(/\s+/)
  if (parts.length >= 4) {
    const [type, guid, kw, ...rest] = parts
    const key = (kw ?? '').toLowerCase()
    const value = rest.join(' ')
    return `${(type ?? '').toLowerCase()} ${(guid ?? '').toLowerCase()} ${key} ${key === 'id' ? value.toLowerCase() : value}`
  }
  return parts.join(' ').toLowerCase()
}
