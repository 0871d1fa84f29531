import type { NatsConnection } from 'nats'
import { describe, expect, it } from 'vitest'
import { publishBatcher } from './publish-batch.js'

/** A connection that records publishes; a subject starting with "bad" throws, as a closed connection does. */
function fakeConnection() {
  const sent: string[] = []
  const nc = {
    publish(subject: string) {
      if (subject.startsWith('bad')) throw new Error('connection closed')
      sent.push(subject)
    },
  } as unknown as NatsConnection
  return { nc, sent }
}

const nextTurn = () => new Promise((r) => setImmediate(r))

describe('publishBatcher', () => {
  it('is one batcher per connection', () => {
    const a = fakeConnection()
    const b = fakeConnection()
    expect(publishBatcher(a.nc)).toBe(publishBatcher(a.nc))
    expect(publishBatcher(a.nc)).not.toBe(publishBatcher(b.nc))
  })

  it('publishes what every caller queued in one turn after the turn, in call order', async () => {
    const { nc, sent } = fakeConnection()
    const requests = publishBatcher(nc)
    const events = publishBatcher(nc)
    requests.publish('api.v1.one', Buffer.from('1'))
    events.publish('gateway.events.request.completed', Buffer.from('e'))
    requests.publish('api.v1.two', Buffer.from('2'))
    await Promise.resolve()
    expect(sent).toEqual([])
    await nextTurn()
    expect(sent).toEqual(['api.v1.one', 'gateway.events.request.completed', 'api.v1.two'])
  })

  it('hands a failed publish to its own error callback and still sends the rest', async () => {
    const { nc, sent } = fakeConnection()
    const failures: string[] = []
    const batcher = publishBatcher(nc)
    batcher.publish('api.v1.one', Buffer.from('1'), undefined, () => failures.push('one'))
    batcher.publish('bad.subject', Buffer.from('x'), undefined, (err) => failures.push(String(err)))
    batcher.publish('api.v1.two', Buffer.from('2'))
    await nextTurn()
    expect(sent).toEqual(['api.v1.one', 'api.v1.two'])
    expect(failures).toEqual(['Error: connection closed'])
  })
})
