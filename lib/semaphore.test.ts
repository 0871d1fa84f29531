import { describe, expect, it } from 'vitest'
import { Semaphore } from './semaphore.js'

describe('Semaphore', () => {
  it('admits up to the limit, queues up to the queue limit, refuses the rest', async () => {
    const s = new Semaphore(2, 1)
    expect(s.acquire()).toBe(true)
    expect(s.acquire()).toBe(true)
    const waiting = s.acquire()
    expect(waiting).toBeInstanceOf(Promise)
    expect(s.acquire()).toBe(false)
    expect([s.running, s.queued]).toEqual([2, 1])
    s.release()
    await waiting
    expect([s.running, s.queued]).toEqual([2, 0])
    s.release()
    s.release()
    expect(s.running).toBe(0)
  })
})
