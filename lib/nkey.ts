// NKey user keys with Node's own Ed25519. nats.js signs through nkeys.js, whose Ed25519 is tweetnacl
// in plain JavaScript: every connection derives the key pair twice and signs once, some 20 ms of CPU
// each on a start that makes four connections and six key pairs. node:crypto does the same in
// microseconds. What nkeys.js does not expose (the public key's text form) is written here; seeds are
// still decoded and checked by nkeys.js.
import { createPrivateKey, createPublicKey, sign as ed25519Sign, type KeyObject } from 'node:crypto'
import { nkeys, type Authenticator } from 'nats'

/** The DER head of a PKCS #8 Ed25519 private key (RFC 8410): the 32-byte seed follows it. */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')
/** The prefix byte of a user's public key: 'U' in base32 (20 << 3). */
const USER_PREFIX = 20 << 3
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

export interface NKeyUser {
  /** The public key as nats-server configurations name it (`U…`, 56 characters). */
  readonly publicKey: string
  sign(data: Uint8Array): Uint8Array
}

/** A user key pair from its seed (`SU…`); throws when the seed is not one (bad checksum, other prefix). */
export function nkeyUser(seed: Uint8Array): NKeyUser {
  if (new TextDecoder().decode(seed.subarray(0, 2)) !== 'SU') throw new Error('not an NKey user seed (it starts with SU)')
  const pair = nkeys.fromSeed(seed)
  const key: KeyObject = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, pair.getRawSeed()]), format: 'der', type: 'pkcs8' })
  const raw = createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32)
  return { publicKey: encodePublicKey(raw), sign: (data) => ed25519Sign(null, data, key) }
}

/** nats.js's nkeyAuthenticator, signing the server's nonce with node:crypto. */
export function nkeyAuthenticator(seed: Uint8Array): Authenticator {
  const user = nkeyUser(seed)
  const encoder = new TextEncoder()
  return (nonce?: string) => ({ nkey: user.publicKey, sig: nonce ? nkeys.encode(user.sign(encoder.encode(nonce))) : '' })
}

/** prefix byte + key + CRC-16/XMODEM (little-endian), in unpadded RFC 4648 base32. */
function encodePublicKey(raw: Uint8Array): string {
  const bytes = new Uint8Array(raw.length + 3)
  bytes[0] = USER_PREFIX
  bytes.set(raw, 1)
  const crc = crc16(bytes.subarray(0, raw.length + 1))
  bytes[raw.length + 1] = crc & 0xff
  bytes[raw.length + 2] = crc >> 8
  let out = ''
  let buffer = 0
  let bits = 0
  for (const b of bytes) {
    buffer = (buffer << 8) | b
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out += BASE32[(buffer >> bits) & 31]
    }
  }
  if (bits > 0) out += BASE32[(buffer << (5 - bits)) & 31]
  return out
}

function crc16(bytes: Uint8Array): number {
  let crc = 0
  for (const b of bytes) {
    crc ^= b << 8
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}
