import { readFile } from 'node:fs/promises'
import { ItemKindSchema, parseFields, ValidationError } from '@concord/engine'
import { z } from 'zod'
import { TraceError } from './errors.js'
import { type Workload, type WorkloadEvent, DAY, sortEvents } from './workload.js'

/** One line of a JSONL trace (see README "Trace format"). */
export const TraceLineSchema = z.strictObject({
  t: z.number().finite().min(0).describe('ms since the start of the simulation'),
  mailbox: z.string().min(1).max(200).regex(/^[A-Za-z0-9@._+-]+$/, 'mailbox ids use letters, digits and @._+-'),
  side: z.enum(['mailbox', 'crm']),
  op: z.enum(['create', 'update', 'delete', 'move']),
  kind: ItemKindSchema,
  item: z.string().min(1).max(500),
  fields: z.record(z.string(), z.unknown()).optional(),
  initial: z.boolean().optional(),
})

/** Serialises events as JSONL (one `TraceLineSchema` object per line). */
export function formatTrace(events: readonly WorkloadEvent[]): string {
  return events.map((e) => JSON.stringify({ t: Math.round(e.t), mailbox: e.mailbox, side: e.side, op: e.op, kind: e.kind, item: e.item, ...(e.fields ? { fields: e.fields } : {}), ...(e.initial ? { initial: true } : {}) })).join('\n') + '\n'
}

/**
 * Parses a JSONL trace. Blank lines and lines starting with `#` are skipped. Every problem is a
 * `TraceError` naming the file and the 1-based line number.
 */
export function parseTrace(text: string, file = 'trace'): Workload {
  const events: WorkloadEvent[] = []
  const items = new Map<string, { kind: string; deleted: boolean; origin: string }>()
  const order: string[] = []
  const seen = new Set<string>()
  let lastT = 0
  let sawNonInitial = false
  const lines = text.split(/\r?\n/)
  for (const [index, raw] of lines.entries()) {
    const line = index + 1
    const trimmed = raw.trim()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    let json: unknown
    try {
      json = JSON.parse(trimmed)
    } catch (error) {
      throw new TraceError(file, line, `not valid JSON (${(error as Error).message})`)
    }
    const parsed = TraceLineSchema.safeParse(json)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!
      throw new TraceError(file, line, `${issue.path.join('.') || '(line)'}: ${issue.message}`)
    }
    const e = parsed.data
    if (e.op === 'create' || e.op === 'update') {
      if (!e.fields || Object.keys(e.fields).length === 0) throw new TraceError(file, line, `${e.op} needs non-empty "fields"`)
      try {
        parseFields(e.kind, e.fields)
      } catch (error) {
        if (error instanceof ValidationError) throw new TraceError(file, line, `fields: ${error.message}`)
        throw error
      }
    } else if (e.fields !== undefined) throw new TraceError(file, line, `${e.op} takes no "fields"`)
    if (e.op === 'move' && e.side !== 'mailbox') throw new TraceError(file, line, 'move is a mailbox-side operation (Graph move gives a new id)')
    if (e.initial) {
      if (e.op !== 'create') throw new TraceError(file, line, 'initial events must be creates')
      if (sawNonInitial) throw new TraceError(file, line, 'initial events must come before all other events')
    } else {
      sawNonInitial = true
      if (e.t < lastT) throw new TraceError(file, line, `t ${e.t} goes back in time (previous event at ${lastT}); sort the trace by t`)
      lastT = e.t
    }
    const key = `${e.mailbox}\u0000${e.item}`
    const known = items.get(key)
    if (e.op === 'create') {
      if (known) throw new TraceError(file, line, `item "${e.item}" of mailbox "${e.mailbox}" is created twice`)
      items.set(key, { kind: e.kind, deleted: false, origin: e.side })
    } else {
      if (!known) throw new TraceError(file, line, `${e.op} of item "${e.item}" of mailbox "${e.mailbox}" before its create`)
      if (known.deleted) throw new TraceError(file, line, `${e.op} of item "${e.item}" after its delete`)
      if (known.kind !== e.kind) throw new TraceError(file, line, `item "${e.item}" is a ${known.kind}, not a ${e.kind}`)
      if (e.op === 'delete') known.deleted = true
    }
    if (!seen.has(e.mailbox)) {
      seen.add(e.mailbox)
      order.push(e.mailbox)
    }
    events.push({ t: e.initial ? 0 : e.t, mailbox: e.mailbox, side: e.side, op: e.op, kind: e.kind, item: e.item, fields: e.fields, initial: e.initial })
  }
  if (events.length === 0) throw new TraceError(file, lines.length, 'the trace has no events')
  sortEvents(events)
  return { mailboxes: order, events, durationMs: Math.max(DAY, Math.ceil((lastT + 1) / DAY) * DAY) }
}

/** Reads and parses a JSONL trace file. */
export async function readTrace(path: string): Promise<Workload> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new TraceError(path, 0, `cannot read the trace (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  return parseTrace(text, path)
}
