import { MsgHdrsImpl, headers as natsHeaders } from 'nats'
import { describe, expect, it } from 'vitest'
import { FlowgateError } from './errors.js'
import { headerValue, RequestHeaders } from './wire-headers.js'

describe('RequestHeaders', () => {
  it('encodes what nats.js reads back, byte for byte as nats.js would write it', () => {
    const ours = new RequestHeaders().put('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01').put('Flowgate-Deadline', '1700000000000')
    const theirs = natsHeaders()
    theirs.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
    theirs.set('Flowgate-Deadline', '1700000000000')
    expect(Buffer.from(ours.encode()).toString()).toBe(Buffer.from((theirs as MsgHdrsImpl).encode()).toString())
    const back = MsgHdrsImpl.decode(ours.encode())
    expect(back.get('Flowgate-Deadline')).toBe('1700000000000')
    expect(ours.get('traceparent')).toMatch(/^00-4bf9/)
  })

  it('refuses a value with a line break, which would end the header block', () => {
    expect(() => new RequestHeaders().put('Authorization', 'Bearer x\r\nInjected: 1')).toThrow(FlowgateError)
    try {
      new RequestHeaders().put('Authorization', 'Bearer x\nInjected: 1')
      expect.unreachable()
    } catch (err) {
      expect(err).toMatchObject({ code: 'VALIDATION_ERROR', detailed: [{ field: 'Authorization', message: 'header value holds a line break' }] })
    }
  })

  it('keeps a status code and description when one is set', () => {
    const h = new RequestHeaders(503, 'No Responders')
    expect(Buffer.from(h.encode()).toString()).toBe('NATS/1.0 503 No Responders\r\n\r\n')
  })
})

describe('headerValue', () => {
  it('reads the first value of an exact-case header, or an empty string', () => {
    const h = MsgHdrsImpl.decode(Buffer.from('NATS/1.0\r\nFlowgate-Request-Id: r1\r\nFlowgate-Request-Id: r2\r\n\r\n'))
    expect(headerValue(h, 'Flowgate-Request-Id')).toBe('r1')
    expect(headerValue(h, 'flowgate-request-id')).toBe('') // exact case, as MsgHdrs.get
    expect(headerValue(undefined, 'traceparent')).toBe('')
  })
})
