import { availableParallelism } from 'node:os'
import { PolicyNameSchema } from '@concord/scheduler'
import { z } from 'zod'
import { ConflictPolicyNames } from './conflict-policies.js'
import { SimulatorError } from './errors.js'
import type { SimulationConfig } from './simulate.js'
import { WIRE_MAX_MAILBOXES } from './policy-run.js'

const int = (min: number, max: number) => z.coerce.number().int(`must be an integer`).min(min, `must be >= ${min}`).max(max, `must be <= ${max}`)
const splitList = z.string().transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x !== ''))

/** The CLI options as commander hands them over (strings), parsed and defaulted. */
export const SimulatorOptionsSchema = z.strictObject({
  mailboxes: int(1, 1_000_000).default(200),
  days: z.coerce.number().positive('must be > 0').max(366, 'must be <= 366').default(1),
  warmupDays: z.coerce.number().min(0, 'must be >= 0').max(30, 'must be <= 30').optional(),
  seed: int(0, 2 ** 32 - 1).default(1),
  policies: splitList.pipe(z.array(PolicyNameSchema).min(1, 'needs at least one value')).default(['fixed:15', 'fixed:5', 'sss', 'adaptive', 'oracle']),
  budgetFrom: PolicyNameSchema.default('fixed:5'),
  conflictPolicies: splitList.pipe(z.array(z.enum(ConflictPolicyNames, { message: `must be one of ${ConflictPolicyNames.join(', ')}` })).min(1, 'needs at least one value')).default(['crm-wins']),
  mode: z.enum(['fast', 'wire'], { message: 'must be fast or wire' }).default('fast'),
  engine: z.enum(['real', 'stub'], { message: 'must be real or stub' }).default('real'),
  store: z.enum(['leveldb', 'memory'], { message: 'must be leveldb or memory' }).default('leveldb'),
  trace: z.string().min(1).optional(),
  out: z.string().min(1).default('sim-out'),
  notifications: z.enum(['on', 'off'], { message: 'must be on or off' }).default('off'),
  notificationLoss: z.coerce.number().min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1').default(0),
  requestLatencyMs: z.coerce.number().min(0, 'must be >= 0').max(60_000, 'must be <= 60000').default(120),
  progress: z.boolean().default(true),
  jobs: int(1, 64).default(Math.min(2, availableParallelism())),
})
export type SimulatorOptions = z.output<typeof SimulatorOptionsSchema>

const flag = (key: string) => '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())

/** Parses raw CLI options; a bad value throws a `Usage` error naming the option and the value. */
export function parseSimulatorOptions(raw: Record<string, unknown>): SimulatorOptions {
  const result = SimulatorOptionsSchema.safeParse(raw)
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '')
      const value = key ? raw[key] : undefined
      return `${key ? flag(key) : 'options'} ${value === undefined ? '' : JSON.stringify(value) + ' '}is invalid: ${issue.message}`
    })
    throw new SimulatorError('Usage', lines.join('\n'))
  }
  const o = result.data
  if (o.notificationLoss > 0 && o.notifications === 'off') throw new SimulatorError('Usage', '--notification-loss needs --notifications on')
  if (o.mode === 'wire') {
    if (o.mailboxes > WIRE_MAX_MAILBOXES) throw new SimulatorError('Usage', `--mailboxes ${JSON.stringify(raw.mailboxes ?? o.mailboxes)} is invalid with --mode wire: at most ${WIRE_MAX_MAILBOXES} (each mailbox is a CRM user and an Exchange mailbox on the emulators)`)
    if (o.engine === 'stub') throw new SimulatorError('Usage', '--engine stub is invalid with --mode wire: wire mode runs the real engine against the emulators')
    if (o.notifications === 'on') throw new SimulatorError('Usage', '--notifications on is invalid with --mode wire: wire mode does not simulate change notifications')
  }
  return o
}

/** The simulation config of parsed options. */
export function toSimulationConfig(o: SimulatorOptions): SimulationConfig {
  return {
    mailboxes: o.mailboxes,
    days: o.days,
    warmupDays: o.warmupDays ?? (o.trace ? 0 : 1),
    seed: o.seed,
    policies: [...new Set(o.policies)],
    budgetFrom: o.budgetFrom,
    conflictPolicies: [...new Set(o.conflictPolicies)],
    mode: o.mode,
    engine: o.engine,
    store: o.store,
    notifications: o.notifications === 'on',
    notificationLoss: o.notificationLoss,
    trace: o.trace,
    requestLatencyMs: o.requestLatencyMs,
  }
}
