import { canonicalJson } from '../util/canonical-json.js'
import type { FieldDecision, MergeDecision } from '../sync/merge-strategy.js'

/** The explain record of one field, or undefined when the field was not decided (unchanged). */
export function explainField(decision: MergeDecision, field: string): FieldDecision | undefined {
  return decision.fields.find((f) => f.field === field)
}

const show = (value: unknown): string => (value === undefined ? '(unknown)' : canonicalJson(value))

/** One line per field, e.g. `subject: conflict-crm-wins → crm [both, crm-wins, read+update] base=… crm=…@v2 mailbox=…@v7 ⇒ …: both changed: crm-wins`. */
export function renderFieldDecision(fd: FieldDecision): string {
  const access = fd.access ? `${fd.access.read ? 'read' : 'no-read'}+${fd.access.update ? 'update' : 'no-update'}` : 'read+update'
  const at = (version: string | undefined) => (version === undefined ? '' : `@${version}`)
  const clocks = fd.clocks ? ` clocks crm=${fd.clocks.crm ?? '-'} mailbox=${fd.clocks.mailbox ?? '-'}` : ''
  return (
    `${fd.field}: ${fd.outcome} → ${fd.winner ?? '?'} [${fd.direction ?? 'both'}, ${fd.policy ?? 'crm-wins'}, ${access}]` +
    ` base=${show(fd.base)}${fd.baseVersion === undefined ? '' : `#${fd.baseVersion}`} crm=${show(fd.crm)}${at(fd.versions?.crm)} mailbox=${show(fd.mailbox)}${at(fd.versions?.mailbox)}` +
    ` ⇒ ${show(fd.value)}${clocks}: ${fd.rule}`
  )
}

/** A human-readable explanation of a whole decision (pure). */
export function renderExplain(decision: MergeDecision): string {
  const lines: string[] = []
  for (const note of decision.notes ?? []) lines.push(`note: ${note}`)
  for (const [side, write] of Object.entries(decision.writes)) {
    if (!write) continue
    lines.push(write.type === 'delete' ? `write ${side}: delete (${write.provenance})` : `write ${side}: ${write.type} ${Object.keys(write.fields).sort().join(', ')}`)
  }
  if (decision.forget) lines.push('forget: both copies are gone or unlinked')
  for (const fd of decision.fields) lines.push(renderFieldDecision(fd))
  for (const conflict of decision.conflicts ?? []) lines.push(`conflict kept: ${conflict.field} crm=${show(conflict.crm)} mailbox=${show(conflict.mailbox)} base=${show(conflict.base)}`)
  return lines.join('\n')
}

/** The explain record as canonical JSON (stable key order; suitable for an explain log). */
export function serializeExplain(decision: MergeDecision): string {
  return canonicalJson({ notes: decision.notes ?? [], writes: decision.writes, forget: decision.forget, agreedNow: decision.agreedNow, fields: decision.fields, conflicts: decision.conflicts ?? [], fieldClocks: decision.fieldClocks ?? {} })
}
