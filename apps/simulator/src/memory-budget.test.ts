import { expect, test } from 'vitest'
import { main } from './cli.js'
import { checkRealEngineMemory, storeCacheEntriesPerMailbox } from './memory-budget.js'

const GIB = 2 ** 30
const machine24 = { heapLimitBytes: 9039 * 2 ** 20, machineBytes: 23.5 * GIB }

test('a real-engine scenario that fits passes; one over a process’s heap or the machine is refused, naming the figures', () => {
  expect(() => checkRealEngineMemory({ mailboxes: 200, days: 2, processes: 2 }, machine24)).not.toThrow()
  expect(() => checkRealEngineMemory({ mailboxes: 5000, days: 2, processes: 2 }, machine24)).not.toThrow()
  // (7,000 and 10,000 mailboxes ran out of heap with 9 GB per process)
  expect(() => checkRealEngineMemory({ mailboxes: 7000, days: 2, processes: 2 }, machine24)).toThrow(/7000 mailboxes × 2 days .* need ≈ 10\.3 GB of heap per process .* over a process's heap limit of 8\.8 GB/)
  expect(() => checkRealEngineMemory({ mailboxes: 4000, days: 2, processes: 4 }, machine24)).toThrow(/23\.4 GB for 4 processes \(--jobs\), over the machine's 23\.5 GB/)
})

test('the CLI refuses it before generating anything (exit 2)', async () => {
  let err = ''
  const code = await main(['--mailboxes', '1000000', '--no-progress'], { stdout: () => {}, stderr: (t) => void (err += t), isTty: false })
  expect(code).toBe(2)
  expect(err).toMatch(/1000000 mailboxes × 2 days \(warm-up included\) with the real engine need ≈ .* --engine stub/)
})

test('the stores keep every record they wrote while the heap has room, a seventh of them once the scenario takes over 40 % of it', () => {
  expect(storeCacheEntriesPerMailbox({ mailboxes: 200, days: 2 }, machine24.heapLimitBytes)).toBe(4000)
  expect(storeCacheEntriesPerMailbox({ mailboxes: 2000, days: 2 }, machine24.heapLimitBytes)).toBe(4000)
  expect(storeCacheEntriesPerMailbox({ mailboxes: 3000, days: 2 }, machine24.heapLimitBytes)).toBe(150)
  expect(storeCacheEntriesPerMailbox({ mailboxes: 3000, days: 2 }, 4 * machine24.heapLimitBytes)).toBe(4000)
})
