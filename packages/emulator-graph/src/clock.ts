/** A clock with an adjustable offset, so tests can move time forward without sleeping. */
export class Clock {
  private offsetMs = 0
  now(): number {
    return Date.now() + this.offsetMs
  }
  advance(ms: number): void {
    this.offsetMs += ms
  }
  iso(): string {
    return new Date(this.now()).toISOString()
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
