// The trace pages as HTML: a waterfall of one request's steps and the list of recent requests.
// Server-rendered, no script at all and no inline style: bars are placed by classes of a static
// stylesheet (1 % steps), so a strict CSP (style-src 'self') holds and the page works with
// JavaScript off. Every value that came from a flow or a client is escaped.
import type { RecentRequest } from './recent.js'
import { formatMs, type RequestSpan, type Waterfall } from '../lib/waterfall.js'

export const TRACE_CSS_PATH = '/traces/trace.css'

/** The page's own CSP: nothing but its stylesheet loads, no script runs, nothing frames it. */
export const PAGE_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const pct = (part: number, whole: number) => (whole <= 0 ? 0 : Math.max(0, Math.min(100, Math.round((part / whole) * 100))))

function layout(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><link rel="stylesheet" href="${TRACE_CSS_PATH}"></head>
<body><header><a href="/traces">Recent traces</a></header><main>${body}</main></body></html>`
}

/** The waterfall of one trace; `request` is the gateway's own record of it, when this gateway served it. */
export function traceHtml(w: Waterfall, recorded: number, request: RequestSpan | undefined): string {
  const total = w.totalMs
  const bar = (offsetMs: number, durationMs: number, cls: string) => {
    const left = pct(offsetMs, total)
    const width = Math.max(1, Math.min(100 - left, pct(durationMs, total)))
    return `<div class="track"><div class="bar ${cls} l${left} w${width}"></div></div>`
  }
  const rows: string[] = []
  if (request) {
    rows.push(
      `<tr class="request"><td class="name">${escapeHtml(`${request.method} ${request.route}`)}</td><td class="num">0.00 ms</td>` +
        `<td class="num duration">${formatMs(request.durationMs)}</td><td>${request.status}</td><td>gateway</td><td>${bar(request.startedAt - w.startedAt, request.durationMs, 'gateway')}</td></tr>`,
    )
  }
  for (const r of w.rows) {
    const outcome = r.outcome === 'ok' ? 'ok' : `error ${r.errorCode ?? ''}`
    const name = r.kind === 'run' ? `flow ${r.name}` : r.name
    rows.push(
      `<tr class="${r.kind} ${r.outcome}" data-step="${escapeHtml(r.path)}"><td class="name d${r.depth}" title="${escapeHtml(r.path)}">${escapeHtml(name)}</td>` +
        `<td class="num offset">${formatMs(r.offsetMs)}</td><td class="num duration">${formatMs(r.durationMs)}</td>` +
        `<td class="outcome">${escapeHtml(outcome)}</td><td class="worker">${escapeHtml(r.worker ?? '')}</td>` +
        `<td>${bar(r.offsetMs, r.durationMs, r.kind === 'run' && r.outcome === 'ok' ? 'run' : r.outcome)}</td></tr>`,
    )
  }
  const shown = w.rows.filter((r) => r.kind === 'step').length
  const bound = shown < recorded ? `<p class="bound">Showing ${shown} of ${recorded} recorded steps.</p>` : ''
  const summary =
    `<dl><dt>trace</dt><dd><code>${escapeHtml(w.traceId)}</code></dd>` +
    `<dt>flow</dt><dd>${escapeHtml(w.flows.join(', ') || 'none')}</dd>` +
    `<dt>duration</dt><dd>${formatMs(total)}</dd>` +
    `<dt>steps</dt><dd>${recorded}</dd>` +
    `<dt>worker</dt><dd>${escapeHtml(w.workers.join(', ') || 'unknown')}</dd>` +
    `<dt>json</dt><dd><a href="/traces/${escapeHtml(w.traceId)}?format=json">this trace as JSON</a></dd></dl>`
  const table =
    `<table class="waterfall"><thead><tr><th>step</th><th>start</th><th>duration</th><th>outcome</th><th>worker</th><th class="timeline">timeline</th></tr></thead>` +
    `<tbody>${rows.join('\n')}</tbody></table>`
  return layout(`Trace ${w.traceId}`, `<h1>Trace <code>${escapeHtml(w.traceId)}</code></h1>${summary}${bound}${table}`)
}

/** A trace page for a trace with nothing to show (no steps, stream away): the reason, in the page. */
export function traceMessageHtml(traceId: string, status: number, message: string): string {
  return layout(`Trace ${traceId}`, `<h1>Trace <code>${escapeHtml(traceId)}</code></h1><p class="message status${status}">${escapeHtml(message)}</p>`)
}

/** The sign-in form for a browser: an admin token pasted once, kept in an HttpOnly cookie for the trace pages. */
export function signInHtml(next: string, problem?: string): string {
  return layout(
    'Sign in to the trace pages',
    `<h1>Sign in</h1>${problem ? `<p class="message problem">${escapeHtml(problem)}</p>` : ''}` +
      `<p>The trace pages are for admins. Paste an admin token (<code>POST /api/v1/admin/login</code> gives one); ` +
      `it is kept in a cookie that only the trace pages read, for as long as the token lasts and at most an hour.</p>` +
      `<form method="post" action="/traces/session"><input type="hidden" name="next" value="${escapeHtml(next)}">` +
      `<label>admin token<br><textarea name="token" rows="4" cols="80" required></textarea></label><br><button>Sign in</button></form>`,
  )
}

export interface ListQuery {
  flow?: string
  status?: number
  minDurationMs?: number
}

/** Recent requests, newest first, each linking to its trace; the filter form works without script (GET). */
export function traceListHtml(entries: readonly RecentRequest[], query: ListQuery): string {
  const rows = entries
    .map(
      (e) =>
        `<tr><td><a href="/traces/${escapeHtml(e.traceId)}"><code>${escapeHtml(e.traceId)}</code></a></td>` +
        `<td>${new Date(e.startedAt).toISOString()}</td><td>${escapeHtml(e.method)} ${escapeHtml(e.route)}</td>` +
        `<td>${escapeHtml(e.flow ?? '')}</td><td>${e.status}</td><td class="num">${formatMs(e.durationMs)}</td></tr>`,
    )
    .join('\n')
  const value = (v: string | number | undefined) => (v === undefined ? '' : escapeHtml(String(v)))
  const form =
    `<form method="get" action="/traces"><label>flow <input name="flow" value="${value(query.flow)}" maxlength="128"></label> ` +
    `<label>status <input name="status" value="${value(query.status)}" size="4" maxlength="3" placeholder="5 or 503"></label> ` +
    `<label>min duration (ms) <input name="minDurationMs" value="${value(query.minDurationMs)}" size="6"></label> <button>Filter</button></form>`
  return layout(
    'Recent traces',
    `<h1>Recent traces</h1>${form}<table class="list"><thead><tr><th>trace</th><th>at</th><th>route</th><th>flow</th><th>status</th><th>duration</th></tr></thead><tbody>${rows}</tbody></table>` +
      (entries.length === 0 ? '<p class="message">No request matches.</p>' : ''),
  )
}

/** The page's stylesheet, built once: bar offsets and widths as classes l0..l100 and w0..w100. */
export function traceCss(): string {
  const steps: string[] = []
  for (let i = 0; i <= 100; i++) steps.push(`.l${i}{margin-left:${i}%}.w${i}{width:${i}%}`)
  const depths: string[] = []
  for (let i = 0; i <= 32; i++) depths.push(`.d${i}{padding-left:${0.4 + i * 1.2}rem}`)
  return `body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2330}header{margin-bottom:1rem}
code{font-family:ui-monospace,monospace}dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{color:#667}dd{margin:0}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #e3e6ec;padding:.3rem .6rem;text-align:left;font-size:.9rem;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}th.timeline{width:45%}td.name{overflow:hidden;text-overflow:ellipsis;max-width:28rem}
.track{background:#f2f4f8;height:.9rem;width:100%}.bar{height:.9rem;background:#3b7dd8}.bar.gateway{background:#7a8699}.bar.error{background:#d8453b}
tr.error td.outcome{color:#b3261e;font-weight:600}tr.request td,tr.run td.name{font-weight:600}.bar.run{background:#5b6fb5}.bound,.message{color:#667}form{margin:1rem 0}
${steps.join('')}
${depths.join('')}
`
}
