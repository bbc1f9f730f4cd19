import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import puppeteer from 'puppeteer-core'
import { afterAll, expect, test } from 'vitest'
import { renderReportHtml } from './report-html.js'
import { simulate } from './simulate.js'

const CHROMIUM = '/usr/bin/chromium'
let dir: string | undefined

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
})

test('report.html renders every plot in headless Chromium, offline, without console errors', async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: this test needs Debian's Chromium. Install it with: apt-get install -y chromium`)
  const report = await simulate({ mailboxes: 2, days: 1, warmupDays: 0, seed: 5, policies: ['fixed:5', 'sss', 'adaptive'], budgetFrom: 'fixed:5', conflictPolicies: ['crm-wins'], mode: 'fast', engine: 'real', store: 'memory', notifications: false, notificationLoss: 0, requestLatencyMs: 120 })
  dir = await mkdtemp(join(tmpdir(), 'sim-html-'))
  const file = join(dir, 'report.html')
  await writeFile(file, renderReportHtml(report))
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  try {
    const page = await browser.newPage()
    const problems: string[] = []
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`)
    })
    page.on('pageerror', (error) => problems.push(`page error: ${String(error)}`))
    // the page must not fetch anything: it is self-contained
    await page.setRequestInterception(true)
    page.on('request', (request) => {
      if (request.url().startsWith('file:')) void request.continue()
      else {
        problems.push(`network request: ${request.url()}`)
        void request.abort()
      }
    })
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' })
    await page.waitForSelector('body[data-rendered="true"]', { timeout: 20_000 })
    const plots = await page.evaluate(() =>
      ['cdf', 'calls', 'mailboxes', 'conflicts'].map((id) => {
        const canvas = document.getElementById(id) as HTMLCanvasElement
        const ctx = canvas.getContext('2d')!
        const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height)
        let painted = 0
        for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) painted++
        type Point = { x?: number }
        const chart = (window as unknown as { Chart: { getChart(c: HTMLCanvasElement): { data: { datasets: Array<{ data: unknown[] }> }; scales: Record<string, { min: number; max: number }> } | undefined } }).Chart.getChart(canvas)
        // every point lies inside the x axis (Chart.js silently clips unsorted data when parsing is off)
        const xs = (chart?.data.datasets ?? []).flatMap((d) => d.data.map((p) => (p as Point).x)).filter((x): x is number => typeof x === 'number')
        const inRange = xs.every((x) => x >= chart!.scales.x!.min && x <= chart!.scales.x!.max)
        return { id, width: canvas.width, height: canvas.height, painted, inRange, datasets: chart?.data.datasets.length ?? 0, points: chart?.data.datasets.reduce((s, d) => s + d.data.length, 0) ?? 0 }
      }),
    )
    expect(problems).toEqual([])
    for (const plot of plots) {
      expect(plot.width, plot.id).toBeGreaterThan(100)
      expect(plot.height, plot.id).toBeGreaterThan(100)
      expect(plot.painted, plot.id).toBeGreaterThan(500)
      expect(plot.datasets, plot.id).toBeGreaterThan(0)
      expect(plot.points, plot.id).toBeGreaterThan(0)
      expect(plot.inRange, plot.id).toBe(true)
    }
    const rows = await page.$$eval('tbody tr', (trs) => trs.map((tr) => tr.querySelector('td')?.textContent))
    expect(rows).toEqual(['fixed:5', 'sss', 'adaptive'])
  } finally {
    await browser.close()
  }
})
