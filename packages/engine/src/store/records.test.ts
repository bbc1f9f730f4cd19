import { describe, expect, it } from 'vitest'
import { asReplicaId, asVersion } from '../ids.js'
import { deepFreeze } from '../util/deep-freeze.js'
import { withAgreedFields } from './records.js'

describe('withAgreedFields', () => {
  it('a first agreement keeps frozen fields as they are (shared with the push that carried them) and counts each field once', () => {
    const agreed = deepFreeze({ subject: 'Hello', to: [{ address: 'a@b.test' }] })
    const base = withAgreedFields(undefined, 'email', agreed)
    expect(base.fields).toBe(agreed)
    expect(base).toEqual({ kind: 'email', fields: agreed, fieldVersions: { subject: 1, to: 1 }, versions: {} })
  })

  it('copies unfrozen fields, so the caller may go on changing its own', () => {
    const agreed: Record<string, unknown> = { subject: 'Hello' }
    const base = withAgreedFields(undefined, 'email', agreed)
    agreed.subject = 'Changed'
    expect(base.fields).toEqual({ subject: 'Hello' })
  })

  it('a later agreement changes a new record: fields in their first order, versions counted on, the previous record untouched', () => {
    const first = deepFreeze(withAgreedFields(undefined, 'contact', deepFreeze({ givenName: 'Ann', surname: 'Lee' })))
    const next = withAgreedFields({ ...first, versions: { [asReplicaId('crm')]: asVersion('v1') } }, 'contact', { surname: 'Li', jobTitle: 'CTO' })
    expect(Object.keys(next.fields)).toEqual(['givenName', 'surname', 'jobTitle'])
    expect(next.fields).toEqual({ givenName: 'Ann', surname: 'Li', jobTitle: 'CTO' })
    expect(next.fieldVersions).toEqual({ givenName: 1, surname: 2, jobTitle: 1 })
    expect(next.versions).toEqual({ crm: 'v1' })
    expect(first.fields).toEqual({ givenName: 'Ann', surname: 'Lee' })
  })

  it('keeps a "__proto__" field as data (a hostile payload sets no prototype)', () => {
    const agreed = JSON.parse('{"__proto__": {"polluted": true}, "subject": "s"}') as Record<string, unknown>
    const first = withAgreedFields(undefined, 'email', {})
    const next = withAgreedFields(first, 'email', agreed)
    expect(Object.getPrototypeOf(next.fields)).toBe(Object.prototype)
    expect(Object.prototype.hasOwnProperty.call(next.fields, '__proto__')).toBe(true)
    expect(next.fieldVersions.subject).toBe(1)
  })
})
