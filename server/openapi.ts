// OpenAPI 3.1 built from the discovered flows: each flow's published JSON Schema is the request
// (query parameters for GET/DELETE, a JSON body otherwise), its output schema the `data` of the envelope.
// The gateway's own routes (ops, docs, admin) are listed too, from what they declared to Fastify.
import type { AuthPolicy } from '../lib/auth.js'
import type { OwnRoute } from './own-routes.js'
import type { FlowRoute } from './routes.js'

const envelopeOf = (data: unknown) => ({
  type: 'object',
  required: ['success', 'status', 'data', 'traceId'],
  properties: { success: { const: true }, status: { type: 'integer' }, data, traceId: { type: 'string', pattern: '^[0-9a-f]{32}$' } },
})

const ErrorEnvelope = {
  type: 'object',
  required: ['success', 'status', 'errorCode', 'message', 'traceId'],
  properties: {
    success: { const: false },
    status: { type: 'integer' },
    errorCode: { type: 'string' },
    message: { type: 'string' },
    detailed: { type: 'array', items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } } },
    traceId: { type: 'string' },
  },
}

function strip(schema: Record<string, unknown> | undefined): Record<string, unknown> {
  return schema ?? {}
}

const oaPathOf = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
const authText = (auth: AuthPolicy) => (typeof auth === 'string' ? auth : auth.roles.join(', '))

/** Parameters of an own route from its TypeBox params/querystring schemas. */
function ownParameters(route: OwnRoute) {
  const of = (schema: Record<string, unknown> | undefined, where: 'path' | 'query') => {
    const props = (schema?.properties ?? {}) as Record<string, unknown>
    const required = new Set((schema?.required ?? []) as string[])
    return Object.entries(props).map(([name, s]) => ({ name, in: where, required: where === 'path' || required.has(name), schema: s }))
  }
  return [...of(route.params, 'path'), ...of(route.querystring, 'query')]
}

export function openApiDocument(routes: readonly FlowRoute[], own: readonly OwnRoute[] = []) {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of own) {
    const op: Record<string, unknown> = {
      operationId: `gateway ${r.method} ${r.path}`,
      summary: r.summary ?? `${r.method} ${r.path}`,
      description: 'Served by the gateway itself',
      tags: ['gateway'],
      parameters: ownParameters(r),
      responses: { '200': { description: 'Success' }, default: { description: 'Failure', content: { 'application/json': { schema: ErrorEnvelope } } } },
    }
    if (r.auth !== 'public') op.security = [{ bearer: [] }]
    paths[oaPathOf(r.path)] = { ...paths[oaPathOf(r.path)], [r.method.toLowerCase()]: op }
  }
  for (const r of routes) {
    const oaPath = oaPathOf(r.path)
    const pathParams = [...r.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!)
    const props = (r.inputSchema.properties ?? {}) as Record<string, unknown>
    const required = new Set((r.inputSchema.required ?? []) as string[])
    const inQuery = r.method === 'GET' || r.method === 'DELETE'
    const parameters = Object.entries(props)
      .filter(([name]) => pathParams.includes(name) || inQuery)
      .map(([name, schema]) => ({
        name,
        in: pathParams.includes(name) ? 'path' : 'query',
        required: pathParams.includes(name) || required.has(name),
        schema,
      }))
    const op: Record<string, unknown> = {
      operationId: r.flow,
      summary: r.summary ?? r.flow,
      description: `NATS subject \`${r.subject}\``,
      parameters,
      responses: {
        [String(r.successStatus)]: { description: 'Success', content: { 'application/json': { schema: envelopeOf(strip(r.outputSchema)) } } },
        default: { description: 'Failure', content: { 'application/json': { schema: ErrorEnvelope } } },
      },
    }
    if (!inQuery) {
      const content: Record<string, unknown> = { 'application/json': { schema: r.inputSchema } }
      if (r.form) content['application/x-www-form-urlencoded'] = { schema: r.inputSchema }
      op.requestBody = { required: true, content }
    }
    if (r.auth !== 'public') op.security = [{ bearer: [] }]
    paths[oaPath] = { ...paths[oaPath], [r.method.toLowerCase()]: op }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Flowgate', version: '1', description: 'Flows discovered on the message bus, and the gateway\'s own routes' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    paths,
  }
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** A plain HTML index of the routes (no external assets: works offline), linking the JSON document. */
export function docsPage(routes: readonly FlowRoute[], own: readonly OwnRoute[] = []): string {
  const rows = routes
    .map(
      (r) =>
        `<tr><td><code>${r.method}</code></td><td><code>${escape(r.path)}</code></td><td>${escape(r.summary ?? '')}</td>` +
        `<td><code>${escape(r.subject)}</code></td><td>${escape(authText(r.auth))}</td>` +
        `<td><details><summary>schema</summary><pre>${escape(JSON.stringify(r.inputSchema, null, 2))}</pre></details></td></tr>`,
    )
    .concat(
      own.map(
        (r) =>
          `<tr><td><code>${r.method}</code></td><td><code>${escape(r.path)}</code></td><td>${escape(r.summary ?? '')}</td>` +
          `<td>(the gateway)</td><td>${escape(authText(r.auth))}</td><td></td></tr>`,
      ),
    )
    .join('\n')
  return `<!doctype html><html><head><meta charset="utf-8"><title>Flowgate API</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.4rem .8rem;text-align:left;vertical-align:top}pre{font-size:.8rem}</style>
</head><body><h1>Flowgate API</h1><p>OpenAPI 3.1 document: <a href="/docs/json">/docs/json</a>. Every answer is the envelope <code>{success, status, data | errorCode, message, detailed, traceId}</code>.</p>
<table><tr><th>method</th><th>path</th><th>summary</th><th>NATS subject</th><th>auth</th><th>input</th></tr>
${rows}
</table></body></html>`
}
