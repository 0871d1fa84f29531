// Password (and client secret) hashing with scrypt from node:crypto: memory-hard, no native addon.
// Parameters are stored in each hash, so they can be raised later without invalidating old hashes.
// Unknown accounts are checked against a dummy hash, so a login costs the same whether or not the
// email exists (no user enumeration by timing).
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'

export interface ScryptParams {
  /** CPU/memory cost, a power of two. 2^15 with r=8 uses 32 MiB and ~50-100 ms per hash. */
  N: number
  r: number
  p: number
}

/** OWASP's scrypt recommendation (N=2^17, r=8, p=1) costs 128 MiB per hash; 2^15 keeps 4 concurrent logins at 128 MiB. */
export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ N: 2 ** 15, r: 8, p: 1 })

const KEY_BYTES = 32
const SALT_BYTES = 16
// Hash format: scrypt$<N>$<r>$<p>$<salt base64>$<key base64>
const FORMAT = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/

function scrypt(password: string, salt: Buffer, params: ScryptParams, keyBytes: number): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + 1024 * 1024 }
  return new Promise((resolve, reject) => {
    scryptCb(password.normalize('NFC'), salt, keyBytes, options, (err, key) => (err ? reject(err) : resolve(key)))
  })
}

export interface PasswordHasher {
  hash(password: string): Promise<string>
  /** True when the password matches; compares in constant time. A malformed hash is a mismatch. */
  verify(password: string, stored: string): Promise<boolean>
  /** Spends the time of one verify against a dummy hash and returns false (for unknown accounts). */
  verifyDummy(password: string): Promise<false>
}

/** A hasher with fixed parameters; its dummy hash is made once, on first use. */
export function createPasswordHasher(params: ScryptParams = DEFAULT_SCRYPT): PasswordHasher {
  let dummy: Promise<string> | undefined
  const hash = async (password: string) => {
    const salt = randomBytes(SALT_BYTES)
    const key = await scrypt(password, salt, params, KEY_BYTES)
    return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`
  }
  const verify = async (password: string, stored: string) => {
    const m = FORMAT.exec(stored)
    if (!m) return false
    const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])]
    const salt = Buffer.from(m[4]!, 'base64')
    const expected = Buffer.from(m[5]!, 'base64')
    // Bounds keep a tampered row from asking for unbounded memory or time.
    if (expected.length < 16 || expected.length > 64 || N < 2 || N > 2 ** 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) {
      return false
    }
    const actual = await scrypt(password, salt, { N, r, p }, expected.length)
    return timingSafeEqual(actual, expected)
  }
  return {
    hash,
    verify,
    async verifyDummy(password) {
      dummy ??= hash(randomBytes(18).toString('base64'))
      await verify(password, await dummy)
      return false
    },
  }
}

/** A random secret for generated passwords and client secrets (URL-safe, 192 bits). */
export function randomSecret(bytes = 24): string {
  return randomBytes(bytes).toString('base64url')
}
