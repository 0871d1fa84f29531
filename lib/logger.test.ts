import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger, logDestination } from './logger.js'

const dir = mkdtempSync(join(tmpdir(), 'flowgate-log-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const linesOf = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)

async function until(check: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now()
  while (!check()) {
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
  return Date.now() - t0
}

describe('logDestination', () => {
  it('holds a short line back, then flushes it within the flush interval', async () => {
    const file = join(dir, 'quiet.log')
    const dest = logDestination(file)
    const log = createLogger({ logLevel: 'info' }, {}, dest)
    await new Promise((r) => dest.once('ready', r))
    log.info({ password: 'hunter2', n: 1 }, 'one line')
    // Batched, not written per line: an unbatched asynchronous write lands within a few ms.
    await new Promise((r) => setTimeout(r, 50))
    expect(readFileSync(file, 'utf8')).toBe('')
    const waited = await until(() => readFileSync(file, 'utf8').length > 0, 1000)
    expect(waited).toBeLessThan(600)
    const [line] = linesOf(file)
    expect(line).toMatchObject({ msg: 'one line', n: 1, password: '[redacted]' })
    dest.end()
  })

  it('writes what is buffered when the process exits', () => {
    const file = join(dir, 'exit.log')
    // The built module (npm test builds first), run by plain node as in production.
    const logger = fileURLToPath(new URL('../dist/lib/logger.js', import.meta.url))
    const script = `
      const { createLogger, logDestination } = await import(${JSON.stringify(logger)})
      const log = createLogger({ logLevel: 'info' }, {}, logDestination(${JSON.stringify(file)}))
      for (let i = 0; i < 3; i++) log.info({ i }, 'before exit')
      setTimeout(() => process.exit(3), 20)
    `
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15_000 })
    expect(run.status).toBe(3)
    expect(linesOf(file).map((l) => l.i)).toEqual([0, 1, 2])
  })
})
