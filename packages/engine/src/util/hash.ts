/**
 * 64-bit non-cryptographic hash (two independent 32-bit FNV-1a/murmur-mixed lanes), as 16 hex chars.
 * Pure JS so that the store runs in browsers too (no node:crypto). Used for change detection and
 * deterministic ids, where a collision costs a missed touch, not data.
 */
export function stableHash(input: string): string {
  let h1 = 0x811c9dc5
  let h2 = 0x01000193 ^ input.length
  for (let i = 0; i < input.length; i++) {
    const c = input.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 0x01000193)
    h2 = Math.imul(h2 ^ c, 0x5bd1e995)
    h2 ^= h2 >>> 15
  }
  h1 ^= h1 >>> 16
  h1 = Math.imul(h1, 0x85ebca6b)
  h1 ^= h1 >>> 13
  h2 = Math.imul(h2 ^ (h2 >>> 16), 0xc2b2ae35)
  h2 ^= h2 >>> 16
  return (h1 >>> 0).toString(16).padStart(8, '0') + (h2 >>> 0).toString(16).padStart(8, '0')
}
