import { open, stat } from 'node:fs/promises'
import { SimulatorError } from './errors.js'
import { importMailbox } from './mail-import.js'
import { readTrace } from './trace.js'
import type { Workload } from './workload.js'

/** Loads `--trace`: a JSONL trace, an mbox file (first line starts with "From ") or a Maildir folder. */
export async function loadWorkload(path: string): Promise<{ workload: Workload; note?: string }> {
  let info
  try {
    info = await stat(path)
  } catch (error) {
    throw new SimulatorError('Usage', `--trace ${JSON.stringify(path)}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (error as Error).message}`)
  }
  if (info.isDirectory()) {
    const imported = await importMailbox(path)
    return { workload: imported.workload, note: `imported ${imported.imported} messages from Maildir ${path}${imported.skipped.length ? `, skipped ${imported.skipped.length} (first: ${imported.skipped[0]!.where}: ${imported.skipped[0]!.reason})` : ''}` }
  }
  const handle = await open(path, 'r')
  const head = Buffer.alloc(5)
  try {
    await handle.read(head, 0, 5, 0)
  } finally {
    await handle.close()
  }
  if (head.toString('latin1') === 'From ') {
    const imported = await importMailbox(path)
    return { workload: imported.workload, note: `imported ${imported.imported} messages from mbox ${path}${imported.skipped.length ? `, skipped ${imported.skipped.length} (first: ${imported.skipped[0]!.where}: ${imported.skipped[0]!.reason})` : ''}` }
  }
  return { workload: await readTrace(path) }
}
