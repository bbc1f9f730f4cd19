import { randomUUID } from 'node:crypto'
import { z } from 'zod'
import type { Caller, EmulatorContext } from './context.js'
import { DataverseError, payloadInvalid } from './errors.js'
import { parseFilter } from './odata/filter-parser.js'
import { compileFilter } from './odata/query.js'
import { parsePayload } from './records.js'
import { TABLES_BY_SET, tableByName } from './schema.js'
import { BASIC_USER, DEPTH_RANK, FIELD_ALLOWED, FIELD_NOT_ALLOWED, SYSTEM_ADMINISTRATOR, guidFromName, type Depth, type ShareAccess } from './security.js'
import type { Row } from './store/store.js'
import type { Throttle, ThrottleLimits } from './throttle.js'
import type { WebApi } from './web-api.js'

export const depthSchema = z.enum(['Basic', 'Local', 'Deep', 'Global', 'User', 'BusinessUnit', 'ParentChild', 'Organization']).transform((d): Depth => {
  const alias: Record<string, Depth> = { User: 'Basic', BusinessUnit: 'Local', ParentChild: 'Deep', Organization: 'Global' }
  return alias[d] ?? (d as Depth)
})

export const userSeedSchema = z.object({
  email: z.string().email(),
  fullname: z.string().min(1).optional(),
  firstname: z.string().optional(),
  lastname: z.string().optional(),
  objectId: z.string().uuid().optional(),
  systemuserid: z.string().uuid().optional(),
  roles: z.array(z.string().min(1)).optional(),
  mailbox: z.enum(['enabled', 'pending', 'none']).optional(),
  disabled: z.boolean().optional(),
})
export type UserSeed = z.input<typeof userSeedSchema>

export interface SeededUser {
  systemuserid: string
  azureactivedirectoryobjectid: string
  mailboxid: string | null
  email: string
}

export const roleSchema = z.object({
  name: z.string().min(1),
  privileges: z.record(z.string(), depthSchema).superRefine((privs, ctx) => {
    for (const k of Object.keys(privs)) {
      if (!/^prv[A-Za-z]+$/.test(k)) ctx.addIssue({ code: 'custom', path: [k], message: `privilege names look like prvReadContact, got '${k}'` })
    }
  }),
})

export const fieldProfileSchema = z.object({
  name: z.string().min(1),
  members: z.array(z.string().uuid()),
  permissions: z.array(
    z.object({
      table: z.string().min(1),
      column: z.string().min(1),
      canRead: z.boolean().default(false),
      canCreate: z.boolean().default(false),
      canUpdate: z.boolean().default(false),
    }),
  ),
})

export const shareSchema = z.object({
  table: z.string().min(1),
  id: z.string().uuid(),
  userId: z.string().uuid(),
  rights: z.array(z.enum(['Read', 'Write', 'Delete', 'Append', 'AppendTo', 'Assign', 'Share'])).min(1),
})

export const faultSchema = z.object({
  status: z.union([z.literal(429), z.literal(503)]),
  count: z.number().int().min(1).max(1_000_000),
  retryAfterSeconds: z.number().int().min(0).max(3600).default(1),
})
export type FaultSpec = z.input<typeof faultSchema>

export const limitsSchema = z.object({
  requestsPerWindow: z.number().int().min(1).optional(),
  windowMs: z.number().int().min(1).optional(),
  executionMsPerWindow: z.number().int().min(1).optional(),
  concurrent: z.number().int().min(1).optional(),
})

interface Fault {
  status: 429 | 503
  remaining: number
  retryAfterSeconds: number
}

/** Seeding, inspection and fault injection (also served over HTTP under /_emulator). */
export class Admin {
  latencyMs: number
  faults: Fault[] = []
  clockOffsetMs = 0
  gate: Promise<void> | null = null

  constructor(
    private readonly ctx: EmulatorContext,
    private readonly api: WebApi,
    private readonly throttle: Throttle,
    baseLatencyMs: number,
    private readonly persist: () => void,
    private readonly systemCaller: () => Caller,
  ) {
    this.latencyMs = baseLatencyMs
  }

  private parse<T extends z.ZodType>(schema: T, input: unknown, what: string): z.output<T> {
    const r = schema.safeParse(input)
    if (!r.success) {
      const i = r.error.issues[0]
      throw payloadInvalid(`${what}: ${i?.path.join('.') || 'body'}: ${i?.message ?? 'invalid'}`)
    }
    return r.data
  }

  /** Create (or find by e-mail) a system user with roles, user settings, default sync filters and a mailbox. */
  addUser(input: UserSeed): SeededUser {
    const u = this.parse(userSeedSchema, input, 'user')
    const store = this.ctx.store
    const users = store.table('systemuser')
    const existingId = users.lookupIndex('internalemailaddress', u.email)[0]
    if (existingId) {
      const row = users.rows.get(existingId) as Row
      if (u.roles) this.ctx.security.assignRoles(existingId, u.roles)
      this.persist()
      return {
        systemuserid: existingId,
        azureactivedirectoryobjectid: String(row.values.azureactivedirectoryobjectid),
        mailboxid: row.lookups.defaultmailbox?.id ?? null,
        email: u.email,
      }
    }
    const id = (u.systemuserid ?? guidFromName(`systemuser:${u.email.toLowerCase()}`)).toLowerCase()
    const objectId = (u.objectId ?? guidFromName(`aad:${u.email.toLowerCase()}`)).toLowerCase()
    const local = u.email.split('@')[0] as string
    const first = u.firstname ?? local.charAt(0).toUpperCase() + local.slice(1)
    const last = u.lastname ?? null
    const now = new Date(this.ctx.now()).toISOString().replace(/\.\d{3}Z$/, 'Z')
    let mailboxid: string | null = null
    store.transaction(() => {
      store.insert('systemuser', {
        id,
        values: {
          fullname: u.fullname ?? [first, last].filter(Boolean).join(' '),
          firstname: first,
          lastname: last,
          internalemailaddress: u.email,
          domainname: u.email,
          azureactivedirectoryobjectid: objectId,
          applicationid: null,
          isdisabled: u.disabled ?? false,
          accessmode: 0,
          createdon: now,
          modifiedon: now,
        },
        lookups: { createdby: null, modifiedby: null, defaultmailbox: null },
      })
      this.ctx.security.assignRoles(id, u.roles ?? [BASIC_USER])
      store.insert('usersettings', {
        id,
        values: { incomingemailfilteringmethod: 1, trackcategorizeditems: true, synccontactcompany: true, timezonecode: 85, createdon: now, modifiedon: now },
        lookups: { createdby: null, modifiedby: null },
      })
      for (const [name, type] of [
        ['My Contacts', 'contact'],
        ['My Appointments', 'appointment'],
        ['My Tasks', 'task'],
      ] as const) {
        store.insert('userquery', {
          id: guidFromName(`userquery:${id}:${type}`),
          values: {
            name,
            description: `Default synchronization filter (${type} rows owned by the user).`,
            returnedtypecode: type,
            querytype: 256,
            fetchxml: `<fetch><entity name="${type}"><filter><condition attribute="ownerid" operator="eq-userid" /></filter></entity></fetch>`,
            concord_odatafilter: `_ownerid_value eq ${id}`,
            statecode: 0,
            statuscode: 1,
            createdon: now,
            modifiedon: now,
          },
          lookups: { ownerid: { table: 'systemuser', id }, createdby: null, modifiedby: null },
        })
      }
      const mode = u.mailbox ?? 'enabled'
      if (mode !== 'none') {
        mailboxid = guidFromName(`mailbox:${id}`)
        const enabled = mode === 'enabled'
        store.insert('mailbox', {
          id: mailboxid,
          values: {
            name: u.fullname ?? u.email,
            emailaddress: u.email,
            emailrouteraccessapproval: enabled ? 1 : 2,
            isemailaddressapprovedbyo365admin: enabled,
            enabledforincomingemail: enabled,
            enabledforoutgoingemail: enabled,
            enabledforact: enabled,
            incomingemailstatus: enabled ? 1 : 0,
            outgoingemailstatus: enabled ? 1 : 0,
            actstatus: enabled ? 1 : 0,
            incomingemaildeliverymethod: 2,
            outgoingemaildeliverymethod: 2,
            actdeliverymethod: 1,
            testemailconfigurationscheduled: false,
            orgmarkedasprimaryforexchangesync: enabled,
            isactsyncorgflagset: enabled,
            itemsprocessedforlastsync: 0,
            itemsfailedforlastsync: 0,
            lastsyncerrorcount: 0,
            processanddeleteemails: false,
            isforwardmailbox: false,
            statecode: 0,
            statuscode: 1,
            createdon: now,
            modifiedon: now,
          },
          lookups: {
            ownerid: { table: 'systemuser', id },
            regardingobjectid: { table: 'systemuser', id },
            emailserverprofile: null,
            createdby: null,
            modifiedby: null,
          },
        })
        store.update('systemuser', id, {}, { defaultmailbox: { table: 'mailbox', id: mailboxid } })
      }
    })
    this.persist()
    return { systemuserid: id, azureactivedirectoryobjectid: objectId, mailboxid, email: u.email }
  }

  /** Ensure the application user for a client id exists (System Administrator). */
  ensureApplicationUser(clientId: string): string {
    const users = this.ctx.store.table('systemuser')
    const found = users.lookupIndex('applicationid', clientId)[0]
    if (found) return found
    const id = guidFromName(`appuser:${clientId}`)
    const now = new Date(this.ctx.now()).toISOString().replace(/\.\d{3}Z$/, 'Z')
    this.ctx.store.insert('systemuser', {
      id,
      values: {
        fullname: `# ${clientId}`,
        firstname: '#',
        lastname: clientId,
        internalemailaddress: null,
        domainname: `${clientId}@application`,
        azureactivedirectoryobjectid: guidFromName(`aad-app:${clientId}`),
        applicationid: clientId,
        isdisabled: false,
        accessmode: 4,
        createdon: now,
        modifiedon: now,
      },
      lookups: { createdby: null, modifiedby: null, defaultmailbox: null },
    })
    this.ctx.security.assignRoles(id, [SYSTEM_ADMINISTRATOR])
    this.persist()
    return id
  }

  /** Create a record through the normal write path, as the application user (or `asUserId`). */
  createRecord(entitySet: string, body: Record<string, unknown>, asUserId?: string): Row {
    const table = TABLES_BY_SET.get(entitySet)
    if (!table) throw new DataverseError('NotFound', 404, `Resource not found for the segment '${entitySet}'.`)
    if (table.virtualOf) throw new DataverseError('MethodNotAllowed', 405, `'${entitySet}' is a read-only view.`)
    const sys = this.systemCaller()
    const caller: Caller = asUserId ? { ...sys, userId: asUserId.toLowerCase() } : sys
    const p = parsePayload(this.ctx, table, body, 'create')
    const id = p.id ?? randomUUID()
    const row = this.ctx.store.transaction(() => this.api.createRow(table, p, caller, id))
    return row
  }

  /**
   * Runs the `SendEmail` action on an e-mail as `asUserId` (default: the application user), exactly as
   * `POST emails(<id>)/Microsoft.Dynamics.CRM.SendEmail` does: `issueSend` true (default) → statecode 1 /
   * statuscode 6 Pending Send, false → 3 Sent. Returns the new subject (with the tracking token).
   */
  sendEmail(emailId: string, asUserId?: string, opts: { issueSend?: boolean; trackingToken?: string } = {}): string {
    const table = tableByName('email')
    const row = this.ctx.store.get('email', emailId.toLowerCase())
    if (!row) throw new DataverseError('NotFound', 404, `email With Id = ${emailId} Does Not Exist`)
    const sys = this.systemCaller()
    const caller: Caller = asUserId ? { ...sys, userId: asUserId.toLowerCase() } : sys
    const res = this.api.sendEmail(table, row, { IssueSend: opts.issueSend ?? true, ...(opts.trackingToken === undefined ? {} : { TrackingToken: opts.trackingToken }) }, caller)
    return String((res.body as { Subject?: unknown } | undefined)?.Subject ?? '')
  }

  rows(entitySet: string, filter?: string): Row[] {
    const table = TABLES_BY_SET.get(entitySet)
    if (!table) throw new DataverseError('NotFound', 404, `Resource not found for the segment '${entitySet}'.`)
    const rows = [...this.ctx.store.table(table.logicalName).rows.values()]
    if (!filter) return rows
    const pred = compileFilter(table, parseFilter(filter))
    return rows.filter(pred)
  }

  upsertRole(input: z.input<typeof roleSchema>): { roleid: string; name: string } {
    const r = this.parse(roleSchema, input, 'role')
    const role = this.ctx.security.upsertRole(r.name, r.privileges)
    this.persist()
    return { roleid: role.roleid, name: role.name }
  }

  assignRoles(userId: string, roles: string[]): void {
    if (!this.ctx.store.get('systemuser', userId)) throw new DataverseError('NotFound', 404, `systemuser With Id = ${userId} Does Not Exist`)
    this.ctx.security.assignRoles(userId, roles)
    this.persist()
  }

  /**
   * Emulator shortcut for `PUT EntityDefinitions(LogicalName='<table>')/Attributes(LogicalName='<column>')`
   * with `IsSecured: true` (see README "Column security").
   */
  secureColumn(table: string, column: string, secured = true): void {
    try {
      tableByName(table)
    } catch {
      throw payloadInvalid(`field security: table '${table}' does not exist.`)
    }
    this.ctx.store.transaction(() => this.ctx.security.setSecured(table, column, secured))
    this.persist()
  }

  /**
   * Emulator shortcut (thin wrapper): creates a `fieldsecurityprofiles` row, its `fieldpermissions` rows
   * (canread/cancreate/canupdate 4 Allowed / 0 Not Allowed) and the `systemuserprofiles_association` links,
   * exactly what the Web API calls do. Idempotent by name: an existing profile's permissions and members
   * are replaced.
   */
  addFieldSecurityProfile(input: z.input<typeof fieldProfileSchema>): string {
    const p = this.parse(fieldProfileSchema, input, 'field security profile')
    const id = guidFromName(`fsp:${p.name}`)
    for (const perm of p.permissions) {
      let def
      try {
        def = tableByName(perm.table)
      } catch {
        throw payloadInvalid(`field security profile: table '${perm.table}' does not exist.`)
      }
      if (!Object.hasOwn(def.columns, perm.column)) throw payloadInvalid(`field security profile: column '${perm.table}.${perm.column}' does not exist.`)
    }
    for (const m of p.members) {
      if (!this.ctx.store.get('systemuser', m.toLowerCase())) throw payloadInvalid(`field security profile: member ${m} is not a system user.`)
    }
    const store = this.ctx.store
    const allowed = (b: boolean): number => (b ? FIELD_ALLOWED : FIELD_NOT_ALLOWED)
    store.transaction(() => {
      if (store.get('fieldsecurityprofile', id)) {
        const perms = store.table('fieldpermission')
        for (const pid of perms.lookupIndex('_fieldsecurityprofileid_value', id)) store.delete('fieldpermission', pid, this.ctx.now())
        const links = store.table('systemuserprofiles')
        for (const lid of links.lookupIndex('fieldsecurityprofileid', id)) store.delete('systemuserprofiles', lid, this.ctx.now())
        store.update('fieldsecurityprofile', id, { name: p.name }, {})
      } else {
        store.insert('fieldsecurityprofile', { id, values: { name: p.name, description: null }, lookups: { createdby: null, modifiedby: null } })
      }
      for (const perm of p.permissions) {
        store.insert('fieldpermission', {
          id: randomUUID(),
          values: { entityname: perm.table, attributelogicalname: perm.column, canread: allowed(perm.canRead), cancreate: allowed(perm.canCreate), canupdate: allowed(perm.canUpdate), canreadunmasked: 0 },
          lookups: { fieldsecurityprofileid: { table: 'fieldsecurityprofile', id } },
        })
      }
      for (const m of p.members) {
        store.insert('systemuserprofiles', { id: randomUUID(), values: { systemuserid: m.toLowerCase(), fieldsecurityprofileid: id }, lookups: {} })
      }
    })
    this.persist()
    return id
  }

  share(input: z.input<typeof shareSchema>): void {
    const s = this.parse(shareSchema, input, 'share')
    tableByName(s.table)
    this.ctx.security.grant(s.table, s.id, s.userId, s.rights as ShareAccess[])
    this.persist()
  }

  setLatency(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0 || ms > 60_000) throw payloadInvalid(`latency: ms must be 0–60000, got ${ms}.`)
    this.latencyMs = ms
  }

  injectFaults(input: FaultSpec): void {
    const f = this.parse(faultSchema, input, 'fault')
    this.faults.push({ status: f.status, remaining: f.count, retryAfterSeconds: f.retryAfterSeconds })
  }

  /** Consume one injected fault, if any. */
  nextFault(): DataverseError | null {
    const f = this.faults[0]
    if (!f) return null
    f.remaining--
    if (f.remaining <= 0) this.faults.shift()
    const headers = { 'Retry-After': String(f.retryAfterSeconds) }
    if (f.status === 429) {
      return new DataverseError('RequestLimitExceeded', 429, 'Number of requests exceeded the limit of 6000 over time window of 300 seconds.', { headers })
    }
    return new DataverseError('ServiceUnavailable', 503, 'The service is temporarily unavailable (injected fault).', { headers })
  }

  setLimits(input: z.input<typeof limitsSchema>): ThrottleLimits {
    const l = this.parse(limitsSchema, input, 'limits')
    this.throttle.limits = { ...this.throttle.limits, ...Object.fromEntries(Object.entries(l).filter(([, v]) => v !== undefined)) }
    return this.throttle.limits
  }

  /** While held, admitted Web API requests wait (deterministic concurrency tests). Returns the release. */
  holdRequests(): () => void {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    this.gate = gate
    return () => {
      if (this.gate === gate) this.gate = null
      release()
    }
  }

  /** Forget all request counters (service protection windows). */
  throttleReset(): void {
    this.throttle.reset()
  }

  /** Make every change-tracking token issued so far expired (410 on next use). */
  expireChangeTracking(): void {
    // bump the counter so tokens issued from now on (version >= minValidVersion) stay valid
    this.ctx.store.version += 1
    this.ctx.store.minValidVersion = this.ctx.store.version
    this.persist()
  }

  setRetention(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw payloadInvalid(`retention: ms must be >= 0, got ${ms}.`)
    this.ctx.retentionMs = ms
  }

  advanceClock(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw payloadInvalid(`clock: advanceMs must be >= 0, got ${ms}.`)
    this.clockOffsetMs += ms
  }

  stats(): { callers: ReturnType<Throttle['stats']>; version: number; rows: Record<string, number> } {
    const rows: Record<string, number> = {}
    for (const [, t] of this.ctx.store.tables) if (!t.def.virtualOf) rows[t.def.entitySet] = t.rows.size
    return { callers: this.throttle.stats(), version: this.ctx.store.version, rows }
  }
}

export { DEPTH_RANK }
