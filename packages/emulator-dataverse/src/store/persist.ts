import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** Atomic JSON snapshot persistence: write to a temp file, then rename over the target. */
export class SnapshotFile {
  readonly path: string
  private timer: NodeJS.Timeout | null = null
  private writing: Promise<void> = Promise.resolve()
  private dirty = false

  constructor(
    dir: string,
    private readonly produce: () => unknown,
    private readonly debounceMs = 100,
  ) {
    this.path = join(dir, 'dataverse-emulator.json')
  }

  async read(): Promise<unknown | undefined> {
    try {
      return JSON.parse(await readFile(this.path, 'utf8')) as unknown
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new Error(`Cannot read the emulator snapshot ${this.path}: ${(err as Error).message}`, { cause: err })
    }
  }

  schedule(): void {
    this.dirty = true
    if (this.timer) return
    this.timer = setTimeout(() => {
      this.timer = null
      // a failed background write is kept and reported by the next flush() (e.g. on close)
      this.flush().catch((err: unknown) => {
        this.lastError = err
      })
    }, this.debounceMs)
  }

  /** The last background write failure, if any (cleared by a successful flush). */
  lastError: unknown = null

  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = null
    }
    this.writing = this.writing.catch(() => undefined).then(async () => {
      if (!this.dirty) return
      this.dirty = false
      try {
        await mkdir(join(this.path, '..'), { recursive: true })
        const tmp = `${this.path}.${process.pid}.tmp`
        await writeFile(tmp, JSON.stringify(this.produce()))
        await rename(tmp, this.path)
        this.lastError = null
      } catch (err) {
        this.dirty = true // retried by the next flush; close() surfaces the error
        throw err
      }
    })
    await this.writing
  }
}
