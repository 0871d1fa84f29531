// The request body on its way up: none, a small one held whole (the replay buffer of a request that
// may be retried), or the client's stream passed on once (a chunked one cut off past its limit).
import type { Readable } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import { errors } from '../../lib/errors.js'

export type Body = Buffer | Readable | AsyncIterable<Buffer> | null

/** -1: no body; Infinity: chunked (length unknown); else Content-Length. */
export function bodyLength(request: FastifyRequest): number {
  const te = request.headers['transfer-encoding']
  if (te !== undefined) return Number.POSITIVE_INFINITY
  const cl = request.headers['content-length']
  if (cl === undefined || cl === '0') return -1
  return Number(cl)
}

/** Reads a body of known, small length (the replay buffer). */
export function readAll(raw: Readable, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    raw.on('data', (c: Buffer) => {
      size += c.length
      chunks.push(c)
    })
    raw.once('end', () => resolve(Buffer.concat(chunks, Math.min(size, length))))
    raw.once('error', reject)
    raw.once('close', () => {
      if (!raw.readableEnded) reject(new Error('client aborted the upload'))
    })
  })
}

/** A chunked body, cut off past `limit` bytes. */
export async function* limited(raw: Readable, limit: number): AsyncGenerator<Buffer> {
  let size = 0
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw errors.payloadTooLarge(`Request body is larger than ${limit} bytes`)
    yield chunk
  }
}

/**
 * Reads a whole body of at most `limit` bytes (a body the gateway must look at: a flow's input, a
 * GraphQL request before forwarding).
 * Resolves undefined as soon as it passes the limit, without reading further; rejects when the
 * client goes away mid-upload.
 */
export function readLimited(raw: Readable, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (c: Buffer) => {
      size += c.length
      if (size > limit) {
        cleanup()
        raw.pause()
        return resolve(undefined)
      }
      chunks.push(c)
    }
    const onEnd = () => {
      cleanup()
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
    }
    const onClose = () => {
      if (raw.readableEnded) return
      cleanup()
      reject(new Error('client aborted the upload'))
    }
    const cleanup = () => {
      raw.off('data', onData)
      raw.off('end', onEnd)
      raw.off('error', onClose)
      raw.off('close', onClose)
    }
    raw.on('data', onData)
    raw.once('end', onEnd)
    raw.once('error', onClose)
    raw.once('close', onClose)
  })
}
