import { describe, expect, it } from 'vitest'
import { CumulativeAcks } from './acks.js'

const item = (id: string) => ({ id, n: 0 })

describe('cumulative acks', () => {
  it('asks for an ack every n-th send and at the end of a burst, numbering sends in order', () => {
    const acks = new CumulativeAcks<{ id: string; n: number }>(3)
    const asked = ['a', 'b', 'c', 'd', 'e'].map((id, i, all) => acks.send(item(id), i === all.length - 1, 0))
    expect(asked).toEqual([false, false, true, false, true])
    expect(acks.inFlight).toBe(5)
    expect(acks.waiting).toBe(2)
  })

  it('settles every send up to the acked one, once', () => {
    const acks = new CumulativeAcks<{ id: string; n: number }>(2)
    const sent = ['a', 'b', 'c', 'd'].map((id) => item(id))
    sent.forEach((s, i) => acks.send(s, i === 3, 0))
    expect(acks.settle(2)?.map((s) => s.id)).toEqual(['a', 'b'])
    expect(acks.settle(2)).toBeUndefined()
    expect(acks.settle(3)).toBeUndefined() // never asked for an ack
    expect(acks.settle(4)?.map((s) => s.id)).toEqual(['c', 'd'])
    expect(acks.inFlight).toBe(0)
    expect(acks.waiting).toBe(0)
  })

  it('a later ack covers an earlier one that never came', () => {
    const acks = new CumulativeAcks<{ id: string; n: number }>(1)
    ;['a', 'b', 'c'].forEach((id) => acks.send(item(id), false, 0))
    expect(acks.settle(3)?.map((s) => s.id)).toEqual(['a', 'b', 'c'])
    expect(acks.settle(1)).toBeUndefined()
    expect(acks.waiting).toBe(0)
  })

  it('names the newest send whose ack is overdue', () => {
    const acks = new CumulativeAcks<{ id: string; n: number }>(1)
    acks.send(item('a'), false, 100)
    acks.send(item('b'), false, 200)
    acks.send(item('c'), false, 300)
    expect(acks.overdue(100)).toBeUndefined()
    expect(acks.overdue(250)).toBe(2)
    expect(acks.settle(2)?.length).toBe(2)
    expect(acks.overdue(1000)).toBe(3)
  })
})
