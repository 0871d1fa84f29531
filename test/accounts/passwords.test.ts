import { describe, expect, it } from 'vitest'
import { createPasswordHasher } from '../../lib/passwords.js'

const fast = createPasswordHasher({ N: 1024, r: 8, p: 1 })

describe('password hasher', () => {
  it('hashes with a random salt and the parameters in the hash; verifies the right password only', async () => {
    const a = await fast.hash('correct horse')
    const b = await fast.hash('correct horse')
    expect(a).toMatch(/^scrypt\$1024\$8\$1\$/)
    expect(a).not.toBe(b)
    expect(await fast.verify('correct horse', a)).toBe(true)
    expect(await fast.verify('correct horsE', a)).toBe(false)
    expect(await fast.verify('', a)).toBe(false)
  })

  it('treats a malformed or absurd stored hash as a mismatch', async () => {
    for (const stored of ['', 'plain', 'scrypt$3$8$1$AAAA$AAAA', `scrypt$${2 ** 30}$8$1$c2FsdHNhbHRzYWx0c2FsdA==$${'A'.repeat(43)}=`]) {
      expect(await fast.verify('x', stored)).toBe(false)
    }
  })

  it('verifies against hashes made with other parameters (they are read from the hash)', async () => {
    const old = await createPasswordHasher({ N: 2048, r: 8, p: 1 }).hash('pw-123456')
    expect(await fast.verify('pw-123456', old)).toBe(true)
  })

  it('an unknown account costs about as much as a wrong password (default parameters)', async () => {
    const real = createPasswordHasher()
    const stored = await real.hash('the real password')
    await real.verifyDummy('warm-up') // the dummy hash is made once, on first use
    const time = async (fn: () => Promise<unknown>) => {
      const t0 = performance.now()
      await fn()
      return performance.now() - t0
    }
    const wrong: number[] = []
    const unknown: number[] = []
    for (let i = 0; i < 5; i++) {
      wrong.push(await time(() => real.verify('a wrong password', stored)))
      unknown.push(await time(() => real.verifyDummy('a wrong password')))
    }
    const median = (xs: number[]) => xs.sort((x, y) => x - y)[2]!
    expect(await real.verifyDummy('anything')).toBe(false)
    // Without the dummy hash an unknown email would answer in well under a millisecond.
    expect(median(unknown)).toBeGreaterThan(median(wrong) * 0.5)
    expect(median(unknown)).toBeLessThan(median(wrong) * 2)
  })
})
