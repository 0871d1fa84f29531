// `npm start` skips the build (tsc, then the bundle) when it is current: scripts/build-if-stale.mjs
// run in a scratch project whose `tsc` and scripts/bundle.mjs are stand-ins that record each call,
// so the test sees exactly when the build would have run.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../harness/process.js'

const SCRIPT = resolve('scripts/build-if-stale.mjs')

function scratchProject(tscExit = 0): string {
  const dir = tempDir('build-check')
  mkdirSync(join(dir, 'src'), { recursive: true })
  mkdirSync(join(dir, 'node_modules/typescript/bin'), { recursive: true })
  writeFileSync(join(dir, 'tsconfig.json'), '{}')
  writeFileSync(join(dir, 'tsconfig.build.json'), JSON.stringify({ include: ['src', 'missing'] }))
  writeFileSync(join(dir, 'src/a.ts'), 'export const a = 1\n')
  // The stand-in compiler: counts its runs and writes its output, as tsc would.
  writeFileSync(
    join(dir, 'node_modules/typescript/bin/tsc'),
    `const fs = require('node:fs'); fs.appendFileSync('tsc-runs', process.argv.slice(2).join(' ') + '\\n');
     fs.mkdirSync('dist/cli', { recursive: true }); fs.writeFileSync('dist/cli/main.js', ''); process.exit(${tscExit})`,
  )
  writeFileSync(join(dir, 'node_modules/typescript/package.json'), '{"type":"commonjs"}')
  // The stand-in bundler: counts its runs and writes the entry point `flowgate` runs.
  mkdirSync(join(dir, 'scripts'))
  writeFileSync(
    join(dir, 'scripts/bundle.mjs'),
    `import fs from 'node:fs'; fs.appendFileSync('bundle-runs', 'x\\n'); fs.mkdirSync('dist/app', { recursive: true }); fs.writeFileSync('dist/app/main.js', '')`,
  )
  return dir
}

/** Runs the check, then moves the clock: the stamp 100 s old, every input 1000 s old, so "a change" is a file touched since. */
function check(dir: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { cwd: dir, encoding: 'utf8' })
  for (const f of ['src/a.ts', 'src/a.test.ts', 'src/deep/er/b.ts', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json']) {
    if (existsSync(join(dir, f))) touch(join(dir, f), -1000)
  }
  if (existsSync(join(dir, 'dist/.build-stamp'))) touch(join(dir, 'dist/.build-stamp'), -100)
  return r
}
const count = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').length : 0)
/** How many times the build ran tsc. */
const runs = (dir: string) => count(join(dir, 'tsc-runs'))
const bundles = (dir: string) => count(join(dir, 'bundle-runs'))
/** Sets a file's modification time `sec` seconds from now. */
function touch(file: string, sec: number) {
  utimesSync(file, Date.now() / 1000 + sec, Date.now() / 1000 + sec)
}

describe('npm start: the build only when stale', () => {
  it('is what npm start runs before flowgate start, in the same process', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> }
    expect(pkg.scripts.start).toBe('node scripts/start.mjs')
    expect(readFileSync('scripts/start.mjs', 'utf8')).toMatch(/buildIfStale\(\)[\s\S]*import\('\.\.\/dist\/app\/main\.js'\)/)
    expect(pkg.scripts.build).toBe('tsc -p tsconfig.build.json && node scripts/bundle.mjs && node scripts/build-if-stale.mjs --stamp')
    expect(pkg.bin.flowgate).toBe('dist/app/main.js')
    expect(JSON.parse(readFileSync('tsconfig.build.json', 'utf8')).compilerOptions.incremental).toBe(true)
  })

  it('builds when there is no build, then not again until a source, a tsconfig or the lockfile changes', () => {
    const dir = scratchProject()
    expect(check(dir).status).toBe(0)
    expect(runs(dir)).toBe(1)
    expect(readFileSync(join(dir, 'tsc-runs'), 'utf8')).toBe('-p tsconfig.build.json\n')
    expect(check(dir).status).toBe(0)
    expect(check(dir).status).toBe(0)
    expect(runs(dir)).toBe(1)

    touch(join(dir, 'src/a.ts'), -50)
    check(dir)
    expect(runs(dir)).toBe(2)
    check(dir)
    expect(runs(dir)).toBe(2)

    // tests are not built: a changed test file builds nothing
    writeFileSync(join(dir, 'src/a.test.ts'), '')
    touch(join(dir, 'src/a.test.ts'), -50)
    check(dir)
    expect(runs(dir)).toBe(2)

    for (const [n, file] of [[3, 'tsconfig.json'], [4, 'package-lock.json']] as const) {
      writeFileSync(join(dir, file), '{}')
      touch(join(dir, file), -50)
      check(dir)
      expect(runs(dir), file).toBe(n)
    }
    // a new folder's file counts; a missing entry point means no build
    mkdirSync(join(dir, 'src/deep/er'), { recursive: true })
    writeFileSync(join(dir, 'src/deep/er/b.ts'), '')
    touch(join(dir, 'src/deep/er/b.ts'), -50)
    check(dir)
    expect(runs(dir)).toBe(5)
    rmSync(join(dir, 'dist/app/main.js'))
    check(dir)
    expect(runs(dir)).toBe(6)
    expect(bundles(dir), 'the bundle follows each tsc run').toBe(6)
  })

  it('keeps the build stale when the compiler fails, and exits with its code', () => {
    const dir = scratchProject(2)
    const r = check(dir)
    expect(r.status).toBe(2)
    expect(existsSync(join(dir, 'dist/.build-stamp'))).toBe(false)
    check(dir)
    expect(runs(dir)).toBe(2)
    expect(bundles(dir), 'no bundle of a failed build').toBe(0)
  })

  it('--stamp marks a build made by `npm run build` as current', () => {
    const dir = scratchProject()
    mkdirSync(join(dir, 'dist/app'), { recursive: true })
    writeFileSync(join(dir, 'dist/app/main.js'), '')
    expect(check(dir, '--stamp').status).toBe(0)
    expect(statSync(join(dir, 'dist/.build-stamp')).isFile()).toBe(true)
    check(dir)
    expect(runs(dir)).toBe(0)
  })
})
