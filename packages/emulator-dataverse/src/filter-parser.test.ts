import { describe, expect, test } from 'vitest'
import { DataverseError } from './errors.js'
import { parseFilter } from './odata/filter-parser.js'
import { compileFilter } from './odata/query.js'
import { tableByName } from './schema.js'
import type { Row } from './store/store.js'

const contact = tableByName('contact')
const row = (values: Row['values'], owner: string | null = null, id = '00000000-0000-0000-0000-000000000001'): Row => ({
  id,
  version: 1,
  values,
  lookups: { ownerid: owner ? { table: 'systemuser', id: owner } : null },
})
const matches = (filter: string, r: Row): boolean => compileFilter(contact, parseFilter(filter))(r)
const rejects = (filter: string): DataverseError => {
  try {
    compileFilter(contact, parseFilter(filter))
  } catch (err) {
    expect(err).toBeInstanceOf(DataverseError)
    const e = err as DataverseError
    expect(e.status).toBe(400)
    expect(e.code).toMatch(/^0x[0-9a-f]{8}$/)
    return e
  }
  throw new Error(`filter '${filter}' was accepted`)
}

describe('filter parser', () => {
  const ann = row({ firstname: 'Ann', lastname: "O'Neil", emailaddress1: 'ann@contoso.test', birthdate: '1990-05-01T00:00:00Z', statecode: 0 }, 'aaaaaaaa-0000-0000-0000-000000000001')

  test('comparison operators, case-insensitive strings', () => {
    expect(matches("firstname eq 'ann'", ann)).toBe(true)
    expect(matches("firstname ne 'Ann'", ann)).toBe(false)
    expect(matches('statecode ge 0 and statecode le 0', ann)).toBe(true)
    expect(matches('statecode gt 0', ann)).toBe(false)
    expect(matches('statecode lt 1', ann)).toBe(true)
  })

  test('and / or / not precedence and parentheses', () => {
    expect(matches("firstname eq 'x' or firstname eq 'ann' and statecode eq 0", ann)).toBe(true)
    expect(matches("(firstname eq 'x' or firstname eq 'ann') and statecode eq 1", ann)).toBe(false)
    expect(matches("not (firstname eq 'x')", ann)).toBe(true)
    expect(matches("not firstname eq 'ann'", ann)).toBe(false)
  })

  test('string functions and escaped quotes', () => {
    expect(matches("contains(emailaddress1,'CONTOSO')", ann)).toBe(true)
    expect(matches("startswith(lastname,'o''n')", ann)).toBe(true)
    expect(matches("endswith(emailaddress1,'.test')", ann)).toBe(true)
    expect(matches("contains(jobtitle,'x')", ann)).toBe(false)
  })

  test('null comparisons', () => {
    expect(matches('jobtitle eq null', ann)).toBe(true)
    expect(matches('firstname ne null', ann)).toBe(true)
    expect(matches('jobtitle gt null', ann)).toBe(false)
  })

  test('lookup values and dates', () => {
    expect(matches('_ownerid_value eq AAAAAAAA-0000-0000-0000-000000000001', ann)).toBe(true)
    expect(matches('_ownerid_value eq null', ann)).toBe(false)
    expect(matches('_parentcustomerid_value eq null', ann)).toBe(true)
    expect(matches('birthdate gt 1990-01-01', ann)).toBe(true)
    expect(matches('birthdate lt 1990-05-01T00:00:00Z', ann)).toBe(false)
    expect(matches('contactid eq 00000000-0000-0000-0000-000000000001', ann)).toBe(true)
  })

  test('rejects unknown properties, type mismatches and syntax errors with a clear message', () => {
    expect(rejects("nosuch eq 'x'").message).toContain("Could not find a property named 'nosuch'")
    expect(rejects('firstname eq 5').message).toContain('incompatible types')
    expect(rejects("statecode eq 'x'").message).toContain('incompatible types')
    expect(rejects("contains(statecode,'1')").message).toContain('string property')
    rejects("firstname eq 'unterminated")
    rejects('firstname eq')
    rejects("firstname eq 'a' and")
    rejects('(((')
    rejects("firstname eq 'a')")
    rejects("firstname like 'a'")
    rejects('1 eq 1')
    rejects('')
    rejects("firstname eq 'a' ; drop table")
    rejects('birthdate eq 2024-13-45')
  })

  test('hostile input: deep nesting and huge expressions fail cleanly', () => {
    rejects(`${'('.repeat(5000)}firstname eq 'a'${')'.repeat(5000)}`)
    rejects(`${'not '.repeat(5000)}firstname eq 'a'`)
    rejects(`firstname eq '${'x'.repeat(40_000)}'`)
    rejects('\u0000\u0001')
    // long but legal OR chains are fine (iterative, no recursion per term)
    const long = Array.from({ length: 500 }, (_, i) => `firstname eq 'n${i}'`).join(' or ')
    expect(matches(long, ann)).toBe(false)
  })
})

describe('Microsoft.Dynamics.CRM.In / NotIn', () => {
  const bob = row({ firstname: 'Bob', statecode: 1, emailaddress1: 'BOB@x.test' }, null, '00000000-0000-0000-0000-000000000002')
  test('membership on strings (case-insensitive), ints and ids', () => {
    expect(matches("Microsoft.Dynamics.CRM.In(PropertyName='emailaddress1',PropertyValues=['a@x.test','bob@x.test'])", bob)).toBe(true)
    expect(matches("Microsoft.Dynamics.CRM.In(PropertyName='statecode',PropertyValues=['0'])", bob)).toBe(false)
    expect(matches("Microsoft.Dynamics.CRM.NotIn(PropertyName='statecode',PropertyValues=['0','2'])", bob)).toBe(true)
    expect(matches("Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['00000000-0000-0000-0000-000000000002']) and firstname eq 'bob'", bob)).toBe(true)
  })
  test('malformed In calls are 400s', () => {
    rejects("Microsoft.Dynamics.CRM.In(PropertyName='nosuch',PropertyValues=['a'])")
    rejects("Microsoft.Dynamics.CRM.In(PropertyName='statecode',PropertyValues=['x'])")
    rejects("Microsoft.Dynamics.CRM.In(PropertyName='statecode',PropertyValues=[])")
    rejects("Microsoft.Dynamics.CRM.In(PropertyName='statecode',PropertyValues=['1'")
    rejects("Microsoft.Dynamics.CRM.In(Values=['1'])")
  })
})
