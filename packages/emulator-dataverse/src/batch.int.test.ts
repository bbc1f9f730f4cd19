import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startDataverseEmulator, type DataverseEmulator } from './index.js'
import { apiClient, type ApiClient } from './test-support.js'

let emu: DataverseEmulator
let c: ApiClient

beforeAll(async () => {
  emu = await startDataverseEmulator()
  c = await apiClient(emu)
})
afterAll(async () => {
  await emu.close()
})

interface Op {
  method: string
  url: string
  body?: unknown
  contentId?: string
  headers?: Record<string, string>
}

function httpPart(op: Op): string {
  const lines = ['Content-Type: application/http', 'Content-Transfer-Encoding: binary']
  if (op.contentId) lines.push(`Content-ID: ${op.contentId}`)
  lines.push('', `${op.method} ${op.url} HTTP/1.1`)
  if (op.body !== undefined) lines.push('Content-Type: application/json; type=entry')
  for (const [k, v] of Object.entries(op.headers ?? {})) lines.push(`${k}: ${v}`)
  lines.push('', op.body !== undefined ? JSON.stringify(op.body) : '')
  return lines.join('\r\n')
}

function batchBody(items: Array<Op | Op[]>): { boundary: string; body: string } {
  const boundary = 'batch_test123'
  let body = ''
  items.forEach((item, i) => {
    body += `--${boundary}\r\n`
    if (Array.isArray(item)) {
      const cs = `changeset_${i}`
      body += `Content-Type: multipart/mixed; boundary=${cs}\r\n\r\n`
      for (const op of item) body += `--${cs}\r\n${httpPart(op)}\r\n`
      body += `--${cs}--\r\n`
    } else {
      body += `${httpPart(item)}\r\n`
    }
  })
  body += `--${boundary}--\r\n`
  return { boundary, body }
}

async function sendBatch(items: Array<Op | Op[]>, prefer?: string) {
  const { boundary, body } = batchBody(items)
  const headers: Record<string, string> = { 'Content-Type': `multipart/mixed; boundary=${boundary}` }
  if (prefer) headers.Prefer = prefer
  return c.request('POST', '$batch', { raw: body, headers })
}

const statuses = (text: string): number[] => [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]))

describe('$batch', () => {
  test('mixed GET and change set; Content-ID references; response is multipart/mixed', async () => {
    const r = await sendBatch([
      [
        { method: 'POST', url: `${emu.apiUrl}/accounts`, body: { name: 'Batch Co' }, contentId: '1' },
        { method: 'POST', url: '/api/data/v9.2/contacts', body: { lastname: 'InBatch', 'parentcustomerid_account@odata.bind': '$1' }, contentId: '2' },
      ],
      { method: 'GET', url: "contacts?$select=lastname,_parentcustomerid_value&$filter=lastname eq 'InBatch'" },
    ])
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toMatch(/^multipart\/mixed; boundary=batchresponse_/)
    expect(statuses(r.text)).toEqual([204, 204, 200])
    expect(r.text).toContain('Content-ID: 1')
    expect(r.text).toMatch(/OData-EntityId: http:\/\/127\.0\.0\.1:\d+\/api\/data\/v9\.2\/accounts\(/)
    const m = /"value":\[(.*)\]/.exec(r.text)
    expect(m?.[1]).toContain('"lastname":"InBatch"')
    expect(m?.[1]).not.toContain('"_parentcustomerid_value":null')
  })

  test('per-operation impersonation with CallerObjectId inside a batch', async () => {
    const dan = emu.admin.addUser({ email: 'dan@contoso.test' })
    const r = await sendBatch([
      [{ method: 'POST', url: 'contacts', body: { lastname: 'ByDan' }, headers: { CallerObjectId: dan.azureactivedirectoryobjectid } }],
      { method: 'GET', url: "contacts?$select=_ownerid_value&$filter=lastname eq 'ByDan'" },
    ])
    expect(statuses(r.text)).toEqual([204, 200])
    expect(r.text).toContain(`"_ownerid_value":"${dan.systemuserid}"`)
  })

  test('a failing operation rolls back the whole change set', async () => {
    const before = (await c.get('contacts/$count')).text
    const r = await sendBatch([
      [
        { method: 'POST', url: 'contacts', body: { lastname: 'Rollback1' } },
        { method: 'POST', url: 'contacts', body: { lastname: 'Rollback2' } },
        { method: 'POST', url: 'contacts', body: { nosuchcolumn: 1 } },
      ],
    ])
    expect(r.status).toBe(200)
    expect(statuses(r.text)).toEqual([400])
    expect(r.text).toContain("The property 'nosuchcolumn' does not exist")
    expect((await c.get('contacts/$count')).text).toBe(before)
    expect((await c.get("contacts?$filter=startswith(lastname,'Rollback')")).json.value).toEqual([])
  })

  test('without continue-on-error the batch stops at the first failure; with it, it continues', async () => {
    const ops: Op[] = [
      { method: 'GET', url: 'contacts(00000000-0000-0000-0000-000000000099)' },
      { method: 'POST', url: 'accounts', body: { name: 'After failure' } },
    ]
    expect(statuses((await sendBatch(ops)).text)).toEqual([404])
    expect(statuses((await sendBatch(ops, 'odata.continue-on-error')).text)).toEqual([404, 204])
  })

  test('1,000 operations are accepted; 1,001 are rejected', async () => {
    const ops: Op[] = Array.from({ length: 1000 }, () => ({ method: 'GET', url: 'WhoAmI' }))
    const ok = await sendBatch(ops)
    expect(statuses(ok.text)).toEqual(Array.from({ length: 1000 }, () => 200))
    const tooMany = await sendBatch([...ops, [{ method: 'POST', url: 'contacts', body: { lastname: 'x' } }]])
    expect(tooMany.status).toBe(400)
    expect(tooMany.json.error.message).toContain('1000')
  })

  test('malformed batches are 400, not crashes', async () => {
    const noBoundary = await c.request('POST', '$batch', { raw: 'x', headers: { 'Content-Type': 'multipart/mixed' } })
    expect(noBoundary.status).toBe(400)
    const badLine = await c.request('POST', '$batch', {
      raw: '--b\r\nContent-Type: application/http\r\n\r\nFROB contacts HTTP/1.1\r\n\r\n--b--',
      headers: { 'Content-Type': 'multipart/mixed; boundary=b' },
    })
    expect(badLine.status).toBe(400)
    const getInChangeset = await sendBatch([[{ method: 'GET', url: 'contacts' }]])
    expect(getInChangeset.status).toBe(400)
  })
})
