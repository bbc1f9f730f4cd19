import { SyncError } from '@concord/engine'
import { z } from 'zod'
import { parseJson, type WebApiClient } from './http.js'

/**
 * Column (field) security of a user, computed from documented Web API reads only
 * (column-level-security.md, field-security-entities.md), as the application user — a basic user
 * cannot read these tables, so these requests are never impersonated:
 *
 * 1. secured columns: `EntityDefinitions(LogicalName='<table>')/Attributes?$select=LogicalName&$filter=IsSecured eq true`;
 * 2. the user's field security profiles: `systemusers(<id>)/systemuserprofiles_association?$select=fieldsecurityprofileid`;
 * 3. the permissions of those profiles: `fieldpermissions?$filter=(_fieldsecurityprofileid_value eq …) and (entityname eq '…')`.
 *
 * 4. whether the user holds the System Administrator role: `systemusers(<id>)/systemuserroles_association?$select=roleid,_roletemplateid_value`.
 *
 * A secured column is readable / creatable / updatable when at least one of the user's profiles
 * grants `canread` / `cancreate` / `canupdate` = 4 (Allowed). The built-in System Administrator
 * profile gives full access to every secured column; "by default, all users who have the System
 * Administrator security role have this profile", so a member of that profile or a holder of that
 * role gets all three everywhere. Team profiles (`teamprofiles_association`) are not read.
 */

/** The built-in System Administrator field security profile: full access to every secured column. */
export const SYSADMIN_FIELD_PROFILE_ID = '572329c1-a042-4e22-be47-367c6374ea45'
/** Role template of the built-in System Administrator security role (the same in every environment). */
export const SYSTEM_ADMINISTRATOR_ROLE_TEMPLATE_ID = '627090ff-40a3-4053-8790-584edc5be201'
/** `field_security_permission_type`: 0 Not Allowed, 4 Allowed. */
export const FIELD_ALLOWED = 4

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
/** Profile ids per `fieldpermissions` query (keeps the URL short). */
const PROFILES_PER_QUERY = 40
const CACHE_LIMIT = 10_000

/** A user's permission on one secured column. */
export interface ColumnPermission {
  /** Table logical name, e.g. `contact`. */
  table: string
  /** Column logical name, e.g. `jobtitle`. */
  column: string
  canRead: boolean
  canCreate: boolean
  canUpdate: boolean
}

export const SecuredAttributesSchema = z.object({ value: z.array(z.object({ LogicalName: z.string().min(1) }).loose()) }).loose()

export const ProfileLinksPageSchema = z.object({
  value: z.array(z.object({ fieldsecurityprofileid: z.string().regex(GUID, 'expected a fieldsecurityprofileid (GUID)') }).loose()),
  '@odata.nextLink': z.string().min(1).optional(),
}).loose()

export const RolesPageSchema = z.object({
  value: z.array(z.object({ roleid: z.string().min(1), _roletemplateid_value: z.string().nullable().optional() }).loose()),
  '@odata.nextLink': z.string().min(1).optional(),
}).loose()

const permissionType = z.number().int().min(0)
export const FieldPermissionRowSchema = z.object({
  entityname: z.string().min(1),
  attributelogicalname: z.string().min(1),
  canread: permissionType,
  cancreate: permissionType,
  canupdate: permissionType,
  _fieldsecurityprofileid_value: z.string().regex(GUID, 'expected a fieldsecurityprofileid (GUID)'),
}).loose()
export type FieldPermissionRow = z.infer<typeof FieldPermissionRowSchema>

export const FieldPermissionsPageSchema = z.object({
  value: z.array(FieldPermissionRowSchema),
  '@odata.nextLink': z.string().min(1).optional(),
}).loose()

/**
 * Pure part: every secured column of `secured` with the union of what the user's `profiles` grant
 * through `permissions` (rows of other profiles, other tables or unsecured columns are ignored).
 */
export function computeColumnPermissions(
  secured: Readonly<Record<string, readonly string[]>>,
  profiles: readonly string[],
  permissions: readonly FieldPermissionRow[],
): ColumnPermission[] {
  const mine = new Set(profiles.map((p) => p.toLowerCase()))
  const sysadmin = mine.has(SYSADMIN_FIELD_PROFILE_ID)
  const out = new Map<string, ColumnPermission>()
  for (const [table, columns] of Object.entries(secured)) {
    for (const column of columns) {
      const c = column.toLowerCase()
      out.set(`${table}.${c}`, { table, column: c, canRead: sysadmin, canCreate: sysadmin, canUpdate: sysadmin })
    }
  }
  for (const p of permissions) {
    if (!mine.has(p._fieldsecurityprofileid_value.toLowerCase())) continue
    const m = out.get(`${p.entityname.toLowerCase()}.${p.attributelogicalname.toLowerCase()}`)
    if (!m) continue
    m.canRead ||= p.canread === FIELD_ALLOWED
    m.canCreate ||= p.cancreate === FIELD_ALLOWED
    m.canUpdate ||= p.canupdate === FIELD_ALLOWED
  }
  return [...out.values()]
}

function quoted(value: string): string {
  return `'${value.replace(/'/g, "''")}'`
}

export interface FieldSecurityReaderOptions {
  /** Table logical names whose secured columns matter. */
  tables: readonly string[]
  /** How long a user's result is reused (0 = always read). */
  ttlMs: number
  now?: (() => number) | undefined
}

/** Reads and caches (per user, with a TTL) a user's column permissions through the application user's client. */
export class FieldSecurityReader {
  private readonly cache = new Map<string, { at: number; value: Promise<ColumnPermission[]> }>()
  private readonly now: () => number
  /** Reads done (cache misses), for tests and metrics. */
  reads = 0

  constructor(
    /** A client that is NOT impersonating (the application user). */
    private readonly http: WebApiClient,
    private readonly options: FieldSecurityReaderOptions,
  ) {
    this.now = options.now ?? Date.now
  }

  /** The user's permission on every secured column of the configured tables. */
  permissionsOf(userId: string, opts: { refresh?: boolean | undefined; signal?: AbortSignal | undefined } = {}): Promise<ColumnPermission[]> {
    const id = userId.toLowerCase()
    if (!GUID.test(id)) return Promise.reject(new SyncError('Validation', `Not a systemuserid: '${userId}'`))
    const at = this.now()
    const hit = this.cache.get(id)
    if (!opts.refresh && hit && at - hit.at < this.options.ttlMs) return hit.value
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear()
    const value = this.read(id, opts.signal)
    const entry = { at, value }
    this.cache.set(id, entry)
    value.catch(() => {
      if (this.cache.get(id) === entry) this.cache.delete(id)
    })
    return value
  }

  /** Forgets one user's (or everyone's) cached permissions. */
  invalidate(userId?: string): void {
    if (userId === undefined) this.cache.clear()
    else this.cache.delete(userId.toLowerCase())
  }

  private async read(userId: string, signal?: AbortSignal): Promise<ColumnPermission[]> {
    this.reads++
    const secured: Record<string, string[]> = {}
    await Promise.all(
      this.options.tables.map(async (table) => {
        const path = `EntityDefinitions(LogicalName=${encodeURIComponent(quoted(table))})/Attributes?$select=LogicalName&$filter=${encodeURIComponent('IsSecured eq true')}`
        const page = await this.http.getJson(path, SecuredAttributesSchema, {}, signal)
        if (page.value.length > 0) secured[table] = page.value.map((a) => a.LogicalName.toLowerCase())
      }),
    )
    const tables = Object.keys(secured)
    if (tables.length === 0) return []
    const [direct, sysadmin] = await Promise.all([this.profilesOf(userId, signal), this.holdsSystemAdministratorRole(userId, signal)])
    // "By default, all users who have the System Administrator security role have this profile."
    const profiles = sysadmin && !direct.includes(SYSADMIN_FIELD_PROFILE_ID) ? [...direct, SYSADMIN_FIELD_PROFILE_ID] : direct
    const permissions = profiles.includes(SYSADMIN_FIELD_PROFILE_ID) ? [] : await this.permissionRows(profiles, tables, signal)
    return computeColumnPermissions(secured, profiles, permissions)
  }

  /** Whether a security role of the user is built from the System Administrator role template (N:N `systemuserroles_association`). */
  private async holdsSystemAdministratorRole(userId: string, signal?: AbortSignal): Promise<boolean> {
    let url: string | undefined = `systemusers(${userId})/systemuserroles_association?$select=roleid,_roletemplateid_value`
    while (url) {
      const res = await this.http.request('GET', url, { signal })
      const page = parseJson(res, RolesPageSchema, `security roles of systemuser ${userId}`)
      if (page.value.some((r) => r._roletemplateid_value?.toLowerCase() === SYSTEM_ADMINISTRATOR_ROLE_TEMPLATE_ID)) return true
      url = page['@odata.nextLink']
    }
    return false
  }

  /** Field security profiles the user belongs to directly (N:N `systemuserprofiles_association`). */
  private async profilesOf(userId: string, signal?: AbortSignal): Promise<string[]> {
    const out: string[] = []
    let url: string | undefined = `systemusers(${userId})/systemuserprofiles_association?$select=fieldsecurityprofileid`
    while (url) {
      const res = await this.http.request('GET', url, { signal })
      const page = parseJson(res, ProfileLinksPageSchema, `field security profiles of systemuser ${userId}`)
      out.push(...page.value.map((p) => p.fieldsecurityprofileid.toLowerCase()))
      url = page['@odata.nextLink']
    }
    return [...new Set(out)]
  }

  private async permissionRows(profiles: readonly string[], tables: readonly string[], signal?: AbortSignal): Promise<FieldPermissionRow[]> {
    const out: FieldPermissionRow[] = []
    const entities = tables.map((t) => `entityname eq ${quoted(t)}`).join(' or ')
    for (let i = 0; i < profiles.length; i += PROFILES_PER_QUERY) {
      const chunk = profiles.slice(i, i + PROFILES_PER_QUERY)
      const filter = `(${chunk.map((p) => `_fieldsecurityprofileid_value eq ${p}`).join(' or ')}) and (${entities})`
      let url: string | undefined = `fieldpermissions?$select=entityname,attributelogicalname,canread,cancreate,canupdate,_fieldsecurityprofileid_value&$filter=${encodeURIComponent(filter)}`
      while (url) {
        const res = await this.http.request('GET', url, { signal })
        const page = parseJson(res, FieldPermissionsPageSchema, 'field permissions')
        out.push(...page.value)
        url = page['@odata.nextLink']
      }
    }
    return out
  }
}
