/**
 * JSON with object keys sorted, so that equal values always serialise (and hash) equally.
 * `undefined` members are dropped, as JSON.stringify does. (Hot path: change detection hashes every
 * pulled record, so this is written as plain loops.)
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) {
    let out = '['
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ','
      const v: unknown = value[i]
      out += v === undefined ? 'null' : typeof v === 'string' ? JSON.stringify(v) : canonicalJson(v)
    }
    return out + ']'
  }
  const obj = value as Record<string, unknown>
  const keys = Object.keys(obj)
  if (keys.length > 1) keys.sort()
  let out = '{'
  for (const k of keys) {
    const v = obj[k]
    if (v === undefined) continue
    if (out.length > 1) out += ','
    out += quotedKey(k) + ':' + (typeof v === 'string' ? JSON.stringify(v) : canonicalJson(v))
  }
  return out + '}'
}

/** Member names as JSON strings, memoised: records repeat the same few field names. Bounded. */
const quotedKeys = new Map<string, string>()
const QUOTED_KEYS_MAX = 4096

function quotedKey(key: string): string {
  let quoted = quotedKeys.get(key)
  if (quoted === undefined) {
    quoted = JSON.stringify(key)
    if (quotedKeys.size < QUOTED_KEYS_MAX) quotedKeys.set(key, quoted)
  }
  return quoted
}

/**
 * Deep equality of JSON values (key order ignored; an `undefined` member equals a missing one, as in
 * `canonicalJson`). Compares structurally, without serialising (hot path: merges and checks compare
 * every field they touch).
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  const arrayA = Array.isArray(a)
  if (arrayA !== Array.isArray(b)) return false
  if (arrayA) {
    const x = a as unknown[]
    const y = b as unknown[]
    if (x.length !== y.length) return false
    for (let i = 0; i < x.length; i++) if (!jsonEqual(x[i] === undefined ? null : x[i], y[i] === undefined ? null : y[i])) return false
    return true
  }
  const x = a as Record<string, unknown>
  const y = b as Record<string, unknown>
  let defined = 0
  for (const k in x) {
    if (!Object.prototype.hasOwnProperty.call(x, k) || x[k] === undefined) continue
    defined++
    if (!Object.prototype.hasOwnProperty.call(y, k) || !jsonEqual(x[k], y[k])) return false
  }
  for (const k in y) if (Object.prototype.hasOwnProperty.call(y, k) && y[k] !== undefined) defined--
  return defined === 0
}

/**
 * A deep copy of a JSON value (plain objects, arrays, primitives): much cheaper than `structuredClone`.
 * A frozen value is its own copy: Concord freezes only deeply (`deepFreeze`), so nobody can change it.
 */
export function cloneJson<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value
  if (Array.isArray(value)) return value.map((v: unknown) => cloneJson(v)) as T
  const out: Record<string, unknown> = {}
  for (const k in value) {
    if (!Object.prototype.hasOwnProperty.call(value, k)) continue
    const v = cloneJson((value as Record<string, unknown>)[k])
    // a "__proto__" member (JSON.parse makes it an own property) must stay data: assigning it would set the prototype
    if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true })
    else out[k] = v
  }
  return out as T
}
