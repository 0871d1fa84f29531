import { nkeys } from 'nats'
import { describe, expect, it } from 'vitest'
import { nkeyAuthenticator, nkeyUser } from './nkey.js'

describe('NKey users with node:crypto', () => {
  it('derives the public key nkeys.js derives, and signs what it verifies', () => {
    for (let i = 0; i < 20; i++) {
      const pair = nkeys.createUser()
      const user = nkeyUser(pair.getSeed())
      expect(user.publicKey).toBe(pair.getPublicKey())
      const data = new TextEncoder().encode(`nonce-${i}`)
      const sig = user.sign(data)
      expect(nkeys.fromPublic(user.publicKey).verify(data, sig)).toBe(true)
      expect(Buffer.from(sig)).toEqual(Buffer.from(pair.sign(data))) // Ed25519 is deterministic
    }
  })

  it('answers a nonce as nats.js does: the public key and the signature in base64', () => {
    const pair = nkeys.createUser()
    const auth = nkeyAuthenticator(pair.getSeed())('Zk9ub25jZQ') as { nkey: string; sig: string }
    expect(auth.nkey).toBe(pair.getPublicKey())
    expect(nkeys.fromPublic(auth.nkey).verify(new TextEncoder().encode('Zk9ub25jZQ'), nkeys.decode(auth.sig))).toBe(true)
    expect(nkeyAuthenticator(pair.getSeed())()).toEqual({ nkey: pair.getPublicKey(), sig: '' })
  })

  it('refuses a seed that is not a user seed, or whose checksum is wrong', () => {
    expect(() => nkeyUser(nkeys.createAccount().getSeed())).toThrow(/user seed/)
    const seed = new TextDecoder().decode(nkeys.createUser().getSeed())
    const broken = seed.slice(0, 10) + (seed[10] === 'A' ? 'B' : 'A') + seed.slice(11)
    expect(() => nkeyUser(new TextEncoder().encode(broken))).toThrow()
  })
})
