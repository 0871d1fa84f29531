import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { RequestParser } from './request.js'
import { ProtocolError, decodeReply, encodeCommand, scanReply } from './resp.js'

/** Parses every command in buf, feeding it in pieces cut at `cuts`, like a socket would. */
function parseAll(buf: Buffer, cuts: number[] = []): string[][] {
  const p = new RequestParser()
  const out: string[][] = []
  let pending = Buffer.alloc(0)
  const points = [...cuts.filter((c) => c > 0 && c < buf.length).sort((a, b) => a - b), buf.length]
  let prev = 0
  for (const cut of points) {
    pending = Buffer.concat([pending, buf.subarray(prev, cut)])
    prev = cut
    let pos = 0
    for (;;) {
      const next = p.parse(pending, pos, pending.length)
      if (next < 0) break
      if (p.argc > 0) out.push(Array.from({ length: p.argc }, (_, i) => p.arg(i)))
      pos = next
    }
    pending = pending.subarray(pos)
  }
  expect(pending.length).toBe(0)
  return out
}

describe('RequestParser', () => {
  const pipeline = Buffer.concat([
    encodeCommand(['SET', 'k', Buffer.from('a\r\nb\x00\xff', 'latin1')]),
    Buffer.from('PING\r\n'),
    encodeCommand(['GET', '']),
    Buffer.from('set "x y" \'z\'\n'),
  ])
  const expected = [['SET', 'k', 'a\r\nb\x00\xff'], ['PING'], ['GET', ''], ['set', 'x y', 'z']]

  it('reads multibulk and inline commands, binary-safe', () => {
    expect(parseAll(pipeline)).toEqual(expected)
  })

  it('gives the same commands when the bytes are split at every boundary', () => {
    for (let i = 1; i < pipeline.length; i++) expect(parseAll(pipeline, [i])).toEqual(expected)
  })

  it('rejects a bulk length of 2^40 with Redis’s error', () => {
    const p = new RequestParser()
    const b = Buffer.from(`*2\r\n$3\r\nGET\r\n$${2 ** 40}\r\n`)
    expect(() => p.parse(b, 0, b.length)).toThrow('Protocol error: invalid bulk length')
  })

  it('rejects arrays nested 10,000 deep at once (requests are flat)', () => {
    const p = new RequestParser()
    const b = Buffer.from('*1\r\n'.repeat(10_000))
    expect(() => p.parse(b, 0, b.length)).toThrow("Protocol error: expected '$', got '*'")
  })

  it('rejects garbage and oversized inline requests', () => {
    const p = new RequestParser()
    for (const bad of ['*x\r\n', '*1\r\n$-5\r\n', '*3000000000\r\n', 'GET "unbalanced\r\n', '*2\r\n$03\r\n', '*01\r\n']) {
      const b = Buffer.from(bad)
      expect(() => p.parse(b, 0, b.length), bad).toThrow(ProtocolError)
    }
    const big = Buffer.alloc(70 * 1024, 'a')
    expect(() => p.parse(big, 0, big.length)).toThrow('too big inline request')
  })

  it('reads lines as Redis does: a NUL byte hides the newline, so the line only ends as too big', () => {
    const p = new RequestParser()
    const payload = Buffer.alloc(70 * 1024, 'A\n')
    const cases: Array<[string, string]> = [
      ['\x00', 'Protocol error: too big inline request'],
      ['*\x00', 'Protocol error: too big mbulk count string'],
      ['$\x00', 'Protocol error: too big inline request'],
      ['*1\r\n$\x00', 'Protocol error: too big bulk count string'],
    ]
    for (const [head, error] of cases) {
      const b = Buffer.concat([Buffer.from(head, 'latin1'), payload])
      expect(p.parse(b, 0, 1024), JSON.stringify(head)).toBe(-1)
      expect(() => p.parse(b, 0, b.length), JSON.stringify(head)).toThrow(error)
    }
  })

  it('skips the two bytes after bulk data unchecked, as Redis does', () => {
    const p = new RequestParser()
    const b = Buffer.from('*1\r\n$3\r\nGETX\r\n')
    expect(p.parse(b, 0, b.length)).toBe(13)
    expect(p.arg(0)).toBe('GET')
  })

  it('resumes a frame cut across reads where it stopped, also after the frame moved', () => {
    const args = Array.from({ length: 5000 }, (_, i) => `a${i}`)
    const frame = encodeCommand(['RPUSH', 'k', ...args])
    const p = new RequestParser()
    let pending = Buffer.alloc(0)
    let done = -1
    for (let i = 0; i < frame.length && done < 0; i += 997) {
      // A new buffer each time, with 3 bytes in front: offsets must be relative to the frame.
      pending = Buffer.concat([Buffer.from('xyz'), pending.subarray(pending.length ? 3 : 0), frame.subarray(i, i + 997)])
      done = p.parse(pending, 3, pending.length)
    }
    expect(done).toBe(pending.length)
    expect(p.argc).toBe(5002)
    expect(p.arg(5001)).toBe('a4999')
  })

  it('says how many bytes a large bulk still needs', () => {
    const p = new RequestParser()
    const b = Buffer.from('*2\r\n$3\r\nSET\r\n$100000\r\nabc')
    expect(p.parse(b, 0, b.length)).toBe(-1)
    expect(p.need).toBe(b.length - 3 + 100000 + 2)
  })

  it('fuzz: random command lists survive any split; random bytes never throw anything but ProtocolError', () => {
    const arg = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a))
    const deadline = Date.now() + 3000
    fc.assert(
      fc.property(fc.array(fc.array(arg, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(2000), { maxLength: 6 }), (cmds, cuts) => {
        if (Date.now() > deadline) return
        const buf = Buffer.concat(cmds.map((c) => encodeCommand(c)))
        expect(parseAll(buf, cuts)).toEqual(cmds.map((c) => c.map((a) => a.toString('latin1'))))
      }),
      { numRuns: 300 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        if (Date.now() > deadline + 2000) return
        const p = new RequestParser()
        const b = Buffer.from(bytes)
        let pos = 0
        try {
          for (let n = 0; n < 1000; n++) {
            const next = p.parse(b, pos, b.length)
            if (next < 0) break
            expect(next).toBeGreaterThan(pos)
            pos = next
          }
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError)
        }
      }),
      { numRuns: 2000 },
    )
  })
})

describe('scanReply', () => {
  const replies = [
    '+OK\r\n',
    '-ERR unknown command\r\n',
    ':42\r\n',
    '$-1\r\n',
    '$0\r\n\r\n',
    '$4\r\na\r\nb\r\n',
    '*-1\r\n',
    '*2\r\n*1\r\n:1\r\n$1\r\nx\r\n',
    '%1\r\n+a\r\n~2\r\n:1\r\n,1.5\r\n',
    '>2\r\n+push\r\n_\r\n',
    '(123456789012345678901234567890\r\n',
    '#t\r\n',
    '=8\r\ntxt:abcd\r\n',
    '|1\r\n+ttl\r\n:3\r\n+value\r\n',
  ]

  it('finds the end of every RESP2/RESP3 type, and -1 for every proper prefix', () => {
    for (const r of replies) {
      const b = Buffer.from(r)
      expect(scanReply(b, 0, b.length), r).toBe(b.length)
      for (let i = 0; i < b.length; i++) expect(scanReply(b, 0, i), `${JSON.stringify(r)} cut at ${i}`).toBe(-1)
    }
  })

  it('scans 10,000 levels of nesting without recursion', () => {
    const b = Buffer.from('*1\r\n'.repeat(10_000) + ':1\r\n')
    expect(scanReply(b, 0, b.length)).toBe(b.length)
  })

  it('rejects garbage', () => {
    for (const bad of ['?\r\n', '$x\r\n', '$2\r\nabcd\r\n', '*1\r\n@\r\n']) {
      const b = Buffer.from(bad)
      expect(() => scanReply(b, 0, b.length), bad).toThrow(ProtocolError)
    }
  })

  it('decodes what the proxy reads itself', () => {
    const b = Buffer.from('*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n')
    const v = decodeReply(b, 0)
    expect(v.end).toBe(b.length)
    expect(String((v.value as Buffer[])[0])).toBe('message')
  })

  it('fuzz: generated replies scan to their length; random bytes give a number, -1 or ProtocolError', () => {
    const deadline = Date.now() + 3000
    const { reply } = fc.letrec((tie) => ({
      reply: fc.oneof(
        { depthSize: 'small' },
        fc.constantFrom('+OK\r\n', ':-7\r\n', '_\r\n', '$-1\r\n', ',3.14\r\n', '#f\r\n'),
        fc.uint8Array({ maxLength: 20 }).map((a) => `$${a.length}\r\n${Buffer.from(a).toString('latin1')}\r\n`),
        fc.array(tie('reply') as fc.Arbitrary<string>, { maxLength: 4 }).map((xs) => `*${xs.length}\r\n${xs.join('')}`),
        fc.array(fc.tuple(tie('reply') as fc.Arbitrary<string>, tie('reply') as fc.Arbitrary<string>), { maxLength: 3 }).map((xs) => `%${xs.length}\r\n${xs.map(([k, v]) => k + v).join('')}`),
      ),
    }))
    fc.assert(
      fc.property(reply, fc.nat(), (r, cut) => {
        if (Date.now() > deadline) return
        const b = Buffer.from(r, 'latin1')
        expect(scanReply(b, 0, b.length)).toBe(b.length)
        expect(scanReply(b, 0, cut % b.length)).toBe(-1)
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        if (Date.now() > deadline + 2000) return
        const b = Buffer.from(bytes)
        try {
          const end = scanReply(b, 0, b.length)
          expect(end === -1 || (end > 0 && end <= b.length)).toBe(true)
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError)
        }
      }),
      { numRuns: 2000 },
    )
  })
})
