/** JSON snapshot persistence for `--data DIR`: written atomically (temp file + rename), debounced. */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import type { Core } from './core.js'
import { EmulatorError } from './errors.js'
import type { SyncStateRecord } from './delta.js'
import type { Subscription } from './subscriptions.js'

const SNAPSHOT = 'graph-emulator.json'

const snapshotSchema = z.object({
  version: z.literal(1),
  secret: z.string().min(16),
  tenant: z.string(),
  mailboxes: z.array(z.unknown()),
  syncStates: z.array(z.tuple([z.string(), z.object({ highest: z.number(), kept: z.array(z.number()) })])),
  subscriptions: z.array(z.unknown()),
})

export type Snapshot = z.infer<typeof snapshotSchema>

export async function loadSnapshot(dir: string): Promise<Snapshot | undefined> {
  let text: string
  try {
    text = await readFile(join(dir, SNAPSHOT), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new EmulatorError('persistence-failed', `cannot read ${join(dir, SNAPSHOT)}`, { cause: err })
  }
  try {
    return snapshotSchema.parse(JSON.parse(text))
  } catch (err) {
    throw new EmulatorError('persistence-failed', `snapshot ${join(dir, SNAPSHOT)} is not valid: ${(err as Error).message}`, { cause: err })
  }
}

export function applySnapshot(core: Core, snap: Snapshot): void {
  core.store.restore(snap.mailboxes)
  for (const [sid, rec] of snap.syncStates) core.syncStates.states.set(sid, rec as SyncStateRecord)
  core.subs.restore(snap.subscriptions as Subscription[])
}

export class Persister {
  private timer: NodeJS.Timeout | undefined
  private lastVersion = -1
  private writing: Promise<void> = Promise.resolve()
  private readonly interval: NodeJS.Timeout

  constructor(
    private readonly core: Core,
    private readonly dir: string,
    intervalMs = 200,
  ) {
    this.interval = setInterval(() => void this.saveIfChanged(), intervalMs)
    this.interval.unref()
  }

  private version(): number {
    let syncGenerations = 0
    for (const s of this.core.syncStates.states.values()) syncGenerations += s.highest
    return this.core.store.version * 1_000_003 + this.core.subs.version * 7919 + syncGenerations
  }

  saveIfChanged(): Promise<void> {
    const v = this.version()
    if (v === this.lastVersion) return this.writing
    this.lastVersion = v
    this.writing = this.writing.then(() => this.write())
    return this.writing
  }

  private async write(): Promise<void> {
    const snap: Snapshot = {
      version: 1,
      secret: this.core.secret,
      tenant: this.core.tenant,
      mailboxes: this.core.store.snapshot() as unknown[],
      syncStates: [...this.core.syncStates.states],
      subscriptions: [...this.core.subs.subs.values()],
    }
    await mkdir(this.dir, { recursive: true })
    const target = join(this.dir, SNAPSHOT)
    const tmp = `${target}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify(snap))
    await rename(tmp, target)
  }

  async close(): Promise<void> {
    clearInterval(this.interval)
    if (this.timer) clearTimeout(this.timer)
    await this.saveIfChanged()
  }
}
