import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type { SimulationReport } from './simulate.js'

let chartJs: string | undefined

/** The Chart.js UMD bundle from node_modules, inlined so the page works offline. */
function chartLibrary(): string {
  if (chartJs === undefined) {
    const main = createRequire(import.meta.url).resolve('chart.js')
    chartJs = readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8').replace(/\/\/# sourceMappingURL=.*$/m, '')
  }
  return chartJs
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!)
const fmt = (x: number | boolean | null) => (x === null ? 'n/a' : typeof x === 'boolean' ? String(x) : Number.isInteger(x) ? String(x) : x.toFixed(1))

/** A self-contained HTML page with the summary table and four plots (no network needed). */
export function renderReportHtml(report: SimulationReport): string {
  const data = JSON.stringify({ series: report.series, conflictPolicies: report.conflictPolicies }).replace(/</g, '\\u003c')
  const rows = Object.entries(report.policies)
    .map(([name, p]) => `<tr><td>${escapeHtml(name)}</td><td>${p.apiCalls}</td><td>${fmt(p.meanStalenessSec)}</td><td>${fmt(p.p50StalenessSec)}</td><td>${fmt(p.p95StalenessSec)}</td><td>${fmt(p.p99StalenessSec)}</td><td>${fmt(p.maxStalenessSec)}</td><td>${p.throttled}</td><td>${fmt(p.conflicts)}</td><td>${fmt(p.lostUpdates)}</td><td>${fmt(p.duplicates)}</td><td>${fmt(p.converged)}</td></tr>`)
    .join('\n')
  const config = escapeHtml(JSON.stringify(report.config))
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Concord simulation report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:24px}.plot{position:relative;height:340px}code{font-size:12px;word-break:break-all}
</style></head><body>
<h1>Concord simulation report</h1>
<p><code>${config}</code></p>
<p>Wall time ${report.wallSeconds} s (${report.mailboxDaysPerSec} mailbox-days per second)${report.budget ? `; adaptive and oracle budget: ${report.budget.requestsPerWindow} requests per day (from ${escapeHtml(report.budget.from)})` : ''}.</p>
<table><thead><tr><th>policy</th><th>API calls</th><th>mean s</th><th>p50 s</th><th>p95 s</th><th>p99 s</th><th>max s</th><th>throttled</th><th>conflicts</th><th>lost updates</th><th>duplicates</th><th>converged</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<div class="grid">
<div><h2>Staleness CDF</h2><div class="plot"><canvas id="cdf"></canvas></div></div>
<div><h2>API calls per hour</h2><div class="plot"><canvas id="calls"></canvas></div></div>
<div><h2>Per-mailbox mean staleness vs change rate</h2><div class="plot"><canvas id="mailboxes"></canvas></div></div>
<div><h2>Conflicts per conflict policy</h2><div class="plot"><canvas id="conflicts"></canvas></div></div>
</div>
<script>${chartLibrary()}</script>
<script id="report-data" type="application/json">${data}</script>
<script>
(function () {
  var d = JSON.parse(document.getElementById('report-data').textContent);
  var colours = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
  var names = Object.keys(d.series.stalenessCdf);
  Chart.defaults.animation = false;
  function opts(x, y, extra) {
    var o = { responsive: true, maintainAspectRatio: false, parsing: false, scales: { x: { type: 'linear', title: { display: true, text: x } }, y: { title: { display: true, text: y } } } };
    for (var k in extra || {}) o[k] = extra[k];
    return o;
  }
  new Chart(document.getElementById('cdf'), { type: 'line', data: { datasets: names.map(function (n, i) {
    return { label: n, borderColor: colours[i % 8], pointRadius: 0, data: d.series.stalenessCdf[n].map(function (p) { return { x: p[0], y: p[1] }; }) };
  }) }, options: opts('staleness (s)', 'fraction of changes') });
  new Chart(document.getElementById('calls'), { type: 'line', data: { datasets: names.map(function (n, i) {
    return { label: n, borderColor: colours[i % 8], pointRadius: 0, data: d.series.callsPerHour[n].map(function (c, h) { return { x: h, y: c }; }) };
  }) }, options: opts('hour', 'API calls') });
  new Chart(document.getElementById('mailboxes'), { type: 'scatter', data: { datasets: names.map(function (n, i) {
    return { label: n, backgroundColor: colours[i % 8], pointRadius: 2, data: d.series.perMailbox[n].map(function (p) { return { x: p[0], y: p[1] }; }) };
  }) }, options: opts('changes per day', 'mean staleness (s)', { parsing: true }) });
  var cps = Object.keys(d.conflictPolicies);
  new Chart(document.getElementById('conflicts'), { type: 'bar', data: { labels: cps, datasets: [{ label: 'conflicts', backgroundColor: '#1f77b4', data: cps.map(function (c) { return d.conflictPolicies[c].conflicts; }) }] },
    options: { responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true, title: { display: true, text: 'conflicts' } } } } });
  document.body.setAttribute('data-rendered', 'true');
})();
</script>
</body></html>
`
}
