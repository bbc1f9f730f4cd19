/**
 * Freezes a JSON value and everything in it, in place, and returns it.
 *
 * Concord freezes only through here, so a frozen object is frozen all the way down: the walk stops at
 * one, and {@link cloneJson} hands one out as its own copy. That is what lets the store, the fakes and
 * the simulator share one field object instead of copying it at every hand-over.
 */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    // members visited in place: `Object.values` would allocate an array per object
    if (Array.isArray(value)) for (const member of value as unknown[]) deepFreeze(member)
    else for (const key in value) if (Object.prototype.hasOwnProperty.call(value, key)) deepFreeze((value as Record<string, unknown>)[key])
  }
  return value
}

/** `record` itself when frozen (nobody can change it, so it may be shared), else a shallow copy for the caller to own. */
export function sharedOrCopy<T extends Partial<Record<string, unknown>>>(record: T): T {
  return Object.isFrozen(record) ? record : { ...record }
}

/**
 * `source` when it is frozen and holds exactly `built`'s members (the same names in the same order, the
 * same values), else `built`: a record made from another one keeps the other's object instead of a copy.
 */
export function sharedIfSame<T extends object>(built: T, source: T | undefined): T {
  if (source === undefined || source === built || !Object.isFrozen(source)) return built
  const names = Object.keys(built)
  const sourceNames = Object.keys(source)
  if (names.length !== sourceNames.length) return built
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!
    if (name !== sourceNames[i] || (built as Record<string, unknown>)[name] !== (source as Record<string, unknown>)[name]) return built
  }
  return source
}
