import { cp, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { asCursor, asNativeId, asReplicaId, asVersion } from '../ids.js'
import { openLevelStore, settleLevelStore } from './index.js'

const root = await mkdtemp(join(tmpdir(), 'concord-level-'))
afterAll(() => rm(root, { recursive: true, force: true }))

/** Bytes in the directory's write-ahead log files (`*.log`). */
async function logBytes(dir: string): Promise<number> {
  let bytes = 0
  for (const name of await readdir(dir)) if (name.endsWith('.log') && name !== 'LOG') bytes += (await stat(join(dir, name))).size
  return bytes
}

test('settleLevelStore moves a closed store out of its write-ahead log; copies then read what it held', async () => {
  const dir = join(root, 'store')
  const crm = asReplicaId('crm')
  const { store } = await openLevelStore(dir, { groupCommit: true }, { writeBufferSize: 64 * 1024 * 1024 })
  const changes = Array.from({ length: 200 }, (_, i) => ({ type: 'upsert' as const, nativeId: asNativeId(`n${i}`), kind: 'contact' as const, version: asVersion('1'), fields: { givenName: `P${i}` } }))
  await store.applyPulledPage(crm, { changes, nextCursor: asCursor('c1'), hasMore: false })
  const caches = await store.closeKeepingCaches()
  expect(await logBytes(dir)).toBeGreaterThan(0) // everything is still in the log (the write buffer was never full)

  await settleLevelStore(dir, { writeBufferSize: 64 * 1024 * 1024 })
  expect(await logBytes(dir)).toBe(0)

  const copyDir = join(root, 'copy')
  await cp(dir, copyDir, { recursive: true })
  for (const resumeCaches of [caches, undefined]) {
    const { store: copy } = await openLevelStore(copyDir, { groupCommit: true, resumeCaches })
    expect(await copy.headSeq(crm)).toBe(200)
    expect(await copy.getCursor(crm)).toBe('c1')
    expect((await copy.getSnapshot(crm, asNativeId('n199')))?.version).toBe('1')
    expect((await copy.readLog(crm, 0)).map((e) => e.nativeId)).toHaveLength(200)
    await copy.close()
  }
})
