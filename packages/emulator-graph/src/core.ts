/** The emulator's shared state: store, auth, throttling, delta sync states, subscriptions, faults. */
import { randomBytes } from 'node:crypto'
import { Auth } from './auth.js'
import { Clock } from './clock.js'
import { SyncStates, TokenCodec, VisibilityLag } from './delta.js'
import { Faults, Stats } from './faults.js'
import type { ResolvedOptions } from './options.js'
import { SendLimits } from './send-limits.js'
import { Store } from './store/store.js'
import { Subscriptions } from './subscriptions.js'
import { Throttle } from './throttle.js'

export class Core {
  readonly clock = new Clock()
  readonly store: Store
  readonly auth: Auth
  readonly throttle: Throttle
  /** Exchange Online sending limits (messages per minute, recipients per day) per mailbox. */
  readonly sendLimits: SendLimits
  readonly faults = new Faults()
  readonly stats = new Stats()
  readonly syncStates: SyncStates
  readonly codec: TokenCodec
  readonly subs: Subscriptions
  /** Processing-delay fault for delta rounds. */
  readonly lag = new VisibilityLag(0)
  /** Origin of the server, e.g. `http://127.0.0.1:4000`; set once listening. */
  baseUrl = ''

  constructor(
    readonly options: ResolvedOptions,
    readonly secret: string = randomBytes(32).toString('hex'),
    readonly tenant: string = options.tenant ?? '72f988bf-86f1-41af-91ab-2d7cd011db47',
  ) {
    this.store = new Store(this.clock)
    this.auth = new Auth(secret, this.tenant, options.clientId, options.clientSecret, options.tokenLifetimeSeconds, this.clock)
    this.throttle = new Throttle({ ...options.throttle }, this.clock)
    this.sendLimits = new SendLimits({ ...options.sending }, this.clock)
    this.syncStates = new SyncStates(options.delta.generations, options.delta.maxSyncStates)
    this.codec = new TokenCodec(secret)
    this.subs = new Subscriptions(this.store, this.faults, this.clock, this.tenant, {
      ...options.subscriptions,
      maxDeliveryLog: 1000,
    })
  }

  get graphBase(): string {
    return `${this.baseUrl}/v1.0`
  }
}
