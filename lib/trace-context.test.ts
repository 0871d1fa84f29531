import { describe, expect, it } from 'vitest'
import { acceptRequestId, formatTraceparent, newSpanId, newTraceId, parseTraceparent } from './trace-context.js'

describe('trace context', () => {
  it('continues a valid traceparent', () => {
    const ctx = parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'vendor=1')
    expect(ctx).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentSpanId: '00f067aa0ba902b7', flags: '01', tracestate: 'vendor=1' })
  })

  it.each([
    ['missing', undefined],
    ['all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
    ['all-zero span id', `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`],
    ['upper case', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'],
    ['too long', `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01${'0'.repeat(10_000)}`],
    ['not a string', ['a', 'b']],
  ])('starts a new trace for a %s traceparent', (_name, value) => {
    const ctx = parseTraceparent(value)
    expect(ctx.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(ctx.parentSpanId).toBeUndefined()
  })

  it('drops an oversized tracestate', () => {
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'x'.repeat(600)).tracestate).toBeUndefined()
  })

  it('keeps a plain request id and replaces anything else', () => {
    expect(acceptRequestId('abc-123_x.y:z')).toBe('abc-123_x.y:z')
    for (const bad of ['', 'a'.repeat(65), 'has space', 'new\nline', undefined, 42]) expect(acceptRequestId(bad)).toMatch(/^[0-9a-f]{24}$/)
  })

  it('makes distinct ids and formats a traceparent', () => {
    const ids = new Set(Array.from({ length: 2000 }, () => newTraceId()))
    expect(ids.size).toBe(2000)
    expect(newSpanId()).toMatch(/^[0-9a-f]{16}$/)
    expect(formatTraceparent('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7')).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
  })
})
