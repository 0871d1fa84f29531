import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { refusalAnswer } from './graphql-answer.js'
import { analyseDocument } from './graphql-document.js'
import { paramsFromBody, paramsFromSearch, searchHasParams } from './graphql-request.js'
import { GRAPHQL_DEFAULTS, graphqlSettings } from './graphql-settings.js'

const open = GRAPHQL_DEFAULTS
const strict = graphqlSettings({ maxDepth: 3, maxAliases: 2, maxRootFields: 2, introspection: false })!

describe('GraphQL documents', () => {
  it('learns the operation: the only one, or the one operationName names', () => {
    expect(analyseDocument('{ a }', undefined, open)).toEqual({ operation: { type: 'query', name: undefined } })
    expect(analyseDocument('mutation M { a }', undefined, open)).toEqual({ operation: { type: 'mutation', name: 'M' } })
    expect(analyseDocument('query A { a } subscription B { b }', 'B', open)).toEqual({ operation: { type: 'subscription', name: 'B' } })
    // Type system definitions and fragments do not count as operations.
    expect(analyseDocument('type T { a: Int } fragment F on Query { a } query Q { ...F }', undefined, open)).toEqual({ operation: { type: 'query', name: 'Q' } })
  })

  it('refuses what GetOperation refuses, and names that are ambiguous', () => {
    expect(analyseDocument('query A { a } query B { b }', undefined, open)).toMatchObject({ refused: 'OPERATION_RESOLUTION_FAILURE' })
    expect(analyseDocument('query A { a }', 'B', open)).toEqual({ refused: 'OPERATION_RESOLUTION_FAILURE', message: 'Unknown operation named "B".' })
    expect(analyseDocument('query A { a } query A { b }', 'A', open)).toMatchObject({ refused: 'GRAPHQL_VALIDATION_FAILED' })
    expect(analyseDocument('fragment F on Q { a } fragment F on Q { b } { ...F }', undefined, open)).toMatchObject({ refused: 'GRAPHQL_VALIDATION_FAILED' })
    expect(analyseDocument('fragment F on Q { a }', undefined, open)).toEqual({ refused: 'GRAPHQL_VALIDATION_FAILED', message: 'The document holds no operation' })
  })

  it('answers a parse error with its message and location, cut short when it quotes a huge token', () => {
    expect(analyseDocument('{ a', undefined, open)).toEqual({ refused: 'GRAPHQL_PARSE_FAILED', message: 'Syntax Error: Expected Name, found <EOF>.', locations: [{ line: 1, column: 4 }] })
    const r = analyseDocument(`{ a } ${'"'.repeat(1)}${'x'.repeat(100_000)}`, undefined, open)
    expect(r).toMatchObject({ refused: 'GRAPHQL_PARSE_FAILED' })
    expect('message' in r && r.message.length).toBeLessThanOrEqual(201)
  })

  it('measures depth, aliases, root fields and introspection through fragments', () => {
    expect(analyseDocument('{ a { b { c } } }', undefined, strict)).toHaveProperty('operation')
    // A refusal after the operation was chosen names it (for the metrics of refused operations).
    expect(analyseDocument('query Deep { a { b { c { d } } } }', undefined, strict)).toEqual({
      refused: 'GRAPHQL_VALIDATION_FAILED',
      message: 'The operation is 4 fields deep; at most 3 are allowed',
      operation: { type: 'query', name: 'Deep' },
    })
    expect(analyseDocument('{ a { ... on T { b { ...F } } } } fragment F on T { c { d } }', undefined, strict)).toMatchObject({ message: /4 fields deep/ })
    expect(analyseDocument('{ x: a y: b }', undefined, strict)).toHaveProperty('operation')
    expect(analyseDocument('{ x: a y: b { z: c } }', undefined, strict)).toMatchObject({ message: 'The operation has more than 2 aliases' })
    expect(analyseDocument('{ a { ...F } b { ...F } } fragment F on T { x: c }', undefined, strict)).toHaveProperty('operation')
    expect(analyseDocument('{ a { ...F } b { ...F ...F } } fragment F on T { x: c }', undefined, strict)).toMatchObject({ message: /aliases/ })
    expect(analyseDocument('{ a ...F } fragment F on Query { b c }', undefined, strict)).toMatchObject({ message: 'The operation asks for more than 2 root fields' })
    expect(analyseDocument('{ ... on Query { __type(name: "T") { name } } }', undefined, strict)).toMatchObject({ message: 'Introspection is disabled on this route' })
    expect(analyseDocument('{ __typename }', undefined, strict)).toHaveProperty('operation')
    // Only the chosen operation is measured.
    expect(analyseDocument('query A { __schema { description } } query B { a }', 'B', strict)).toEqual({ operation: { type: 'query', name: 'B' } })
  })

  it('bounds hostile documents before and while parsing: deep brackets, many tokens, fragment cycles and chains', () => {
    const deep = (n: number) => `{ ${'a { '.repeat(n)}b${' }'.repeat(n)} }`
    expect(analyseDocument(deep(200), undefined, open)).toHaveProperty('operation')
    expect(analyseDocument(deep(10_000), undefined, { ...open, maxTokens: 1_000_000 })).toEqual({ refused: 'GRAPHQL_PARSE_FAILED', message: 'The document nests brackets deeper than 256 levels' })
    expect(analyseDocument(`{ a(x: ${'['.repeat(300)}1${']'.repeat(300)}) }`, undefined, open)).toMatchObject({ message: /deeper than 256/ })
    expect(analyseDocument('{ a b c }', undefined, { ...open, maxTokens: 4 })).toMatchObject({ refused: 'GRAPHQL_PARSE_FAILED', message: /more than 4 tokens/ })
    expect(analyseDocument('query Loop { ...A } fragment A on Q { ...A }', undefined, open)).toEqual({
      refused: 'GRAPHQL_VALIDATION_FAILED',
      message: 'Cannot spread fragment "A" within itself.',
      operation: { type: 'query', name: 'Loop' },
    })
    // A chain of 300 fragments, each spreading the next: bounded like nesting, no deep recursion.
    const chain = Array.from({ length: 300 }, (_, i) => `fragment F${i} on Q { ...F${i + 1} }`).join(' ')
    expect(analyseDocument(`{ ...F0 } ${chain} fragment F300 on Q { a }`, undefined, open)).toMatchObject({ message: /through its fragments/ })
    // A fragment "bomb" (each spreads the next twice) is measured once per fragment.
    const bomb = Array.from({ length: 60 }, (_, i) => `fragment B${i} on Q { ...B${i + 1} ...B${i + 1} }`).join(' ')
    const started = Date.now()
    expect(analyseDocument(`{ ...B0 } ${bomb} fragment B60 on Q { x: a }`, undefined, strict)).toMatchObject({ message: /aliases/ })
    expect(Date.now() - started).toBeLessThan(1000)
    expect(analyseDocument('{ a }', undefined, { ...open, maxDocumentBytes: 4 })).toEqual({ refused: 'PAYLOAD_TOO_LARGE', message: 'The document is larger than 4 bytes' })
    expect(analyseDocument('{ é }', undefined, open)).toMatchObject({ refused: 'GRAPHQL_PARSE_FAILED' })
  })

  it('never throws, whatever the text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.option(fc.string({ maxLength: 20 }), { nil: undefined }), (text, name) => {
        const r = analyseDocument(text, name, strict)
        expect('operation' in r || 'refused' in r).toBe(true)
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.array(fc.constantFrom('{', '}', '[', ']', '(', ')', 'a', ':', '...', 'F', 'fragment F on Q', '$x', '"s"', '#\n', '@d', 'query', ' '), { maxLength: 400 }), (parts) => {
        const r = analyseDocument(parts.join(' '), undefined, strict)
        expect('operation' in r || 'refused' in r).toBe(true)
      }),
      { numRuns: 500 },
    )
  })
})

describe('GraphQL-over-HTTP requests', () => {
  it('reads a GET query string; refuses parameters given twice and variables that are not a JSON object', () => {
    expect(paramsFromSearch('')).toBeUndefined()
    expect(paramsFromSearch('x=1')).toBeUndefined()
    expect(paramsFromSearch('query=%7Ba%7D&operationName=A&variables=%7B%7D')).toEqual({ query: '{a}', operationName: 'A' })
    expect(paramsFromSearch('query=%7Ba%7D&operationName=')).toEqual({ query: '{a}', operationName: undefined })
    expect(paramsFromSearch('query=a&query=b')).toMatchObject({ refused: 'INVALID_REQUEST', message: '"query" is given more than once' })
    expect(paramsFromSearch('operationName=A')).toMatchObject({ refused: 'INVALID_REQUEST' })
    expect(paramsFromSearch('query=a&variables=nope')).toMatchObject({ message: '"variables" must be a JSON-encoded object' })
    expect(paramsFromSearch('query=a&extensions=%5B%5D')).toMatchObject({ message: '"extensions" must be a JSON-encoded object' })
    expect(paramsFromSearch('query=a&variables=null')).toEqual({ query: 'a', operationName: undefined })
    expect(paramsFromSearch('query=a&variables=&extensions=&operationName=')).toEqual({ query: 'a', operationName: undefined })
    expect(paramsFromSearch('query=a&operationName=null')).toEqual({ query: 'a', operationName: 'null' })
    expect(searchHasParams('')).toBe(false)
    expect(searchHasParams('a=1&variables=x')).toBe(true)
  })

  it('reads a POST body: a JSON object with a string query; own keys only', () => {
    expect(paramsFromBody('{"query":"{a}","operationName":null,"variables":null}')).toEqual({ query: '{a}', operationName: undefined })
    expect(paramsFromBody('{"__proto__":{"query":"{a}"}}')).toMatchObject({ refused: 'INVALID_REQUEST', message: 'A GraphQL request needs a "query" string' })
    expect(paramsFromBody('{"query":"{a}","operationName":"__proto__"}')).toEqual({ query: '{a}', operationName: '__proto__' })
    expect(paramsFromBody(`{"query":"{a}","operationName":"${'a'.repeat(129)}"}`)).toMatchObject({ refused: 'INVALID_REQUEST' })
    expect(paramsFromBody(`{"query":"{a}","operationName":"${'a'.repeat(128)}"}`)).toEqual({ query: '{a}', operationName: 'a'.repeat(128) })
    expect(paramsFromBody('{"query":"{a}","operationName":"1a"}')).toMatchObject({ refused: 'INVALID_REQUEST' })
    expect(paramsFromBody('null')).toMatchObject({ message: 'The body must be a JSON object' })
    // A parameter given twice, however it is spelled: parsers differ on which one they keep.
    expect(paramsFromBody('{"query":"{a}","query":"{__schema{description}}"}')).toMatchObject({ refused: 'INVALID_REQUEST', message: '"query" is given more than once' })
    expect(paramsFromBody('{"query":"{a}", "\\u0071uery" : "{b}"}')).toMatchObject({ message: '"query" is given more than once' })
    expect(paramsFromBody('{"query":"{a}","operationName":"A","operationName":"B"}')).toMatchObject({ message: '"operationName" is given more than once' })
    // Nested keys and strings that look like keys are not the top level's.
    expect(paramsFromBody('{"variables":{"query":1,"x":{"query":2}},"query":"{a} \\",\\"query\\":","extensions":{"a":["query","query"]}}')).toEqual({ query: '{a} ","query":', operationName: undefined })
  })

  it('answers with the status the GraphQL-over-HTTP draft gives each failure', () => {
    const parse = { refused: 'GRAPHQL_PARSE_FAILED' as const, message: 'Syntax Error: x', locations: [{ line: 1, column: 2 }] }
    expect(refusalAnswer(parse)).toEqual({
      status: 400,
      body: '{"errors":[{"message":"Syntax Error: x","locations":[{"line":1,"column":2}],"extensions":{"code":"GRAPHQL_PARSE_FAILED"}}]}',
      errorCode: 'VALIDATION_ERROR',
    })
    const status = (refused: Parameters<typeof refusalAnswer>[0]['refused']) => refusalAnswer({ refused, message: 'x' }).status
    expect(status('BAD_REQUEST')).toBe(400)
    expect(status('INVALID_REQUEST')).toBe(422)
    expect(status('GRAPHQL_VALIDATION_FAILED')).toBe(422)
    expect(status('OPERATION_RESOLUTION_FAILURE')).toBe(422)
    expect(status('PAYLOAD_TOO_LARGE')).toBe(413)
    expect(status('UNSUPPORTED_MEDIA_TYPE')).toBe(415)
    expect(status('METHOD_NOT_ALLOWED')).toBe(405)
  })
})
