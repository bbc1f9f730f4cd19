import { z } from 'zod'
import type { DeleteProvenance } from '../contract/replica-adapter.js'
import { ValidationError } from '../errors.js'

export const DeletionGuardThresholdSchema = z.strictObject({
  /** Hold when the deletes exceed this share of the replica's items… */
  share: z.number().min(0).max(1),
  /** …and there are at least this many of them. */
  min: z.number().int().min(0),
})
export type DeletionGuardThreshold = z.infer<typeof DeletionGuardThresholdSchema>

export const DEFAULT_DELETION_THRESHOLD: DeletionGuardThreshold = { share: 0.2, min: 50 }

export interface DeletionGuardInput {
  /** Live items the target replica holds for this pair before the cycle. */
  replicaItemCount: number
  /** The planned deletes (a count, or the deletes themselves for a per-provenance breakdown). */
  deletes: number | ReadonlyArray<{ provenance: DeleteProvenance }>
  threshold?: DeletionGuardThreshold | undefined
}

export interface DeletionGuardResult {
  action: 'hold' | 'allow'
  deletes: number
  replicaItemCount: number
  /** deletes / replicaItemCount (1 when the replica is empty and something is deleted). */
  share: number
  byProvenance: Partial<Record<DeleteProvenance, number>>
  reason: string
}

/**
 * Mass-deletion guard (pure): a cycle that would delete at least `min` items **and** more than
 * `share` of the replica is held for confirmation (the loop quarantines it); anything smaller is
 * allowed. Every provenance counts, a filter change that empties a mailbox included.
 */
export function evaluateDeletionGuard(input: DeletionGuardInput): DeletionGuardResult {
  const threshold = DeletionGuardThresholdSchema.safeParse(input.threshold ?? DEFAULT_DELETION_THRESHOLD)
  if (!threshold.success) throw ValidationError.fromZod('deletion guard threshold', threshold.error)
  const count = z.number().int().min(0).safeParse(input.replicaItemCount)
  if (!count.success) throw ValidationError.fromZod('deletion guard replicaItemCount', count.error)
  const { share, min } = threshold.data
  const byProvenance: Partial<Record<DeleteProvenance, number>> = {}
  let deletes: number
  if (typeof input.deletes === 'number') deletes = input.deletes
  else {
    deletes = input.deletes.length
    for (const d of input.deletes) byProvenance[d.provenance] = (byProvenance[d.provenance] ?? 0) + 1
  }
  const replicaItemCount = count.data
  const actualShare = replicaItemCount === 0 ? (deletes > 0 ? 1 : 0) : deletes / replicaItemCount
  const hold = deletes >= min && actualShare > share
  const reason = hold
    ? `${deletes} deletes are ${(actualShare * 100).toFixed(1)}% of ${replicaItemCount} items (limit ${(share * 100).toFixed(1)}% once at least ${min}): held for confirmation`
    : deletes < min
      ? `${deletes} deletes are fewer than ${min}: allowed`
      : `${deletes} deletes are ${(actualShare * 100).toFixed(1)}% of ${replicaItemCount} items, within ${(share * 100).toFixed(1)}%: allowed`
  return { action: hold ? 'hold' : 'allow', deletes, replicaItemCount, share: actualShare, byProvenance, reason }
}
