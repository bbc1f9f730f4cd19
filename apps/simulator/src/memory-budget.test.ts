import { totalmem } from 'node:os'
import { expect, test } from 'vitest'
import { main } from './cli.js'
import { REAL_ENGINE_BYTES_PER_MAILBOX_DAY, needsLargerHeap, planRealEngineRun, storeCacheEntriesPerMailbox } from './memory-budget.js'
import { simulatorHeapLimitMb } from './process-flags.js'

const GIB = 2 ** 30
const machine24 = { heapLimitBytes: 9039 * 2 ** 20, machineBytes: 23.5 * GIB }

test('a real-engine scenario runs in the processes asked for when they fit, in fewer when they do not, and is refused when not even one does', () => {
  const machine = 23.5 * GIB
  expect(planRealEngineRun({ mailboxes: 200, days: 2, processes: 2 }, machine)).toEqual({ processes: 2, heapLimitMb: 9024, heapDemandBytes: 200 * 2 * 0.75 * 2 ** 20 })
  const five = planRealEngineRun({ mailboxes: 5000, days: 2, processes: 2 }, machine)
  expect(five).toMatchObject({ processes: 2, heapLimitMb: 9024 })
  expect(five.note).toBeUndefined()
  // (7,000 and 10,000 mailboxes ran out of heap with 9 GB per process: now one process, with twice the heap)
  const seven = planRealEngineRun({ mailboxes: 7000, days: 2, processes: 2 }, machine)
  expect(seven).toMatchObject({ processes: 1, heapLimitMb: 18048 })
  expect(seven.note).toMatch(/^7000 mailboxes × 2 days \(warm-up included\) with the real engine need ≈ 10\.3 GB of heap per process .*: 2 processes \(--jobs 2\) do not fit in the machine's 23\.5 GB, so the policies run one at a time, in one process with a 17\.6 GB heap \(slower; the same report\)$/)
  expect(planRealEngineRun({ mailboxes: 10_000, days: 2, processes: 2 }, machine)).toMatchObject({ processes: 1, heapLimitMb: 18048 })
  expect(planRealEngineRun({ mailboxes: 4000, days: 2, processes: 4 }, machine)).toMatchObject({ processes: 2, note: expect.stringMatching(/4 processes \(--jobs 4\) do not fit .* so 2 processes run them, with 8\.8 GB of heap each/) })
  expect(() => planRealEngineRun({ mailboxes: 15_000, days: 2, processes: 2 }, machine)).toThrow(/15000 mailboxes × 2 days .* need ≈ 22\.0 GB of heap per process .*, over the 17\.6 GB a process gets alone \(three quarters of the machine's 23\.5 GB\): use fewer mailboxes/)
})

test('a plan needs a larger heap than a process has when its demand takes over 90 % of that heap', () => {
  const plan = planRealEngineRun({ mailboxes: 7000, days: 2, processes: 2 }, 23.5 * GIB)
  expect(needsLargerHeap(plan, 9039 * 2 ** 20)).toBe(true)
  expect(needsLargerHeap(plan, 18_063 * 2 ** 20)).toBe(false)
})

const quiet = (err: { text: string }) => ({ stdout: () => {}, stderr: (t: string) => void (err.text += t), isTty: false })
/** Mailboxes whose demand takes half of this machine: over what each of two processes gets, within what one gets. */
const onlyAlone = Math.floor((0.5 * totalmem()) / (2 * REAL_ENGINE_BYTES_PER_MAILBOX_DAY))

test('the CLI runs a scenario that fits only alone again, in one process with the larger heap, before generating anything', async () => {
  const err = { text: '' }
  const relaunched: Array<{ argv: readonly string[]; heapLimitMb: number }> = []
  const argv = ['--mailboxes', String(onlyAlone), '--no-progress']
  const code = await main(argv, { ...quiet(err), relaunch: async (again, heapLimitMb) => (relaunched.push({ argv: again, heapLimitMb }), 7) })
  expect(code).toBe(7) // (the exit code of the run)
  expect(relaunched).toEqual([{ argv: [...argv, '--jobs', '1'], heapLimitMb: simulatorHeapLimitMb(totalmem(), 1) }])
  expect(err.text).toMatch(new RegExp(`^concord-simulate: ${onlyAlone} mailboxes × 2 days .* so the policies run one at a time, in one process with a .* heap \\(slower; the same report\\)\n$`))
})

test('without a way to start a process, the CLI names the flag such a scenario needs (exit 2)', async () => {
  const err = { text: '' }
  expect(await main(['--mailboxes', String(onlyAlone), '--no-progress'], quiet(err))).toBe(2)
  expect(err.text).toMatch(new RegExp(`needs a process with a heap limit of ${simulatorHeapLimitMb(totalmem(), 1)} MB: run it under node --max-old-space-size=${simulatorHeapLimitMb(totalmem(), 1)} with --jobs 1`))
})

test('the CLI refuses a scenario that does not fit even alone before generating anything (exit 2)', async () => {
  const err = { text: '' }
  const code = await main(['--mailboxes', '1000000', '--no-progress'], { ...quiet(err), relaunch: () => Promise.reject(new Error('must not start a process')) })
  expect(code).toBe(2)
  expect(err.text).toMatch(/1000000 mailboxes × 2 days \(warm-up included\) with the real engine need ≈ .* a process gets alone .* --engine stub/)
})

test('the stores keep every record they wrote while the heap has room, a seventh of them once the scenario takes over 40 % of it', () => {
  expect(storeCacheEntriesPerMailbox({ mailboxes: 200, days: 2 }, machine24.heapLimitBytes)).toBe(4000)
  expect(storeCacheEntriesPerMailbox({ mailboxes: 2000, days: 2 }, machine24.heapLimitBytes)).toBe(4000)
  expect(storeCacheEntriesPerMailbox({ mailboxes: 3000, days: 2 }, machine24.heapLimitBytes)).toBe(150)
  expect(storeCacheEntriesPerMailbox({ mailboxes: 3000, days: 2 }, 4 * machine24.heapLimitBytes)).toBe(4000)
})
