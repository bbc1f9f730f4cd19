import { silentLogger, SyncError } from '@concord/engine'
import { expect, test } from 'vitest'
import { computeColumnPermissions, FieldSecurityReader, SYSADMIN_FIELD_PROFILE_ID, type FieldPermissionRow } from './field-security.js'
import { WebApiClient } from './http.js'

const P1 = '11111111-1111-1111-1111-111111111111'
const P2 = '22222222-2222-2222-2222-222222222222'
const OTHER = '33333333-3333-3333-3333-333333333333'
const row = (profile: string, column: string, canread: number, cancreate: number, canupdate: number, entityname = 'contact'): FieldPermissionRow => ({
  entityname,
  attributelogicalname: column,
  canread,
  cancreate,
  canupdate,
  _fieldsecurityprofileid_value: profile,
})

test('computeColumnPermissions: union over the user\'s profiles; 4 = Allowed; other profiles, tables and unsecured columns ignored', () => {
  const secured = { contact: ['jobtitle', 'governmentid', 'birthdate'] }
  const perms = computeColumnPermissions(secured, [P1, P2.toUpperCase()], [
    row(P1, 'jobtitle', 4, 0, 0),
    row(P2, 'JobTitle', 0, 4, 4),
    row(OTHER, 'governmentid', 4, 4, 4), // not the user's profile
    row(P1, 'governmentid', 1, 1, 1), // not 4: not allowed
    row(P1, 'department', 4, 4, 4), // not secured
    row(P1, 'jobtitle', 4, 4, 4, 'account'), // other table
  ])
  expect(perms).toEqual([
    { table: 'contact', column: 'jobtitle', canRead: true, canCreate: true, canUpdate: true },
    { table: 'contact', column: 'governmentid', canRead: false, canCreate: false, canUpdate: false },
    { table: 'contact', column: 'birthdate', canRead: false, canCreate: false, canUpdate: false },
  ])
})

test('computeColumnPermissions: the System Administrator profile grants every secured column', () => {
  expect(computeColumnPermissions({ task: ['description'] }, [SYSADMIN_FIELD_PROFILE_ID], [])).toEqual([{ table: 'task', column: 'description', canRead: true, canCreate: true, canUpdate: true }])
  expect(computeColumnPermissions({}, [P1], [row(P1, 'jobtitle', 4, 4, 4)])).toEqual([])
})

/** A Web API that answers the documented reads with the given bodies (bad remote data cases). */
function readerWith(bodies: Record<string, unknown>): FieldSecurityReader {
  const fakeFetch: typeof fetch = async (input) => {
    const url = decodeURIComponent(String(input))
    if (url.endsWith('/token')) return new Response(JSON.stringify({ access_token: 't', expires_in: 3600 }), { status: 200 })
    const key = Object.keys(bodies).find((k) => url.includes(k))
    return key ? new Response(JSON.stringify(bodies[key]), { status: 200 }) : new Response(JSON.stringify({ error: { code: '0x0', message: `no route ${url}` } }), { status: 404 })
  }
  const http = new WebApiClient({ orgUrl: 'http://127.0.0.1:9', tokenUrl: 'http://127.0.0.1:9/token', clientId: 'c', clientSecret: 's' }, fakeFetch, silentLogger)
  return new FieldSecurityReader(http, { tables: ['contact'], ttlMs: 0 })
}

test('invalid remote payloads become InvalidRemoteData errors naming the field; a bad user id is a Validation error', async () => {
  const user = '44444444-4444-4444-4444-444444444444'
  const secured = { "EntityDefinitions(LogicalName='contact')": { value: [{ LogicalName: 'jobtitle' }] } }
  const noRoles = { systemuserroles_association: { value: [] } }
  const badProfile = readerWith({ ...secured, ...noRoles, systemuserprofiles_association: { value: [{ fieldsecurityprofileid: 'nope' }] } })
  const e1 = await badProfile.permissionsOf(user).catch((e: unknown) => e)
  expect(e1).toBeInstanceOf(SyncError)
  expect((e1 as SyncError).code).toBe('InvalidRemoteData')
  expect((e1 as SyncError).message).toMatch(/value\.0\.fieldsecurityprofileid/)

  const badPermission = readerWith({ ...secured, ...noRoles, systemuserprofiles_association: { value: [{ fieldsecurityprofileid: P1 }] }, fieldpermissions: { value: [{ ...row(P1, 'jobtitle', 4, 4, 4), canread: 'yes' }] } })
  const e2 = await badPermission.permissionsOf(user).catch((e: unknown) => e)
  expect((e2 as SyncError).code).toBe('InvalidRemoteData')
  expect((e2 as SyncError).message).toMatch(/value\.0\.canread/)

  const e3 = await badPermission.permissionsOf('not-a-guid').catch((e: unknown) => e)
  expect((e3 as SyncError).code).toBe('Validation')
  expect((e3 as SyncError).message).toContain("'not-a-guid'")
})
