/**
 * Benchmark: seed N contacts, pull them over HTTP with change tracking (maxpagesize 5000), then a
 * delta round after M updates, then $batch writes. Run: npx tsx bench/dataverse-bench.ts [N]
 */
import { startDataverseEmulator } from '../src/index.js'
import { apiClient } from '../src/test-support.js'

const N = Number(process.argv[2] ?? 10_000)
const emu = await startDataverseEmulator({ limits: { requestsPerWindow: 1_000_000 } })
const c = await apiClient(emu)

for (let i = 0; i < N; i++) {
  emu.admin.createRecord('contacts', { firstname: `First${i}`, lastname: `Last${i}`, emailaddress1: `c${i}@bench.test`, telephone1: '+1 555 0100', jobtitle: 'Engineer' })
}

async function pull(url: string, prefer: string): Promise<{ rows: number; pages: number; deltaLink: string }> {
  let r = await c.get(url, { Prefer: prefer })
  let rows = 0
  let pages = 0
  for (;;) {
    if (r.status !== 200) throw new Error(`pull failed: ${r.status} ${r.text.slice(0, 200)}`)
    pages++
    rows += r.json.value.length
    if (r.json['@odata.deltaLink']) return { rows, pages, deltaLink: r.json['@odata.deltaLink'] }
    r = await c.get(r.json['@odata.nextLink'], { Prefer: 'odata.maxpagesize=5000' })
  }
}

const select = 'contacts?$select=firstname,lastname,emailaddress1,telephone1,jobtitle'
let t0 = performance.now()
const initial = await pull(select, 'odata.track-changes,odata.maxpagesize=5000')
const initialMs = performance.now() - t0
console.log(`initial change-tracking pull: ${initial.rows} rows in ${initial.pages} pages, ${initialMs.toFixed(0)} ms → ${Math.round((initial.rows / initialMs) * 1000)} rows/s`)

const ids = [...emu.admin.rows('contacts')].map((r) => r.id)
t0 = performance.now()
const batchSize = 1000
const batches = 5
let ops = 0
for (let b = 0; b < batches; b++) {
  const boundary = `batch_${b}`
  const cs = `changeset_${b}`
  let body = `--${boundary}\r\nContent-Type: multipart/mixed; boundary=${cs}\r\n\r\n`
  for (let i = 0; i < batchSize; i++) {
    const id = ids[(b * batchSize + i) % ids.length]
    body += `--${cs}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: ${i + 1}\r\n\r\nPATCH ${emu.apiUrl}/contacts(${id}) HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{"jobtitle":"Updated ${b}"}\r\n`
  }
  body += `--${cs}--\r\n--${boundary}--\r\n`
  const r = await c.request('POST', '$batch', { raw: body, headers: { 'Content-Type': `multipart/mixed; boundary=${boundary}` } })
  if (r.status !== 200 || (r.text.match(/HTTP\/1\.1 204/g) ?? []).length !== batchSize) throw new Error(`batch failed: ${r.status} ${r.text.slice(0, 300)}`)
  ops += batchSize
}
const batchMs = performance.now() - t0
console.log(`$batch writes: ${ops} PATCH ops in ${batches} batches of ${batchSize} (one change set each), ${batchMs.toFixed(0)} ms → ${Math.round((ops / batchMs) * 1000)} writes/s`)

t0 = performance.now()
let creates = 0
for (let b = 0; b < 3; b++) {
  const boundary = `batchc_${b}`
  const cs = `changesetc_${b}`
  let body = `--${boundary}\r\nContent-Type: multipart/mixed; boundary=${cs}\r\n\r\n`
  for (let i = 0; i < batchSize; i++) {
    const party = `{"addressused":"c${i}@bench.test","participationtypemask":2}`
    body += `--${cs}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: ${i + 1}\r\n\r\nPOST ${emu.apiUrl}/emails HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{"subject":"Bench ${b}-${i}","messageid":"<${b}-${i}@bench.test>","email_activity_parties":[${party}]}\r\n`
  }
  body += `--${cs}--\r\n--${boundary}--\r\n`
  const r = await c.request('POST', '$batch', { raw: body, headers: { 'Content-Type': `multipart/mixed; boundary=${boundary}` } })
  if (r.status !== 200 || (r.text.match(/HTTP\/1\.1 204/g) ?? []).length !== batchSize) throw new Error(`create batch failed: ${r.status} ${r.text.slice(0, 300)}`)
  creates += batchSize
}
const createMs = performance.now() - t0
console.log(`$batch creates: ${creates} email POSTs with a resolved To party (3 batches of ${batchSize}), ${createMs.toFixed(0)} ms → ${Math.round((creates / createMs) * 1000)} creates/s`)

t0 = performance.now()
const delta = await pull(initial.deltaLink, 'odata.maxpagesize=5000')
const deltaMs = performance.now() - t0
console.log(`delta round after ${ops} updates: ${delta.rows} rows in ${delta.pages} pages, ${deltaMs.toFixed(0)} ms → ${Math.round((delta.rows / deltaMs) * 1000)} rows/s`)
await emu.close()
