import { randomBytes, randomUUID } from 'node:crypto'

/** Graph-looking ids. Rest ids start with `AAMk`, immutable ids with `AAkA`; both are case-sensitive. */
function b64(n: number): string {
  return randomBytes(n).toString('base64url')
}

export function newRestId(): string {
  return `AAMkA${b64(30)}`
}

export function newImmutableId(): string {
  return `AAkAL${b64(30)}`
}

export function newContainerId(): string {
  return `AAMkAC${b64(24)}AAA=`
}

export function newChangeKey(): string {
  return `CQAAAB${b64(12)}`
}

export function newGuid(): string {
  return randomUUID()
}
