// The catch-all route: whatever no ops route claims goes to what the resolver says serves it (a
// flow route, a proxy route), else 404 or 405. It lives in its own scope for its body parser: a
// flow's body is read (bounded) and parsed as JSON or, for the flows that take forms, as a form
// (./form-body.ts); any other type is a 415; a proxy route's body is left unread, so it streams to
// the upstream as it came. GET and HEAD bodies are never parsed.
import type { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errors, FlowgateError } from '../lib/errors.js'
import type { FlowHandler } from './flow-route.js'
import { FORM_TYPE, parseForm } from './form-body.js'
import { CATCH_ALL } from './hooks.js'
import { targetOf, type Resolver } from './resolver.js'
import { readLimited } from './upstream/body.js'
import type { ProxyHandler } from './upstream/proxy.js'
import { upgradeOf } from './upstream/ws-upgrade.js'

export interface CatchAllDeps {
  resolver: Resolver
  callFlow: FlowHandler
  proxy: ProxyHandler
  /** A WebSocket upgrade on a proxy route (the upgrade guard let only those allowing it through). */
  proxyUpgrade: ProxyHandler
  bodyLimitBytes: number
  /** Methods the catch-all takes (OPTIONS is left to CORS when CORS is on). */
  methods: string[]
  /** The answer for a request nothing serves (404, or 405 with Allow). */
  notServed: (request: FastifyRequest) => FlowgateError
}

type Done = (err: Error | null, body?: unknown) => void

export async function registerCatchAll(app: FastifyInstance, deps: CatchAllDeps): Promise<void> {
  const { resolver, callFlow, proxy, bodyLimitBytes } = deps
  await app.register(async function catchAllScope(scope) {
    const parseJson = scope.getDefaultJsonParser('error', 'error')
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', function routeBody(request: FastifyRequest, payload: NodeJS.ReadableStream, done: Done) {
      const target = targetOf(request, resolver)
      // A proxy route streams it; no route answers 404/405 without reading it.
      if (target === undefined || target.kind === 'proxy') return done(null, undefined)
      const type = mediaType(request.headers['content-type'])
      if (type === FORM_TYPE && target.route.form) {
        return readBody(request, payload, bodyLimitBytes, (err, text) => {
          if (err) return done(err)
          try {
            done(null, parseForm(text!))
          } catch (refused) {
            done(refused as Error)
          }
        })
      }
      if (type !== 'application/json') return done(errors.unsupportedMediaType('Send the body as application/json'))
      readBody(request, payload, bodyLimitBytes, (err, text) => (err ? done(err) : parseJson(request, text!, done)))
    })
    scope.route({
      method: deps.methods,
      url: CATCH_ALL,
      exposeHeadRoute: false,
      handler: async function route(request: FastifyRequest, reply: FastifyReply) {
        const target = targetOf(request, resolver)
        if (target?.kind === 'flow') return callFlow(request, reply, target)
        if (target?.kind === 'proxy') return upgradeOf(request.raw)?.websocket ? deps.proxyUpgrade(request, reply, target) : proxy(request, reply, target)
        throw deps.notServed(request)
      },
    })
  })
}

/** The media type of a Content-Type header, without its parameters, lower-cased. */
export function mediaType(type: string | undefined): string {
  if (type === undefined) return ''
  const semi = type.indexOf(';')
  return (semi === -1 ? type : type.slice(0, semi)).trim().toLowerCase()
}

/** The body as text, at most `limit` bytes, checked against Content-Length (as Fastify's own reader does). */
function readBody(request: FastifyRequest, payload: NodeJS.ReadableStream, limit: number, done: (err: Error | null, text?: string) => void): void {
  const declared = Number(request.headers['content-length'])
  if (declared > limit) return done(errors.payloadTooLarge('Request body is larger than the limit'))
  readLimited(payload as Readable, limit).then(
    (body) => {
      if (body === undefined) return done(errors.payloadTooLarge('Request body is larger than the limit'))
      if (!Number.isNaN(declared) && body.length !== declared) return done(new FlowgateError('VALIDATION_ERROR', 'Content-Length does not match the body', { stack: false }))
      done(null, body.toString('utf8'))
    },
    () => done(new FlowgateError('VALIDATION_ERROR', 'The request body could not be read', { stack: false })),
  )
}
