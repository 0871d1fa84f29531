// The development JWT secret: generated once per data directory and kept there (like the seed's
// passwords are kept in its database), so every process started on that directory, and every
// restart, signs and verifies with the same secret, and nobody else knows it. Production never
// uses this: it requires JWT_SECRET (lib/config.ts).
import { randomBytes } from 'node:crypto'
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const FILE = 'jwt-secret'
const MIN_LENGTH = 32

export function devSecretPath(dataDir: string): string {
  return join(dataDir, FILE)
}

/** The kept secret, or undefined when there is none yet (or it is unreadable or too short to be ours). */
export function readDevSecret(dataDir: string): string | undefined {
  let text: string
  try {
    text = readFileSync(devSecretPath(dataDir), 'utf8').trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return text.length >= MIN_LENGTH ? text : undefined
}

/**
 * The kept secret, made now when there is none. Two processes starting at once get the same one:
 * the file is written aside and linked into place, which fails for all but the first (no reader
 * ever sees a half-written file). Readable by its owner only.
 */
export function ensureDevSecret(dataDir: string): { secret: string; created: boolean } {
  const kept = readDevSecret(dataDir)
  if (kept !== undefined) return { secret: kept, created: false }
  mkdirSync(dataDir, { recursive: true })
  const aside = `${devSecretPath(dataDir)}.${process.pid}.${randomBytes(4).toString('hex')}`
  writeFileSync(aside, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 })
  let created = true
  try {
    linkSync(aside, devSecretPath(dataDir))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    created = false // another process was first: use its secret
  } finally {
    rmSync(aside, { force: true })
  }
  const secret = readDevSecret(dataDir)
  if (secret === undefined) throw new Error(`${devSecretPath(dataDir)} does not hold a secret of at least ${MIN_LENGTH} characters`)
  return { secret, created }
}
