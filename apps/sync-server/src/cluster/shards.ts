/**
 * Mailboxes → shards → instances. A mailbox's shard is a stable hash of its id; a shard's owner among
 * the live instances is chosen by rendezvous (highest random weight) hashing with a load bound, so when
 * an instance joins or leaves few shards move, and every instance computes the same assignment from the
 * same member list without talking to the others.
 */
import { createHash } from 'node:crypto'

function hash64(text: string): bigint {
  return createHash('sha256').update(text).digest().readBigUInt64BE(0)
}

export function shardOf(mailboxId: string, shards: number): number {
  return Number(hash64(`mailbox:${mailboxId}`) % BigInt(shards))
}

export function shardKey(shard: number): string {
  return `shard-${shard}`
}

/**
 * The whole assignment, balanced: shards in order each go to their highest-weight member that has fewer
 * than ⌈shards / members⌉ already (rendezvous hashing with bounded load). Deterministic for a member
 * list, so every instance computes the same map; a join or leave still moves few shards.
 */
export function assignShards(members: readonly string[], shards: number): Map<number, string> {
  const out = new Map<number, string>()
  if (members.length === 0) return out
  const cap = Math.ceil(shards / members.length)
  const load = new Map<string, number>()
  for (let s = 0; s < shards; s++) {
    const ranked = [...members].sort((a, b) => {
      const wa = hash64(`${shardKey(s)}@${a}`)
      const wb = hash64(`${shardKey(s)}@${b}`)
      return wa === wb ? (a < b ? -1 : 1) : wa > wb ? -1 : 1
    })
    const owner = ranked.find((m) => (load.get(m) ?? 0) < cap)!
    load.set(owner, (load.get(owner) ?? 0) + 1)
    out.set(s, owner)
  }
  return out
}

/** The shards `member` should own given the live members. */
export function shardsFor(member: string, members: readonly string[], shards: number): number[] {
  return [...assignShards(members, shards)].filter(([, m]) => m === member).map(([s]) => s)
}
