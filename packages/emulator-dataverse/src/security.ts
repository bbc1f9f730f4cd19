import { createHash } from 'node:crypto'
import { privilegeDenied, DataverseError } from './errors.js'
import { isReadOnly, ROOT_BUSINESS_UNIT_ID, TABLES, tableByName, type TableDef } from './schema.js'
import type { Row, Store } from './store/store.js'

export type Depth = 'Basic' | 'Local' | 'Deep' | 'Global'
export type AccessRight = 'Create' | 'Read' | 'Write' | 'Delete' | 'Append' | 'AppendTo' | 'Assign' | 'Share'
export const ACCESS_RIGHTS: readonly AccessRight[] = ['Create', 'Read', 'Write', 'Delete', 'Append', 'AppendTo', 'Assign', 'Share']
export const DEPTH_RANK: Record<Depth, number> = { Basic: 1, Local: 2, Deep: 3, Global: 4 }

/** Special (non-table) privileges the CRM adapter cares about. */
export const SPECIAL_PRIVILEGES = ['prvSyncToOutlook', 'prvSendAsUser', 'prvActOnBehalfOfAnotherUser'] as const

export const SYSTEM_ADMINISTRATOR = 'System Administrator'
export const BASIC_USER = 'Basic User'
export const SYSADMIN_FIELD_PROFILE_ID = '572329c1-a042-4e22-be47-367c6374ea45'
/** Role template of the built-in System Administrator role (the same in every Dataverse environment). */
export const SYSTEM_ADMINISTRATOR_ROLE_TEMPLATE_ID = '627090ff-40a3-4053-8790-584edc5be201'

export interface Role {
  roleid: string
  name: string
  privileges: Record<string, Depth>
}

export interface FieldPermission {
  canRead: boolean
  canCreate: boolean
  canUpdate: boolean
}

/** field_security_permission_type: 0 Not Allowed, 4 Allowed. */
export const FIELD_ALLOWED = 4
export const FIELD_NOT_ALLOWED = 0

export type ShareAccess = 'Read' | 'Write' | 'Delete' | 'Append' | 'AppendTo' | 'Assign' | 'Share'

export interface SecuritySnapshot {
  roles: Role[]
  userRoles: Array<[string, string[]]>
  shares: Array<[string, Array<[string, ShareAccess[]]>]>
  securedColumns: Array<[string, string[]]>
  /** Legacy (before profiles were rows of fieldsecurityprofiles / fieldpermissions); ignored on load. */
  profiles?: unknown[]
}

export function guidFromName(name: string): string {
  const h = createHash('sha1').update(name).digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`
}

export function tablePrivilege(access: AccessRight, table: TableDef): string {
  return `prv${access}${table.privilegeEntity}`
}

function allTablePrivileges(): string[] {
  const ents = [...new Set(TABLES.map((t) => t.privilegeEntity))]
  return ents.flatMap((e) => ACCESS_RIGHTS.map((a) => `prv${a}${e}`))
}

export function builtInRoles(): Role[] {
  const admin: Record<string, Depth> = {}
  for (const p of [...allTablePrivileges(), ...SPECIAL_PRIVILEGES]) admin[p] = 'Global'
  const basic: Record<string, Depth> = {}
  for (const e of ['Contact', 'Account', 'Lead', 'Opportunity', 'Activity', 'Queue', 'UserQuery', 'Mailbox']) {
    for (const a of ACCESS_RIGHTS) basic[`prv${a}${e}`] = 'Basic'
  }
  basic.prvReadUser = 'Global'
  basic.prvReadUserSettings = 'Basic'
  basic.prvWriteUserSettings = 'Basic'
  basic.prvCreateTraceLog = 'Global'
  basic.prvReadTraceLog = 'Basic'
  basic.prvSyncToOutlook = 'Global'
  return [
    { roleid: guidFromName(`role:${SYSTEM_ADMINISTRATOR}`), name: SYSTEM_ADMINISTRATOR, privileges: admin },
    { roleid: guidFromName(`role:${BASIC_USER}`), name: BASIC_USER, privileges: basic },
  ]
}

/** Roles, sharing and field security; owns no rows, reads ownership from the store. */
export class Security {
  roles = new Map<string, Role>()
  userRoles = new Map<string, Set<string>>()
  shares = new Map<string, Map<string, Set<ShareAccess>>>()
  securedColumns = new Map<string, Set<string>>()

  constructor(private readonly store: Store) {
    this.reset()
  }

  reset(): void {
    this.roles.clear()
    this.userRoles.clear()
    this.shares.clear()
    this.securedColumns.clear()
    for (const r of builtInRoles()) this.roles.set(r.roleid, r)
  }

  roleByName(name: string): Role | undefined {
    for (const r of this.roles.values()) if (r.name.toLowerCase() === name.toLowerCase()) return r
    return undefined
  }

  upsertRole(name: string, privileges: Record<string, Depth>): Role {
    const existing = this.roleByName(name)
    const role: Role = { roleid: existing?.roleid ?? guidFromName(`role:${name}`), name, privileges }
    this.roles.set(role.roleid, role)
    return role
  }

  assignRoles(userId: string, roleNames: readonly string[]): void {
    const set = new Set<string>()
    for (const n of roleNames) {
      const r = this.roleByName(n)
      if (!r) throw new DataverseError('NotFound', 404, `role With Name = ${n} Does Not Exist`)
      set.add(r.roleid)
    }
    this.userRoles.set(userId.toLowerCase(), set)
  }

  rolesOf(userId: string): Role[] {
    return [...(this.userRoles.get(userId) ?? [])].flatMap((id) => {
      const r = this.roles.get(id)
      return r ? [r] : []
    })
  }

  isSysAdmin(userId: string): boolean {
    return this.rolesOf(userId).some((r) => r.name === SYSTEM_ADMINISTRATOR)
  }

  depth(userId: string, privilege: string): Depth | null {
    let best: Depth | null = null
    for (const r of this.rolesOf(userId)) {
      const d = r.privileges[privilege]
      if (d && (!best || DEPTH_RANK[d] > DEPTH_RANK[best])) best = d
    }
    return best
  }

  /** Effective privileges as RetrieveUserPrivileges returns them. */
  effectivePrivileges(userId: string): Array<{ PrivilegeName: string; PrivilegeId: string; Depth: Depth; BusinessUnitId: string }> {
    const best = new Map<string, Depth>()
    for (const r of this.rolesOf(userId)) {
      for (const [p, d] of Object.entries(r.privileges)) {
        const cur = best.get(p)
        if (!cur || DEPTH_RANK[d] > DEPTH_RANK[cur]) best.set(p, d)
      }
    }
    return [...best].sort(([a], [b]) => a.localeCompare(b)).map(([name, depth]) => ({
      PrivilegeName: name,
      PrivilegeId: guidFromName(`privilege:${name}`),
      Depth: depth,
      BusinessUnitId: ROOT_BUSINESS_UNIT_ID,
    }))
  }

  /** Owner (system user id) that governs Basic-depth access to a row, or null when org-owned. */
  ownerOf(table: TableDef, row: Row): string | null {
    if (table.logicalName === 'usersettings') return row.id
    if (table.logicalName === 'activityparty') {
      const act = row.lookups.activityid
      if (!act) return null
      const parent = this.store.get(act.table, act.id)
      return parent?.lookups.ownerid?.id ?? null
    }
    if (table.ownership === 'user') return row.lookups.ownerid?.id ?? null
    return null
  }

  private shareKey(table: string, id: string): string {
    return `${table}:${id.toLowerCase()}`
  }

  grant(table: string, id: string, userId: string, rights: readonly ShareAccess[]): void {
    const key = this.shareKey(table, id)
    let m = this.shares.get(key)
    if (!m) this.shares.set(key, (m = new Map()))
    const set = m.get(userId.toLowerCase()) ?? new Set()
    for (const r of rights) set.add(r)
    m.set(userId.toLowerCase(), set)
  }

  revoke(table: string, id: string, userId: string): void {
    this.shares.get(this.shareKey(table, id))?.delete(userId.toLowerCase())
  }

  sharedWith(table: string, id: string, userId: string, right: ShareAccess): boolean {
    return this.shares.get(this.shareKey(table, id))?.get(userId)?.has(right) ?? false
  }

  /** Table-level check: the caller holds the privilege at any depth. Throws 403 when not. */
  requireTable(userId: string, table: TableDef, access: AccessRight): Depth {
    const d = this.depth(userId, tablePrivilege(access, table))
    if (!d) throw privilegeDenied(userId, tablePrivilege(access, table), table.logicalName)
    return d
  }

  /** Record-level check for a privilege depth already known to be held. */
  rowAllowed(userId: string, table: TableDef, row: Row, access: AccessRight, depth: Depth): boolean {
    if (depth !== 'Basic') return true
    const owner = this.ownerOf(table, row)
    if (owner === null) return table.ownership !== 'user' && table.logicalName !== 'usersettings' && table.logicalName !== 'activityparty'
    if (owner === userId) return true
    if (access === 'Create') return false
    if (table.logicalName === 'activityparty') {
      const act = row.lookups.activityid
      return act ? this.sharedWith(act.table, act.id, userId, access as ShareAccess) : false
    }
    return this.sharedWith(table.logicalName, row.id, userId, access as ShareAccess)
  }

  requireRow(userId: string, table: TableDef, row: Row, access: AccessRight): void {
    const d = this.requireTable(userId, table, access)
    if (!this.rowAllowed(userId, table, row, access, d)) {
      throw privilegeDenied(userId, tablePrivilege(access, table), table.logicalName)
    }
  }

  /** Whether IsSecured may be set on a column (CanBeSecuredForRead/Create/Update): not keys or platform columns. */
  canBeSecured(table: TableDef, column: string): boolean {
    return Object.hasOwn(table.columns, column) && column !== table.primaryKey && !isReadOnly(table, column) && !(table.createOnly?.includes(column) ?? false) && column !== 'statecode' && column !== 'statuscode'
  }

  /** Sets AttributeMetadata.IsSecured. Keeps the System Administrator profile's field permissions in step (it lists every secured column). */
  setSecured(table: string, column: string, secured: boolean): void {
    const def = tableByName(table)
    if (!Object.hasOwn(def.columns, column)) throw new DataverseError('NotFound', 404, `Could not find attribute '${column}' on entity '${table}'.`)
    if (secured && !this.canBeSecured(def, column)) throw new DataverseError('BadRequest', 400, `The attribute '${table}.${column}' cannot be secured (CanBeSecuredForRead, CanBeSecuredForCreate and CanBeSecuredForUpdate are false).`)
    let s = this.securedColumns.get(table)
    if (!s) this.securedColumns.set(table, (s = new Set()))
    const adminPermission = guidFromName(`fieldpermission:${SYSADMIN_FIELD_PROFILE_ID}:${table}.${column}`)
    if (secured) {
      s.add(column)
      this.ensureSysAdminProfile()
      if (!this.store.get('fieldpermission', adminPermission)) {
        this.store.insert('fieldpermission', {
          id: adminPermission,
          values: { entityname: table, attributelogicalname: column, canread: FIELD_ALLOWED, cancreate: FIELD_ALLOWED, canupdate: FIELD_ALLOWED, canreadunmasked: 3 },
          lookups: { fieldsecurityprofileid: { table: 'fieldsecurityprofile', id: SYSADMIN_FIELD_PROFILE_ID } },
        })
      }
    } else {
      s.delete(column)
      if (this.store.get('fieldpermission', adminPermission)) this.store.delete('fieldpermission', adminPermission, Date.now())
    }
  }

  /** Back-compat name of `setSecured(table, column, true)`. */
  secure(table: string, column: string): void {
    this.setSecured(table, column, true)
  }

  private ensureSysAdminProfile(): void {
    if (this.store.get('fieldsecurityprofile', SYSADMIN_FIELD_PROFILE_ID)) return
    this.store.insert('fieldsecurityprofile', {
      id: SYSADMIN_FIELD_PROFILE_ID,
      values: { name: 'System Administrator', description: 'Access to every secured column (maintained by the platform).' },
      lookups: { createdby: null, modifiedby: null },
    })
  }

  isSecured(table: string, column: string): boolean {
    return this.securedColumns.get(table)?.has(column) ?? false
  }

  /** Field security profiles a user belongs to (systemuserprofiles_association). */
  profilesOf(userId: string): string[] {
    const t = this.store.table('systemuserprofiles')
    return t.lookupIndex('systemuserid', userId).flatMap((id) => {
      const v = t.rows.get(id)?.values.fieldsecurityprofileid
      return typeof v === 'string' ? [v] : []
    })
  }

  fieldPermission(userId: string, table: string, column: string): FieldPermission {
    if (!this.isSecured(table, column) || this.isSysAdmin(userId)) return { canRead: true, canCreate: true, canUpdate: true }
    const out: FieldPermission = { canRead: false, canCreate: false, canUpdate: false }
    const perms = this.store.table('fieldpermission')
    for (const profile of this.profilesOf(userId)) {
      for (const id of perms.lookupIndex('_fieldsecurityprofileid_value', profile)) {
        const v = perms.rows.get(id)?.values
        if (!v || String(v.entityname).toLowerCase() !== table || String(v.attributelogicalname).toLowerCase() !== column) continue
        out.canRead ||= v.canread === FIELD_ALLOWED
        out.canCreate ||= v.cancreate === FIELD_ALLOWED
        out.canUpdate ||= v.canupdate === FIELD_ALLOWED
      }
    }
    return out
  }

  /** Returns a per-column read check for projection (fast path when nothing is secured). */
  readCheck(userId: string, table: string): (column: string) => boolean {
    const secured = this.securedColumns.get(table)
    if (!secured || secured.size === 0 || this.isSysAdmin(userId)) return () => true
    const hidden = new Set([...secured].filter((c) => !this.fieldPermission(userId, table, c).canRead))
    return (c) => !hidden.has(c)
  }

  /** All secured columns with the caller's permissions (RetrieveUserFieldPermissions). */
  userFieldPermissions(userId: string): Array<{ EntityName: string; AttributeLogicalName: string; CanRead: boolean; CanCreate: boolean; CanUpdate: boolean }> {
    const out = []
    for (const [table, cols] of this.securedColumns) {
      for (const c of cols) {
        const p = this.fieldPermission(userId, table, c)
        out.push({ EntityName: table, AttributeLogicalName: c, CanRead: p.canRead, CanCreate: p.canCreate, CanUpdate: p.canUpdate })
      }
    }
    return out
  }

  snapshot(): SecuritySnapshot {
    return {
      roles: [...this.roles.values()],
      userRoles: [...this.userRoles].map(([u, s]) => [u, [...s]]),
      shares: [...this.shares].map(([k, m]) => [k, [...m].map(([u, s]) => [u, [...s]] as [string, ShareAccess[]])]),
      securedColumns: [...this.securedColumns].map(([t, s]) => [t, [...s]]),
    }
  }

  load(s: SecuritySnapshot): void {
    this.reset()
    for (const r of s.roles) this.roles.set(r.roleid, r)
    for (const [u, ids] of s.userRoles) this.userRoles.set(u, new Set(ids))
    for (const [k, list] of s.shares) this.shares.set(k, new Map(list.map(([u, rights]) => [u, new Set(rights)])))
    for (const [t, cols] of s.securedColumns) this.securedColumns.set(t, new Set(cols))
  }
}
