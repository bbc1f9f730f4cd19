/** Which client of a user is the designated sync client, and its fencing token. */
export interface Designation {
  clientId: string
  /** Strictly increasing per user: every designation gets a larger token than all before it. */
  fencingToken: number
}

/**
 * Where the server keeps each user's designated sync client. Implementations must make
 * `designate` and `claimIfUnassigned` atomic per user (a LevelDB batch under a lock, a Redis
 * script…), so two clients can never both hold the current token.
 */
export interface DesignationStore {
  current(userId: string): Promise<Designation | undefined>
  /** Makes `clientId` the sync client (the explicit "make this machine the sync client" action). */
  designate(userId: string, clientId: string): Promise<Designation>
  /** The first client of a user becomes its sync client; otherwise the current designation stays. */
  claimIfUnassigned(userId: string, clientId: string): Promise<Designation>
}

/** In-process `DesignationStore` (one server process; tests). */
export class InMemoryDesignationStore implements DesignationStore {
  private readonly byUser = new Map<string, Designation>()

  async current(userId: string): Promise<Designation | undefined> {
    const d = this.byUser.get(userId)
    return d && { ...d }
  }

  async designate(userId: string, clientId: string): Promise<Designation> {
    const next = { clientId, fencingToken: (this.byUser.get(userId)?.fencingToken ?? 0) + 1 }
    this.byUser.set(userId, next)
    return { ...next }
  }

  async claimIfUnassigned(userId: string, clientId: string): Promise<Designation> {
    const existing = this.byUser.get(userId)
    if (existing) return { ...existing }
    return this.designate(userId, clientId)
  }
}

/** Where each user's personal sync interval (minutes) is kept. */
export interface IntervalStore {
  get(userId: string): Promise<number | undefined>
  set(userId: string, minutes: number): Promise<void>
}

export class InMemoryIntervalStore implements IntervalStore {
  private readonly byUser = new Map<string, number>()
  async get(userId: string): Promise<number | undefined> {
    return this.byUser.get(userId)
  }
  async set(userId: string, minutes: number): Promise<void> {
    this.byUser.set(userId, minutes)
  }
}
