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
