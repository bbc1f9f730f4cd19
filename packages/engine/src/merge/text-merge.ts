import * as Y from 'yjs'
import { diffText } from './text-diff.js'

/** A 3-way text merge job: the agreed base and each side's current text. */
export interface TextMergeJob {
  base: string
  crm: string
  mailbox: string
}

/**
 * 3-way text merge through Yjs, materialised on demand and evicted: no Y.Doc outlives the call and
 * none is kept per record. All jobs of a batch share one pair of documents (one `Y.Text` per job),
 * so a batch costs two document creations and four update round trips whatever its size.
 *
 * For each job: the base is inserted by one client; each side's edits (a word-level diff from the
 * base) are applied as concurrent edits by two further clients; the exchanged updates integrate both,
 * and the text is read back. Deterministic and symmetric: the side with the lexicographically
 * smaller text always plays the same client, so swapping the sides gives the same result.
 */
export function mergeTexts(jobs: readonly TextMergeJob[]): string[] {
  const results: string[] = new Array<string>(jobs.length)
  const real: number[] = []
  for (const [index, job] of jobs.entries()) {
    if (job.crm === job.mailbox || job.mailbox === job.base) results[index] = job.crm
    else if (job.crm === job.base) results[index] = job.mailbox
    else real.push(index)
  }
  if (real.length === 0) return results

  const first = new Y.Doc({ gc: true })
  first.clientID = 1
  const second = new Y.Doc({ gc: true })
  second.clientID = 2
  try {
    first.transact(() => {
      for (const index of real) first.getText(`t${index}`).insert(0, jobs[index]!.base)
    })
    Y.applyUpdate(second, Y.encodeStateAsUpdate(first))
    const apply = (doc: Y.Doc, pick: (job: TextMergeJob) => string) =>
      doc.transact(() => {
        for (const index of real) {
          const job = jobs[index]!
          const text = doc.getText(`t${index}`)
          const edits = diffText(job.base, pick(job))
          // Right to left, so earlier base offsets stay valid.
          for (let k = edits.length - 1; k >= 0; k--) {
            const edit = edits[k]!
            if (edit.deleteCount > 0) text.delete(edit.index, edit.deleteCount)
            if (edit.insert.length > 0) text.insert(edit.index, edit.insert)
          }
        }
      })
    const lower = (job: TextMergeJob) => (job.crm < job.mailbox ? job.crm : job.mailbox)
    const upper = (job: TextMergeJob) => (job.crm < job.mailbox ? job.mailbox : job.crm)
    apply(first, lower)
    apply(second, upper)
    Y.applyUpdate(first, Y.encodeStateAsUpdate(second, Y.encodeStateVector(first)))
    for (const index of real) results[index] = first.getText(`t${index}`).toString()
  } finally {
    first.destroy()
    second.destroy()
  }
  return results
}

/** One 3-way text merge (a batch of one). */
export function mergeText(base: string, crm: string, mailbox: string): string {
  return mergeTexts([{ base, crm, mailbox }])[0]!
}
