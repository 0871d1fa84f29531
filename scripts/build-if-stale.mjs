#!/usr/bin/env node
// `npm start` runs this before `flowgate start` (scripts/start.mjs): the build (tsc, then
// scripts/bundle.mjs) runs only when a source file, a tsconfig or the lockfile is newer than the last
// build, so a start with nothing changed costs a walk of the source tree (milliseconds) instead of
// loading the compiler (seconds, even when tsc finds nothing to do). Written by hand, in plain
// JavaScript, because it must run before any build exists and because `tsc -b`'s own up-to-date
// check starts the whole compiler.
//   node scripts/build-if-stale.mjs           build when stale, then stamp
//   node scripts/build-if-stale.mjs --stamp   only stamp (after `npm run build`)
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const PROJECT = 'tsconfig.build.json'
const STAMP = join('dist', '.build-stamp')
/** What `flowgate` runs: scripts/bundle.mjs writes it from tsc's output, last. */
const ENTRY = join('dist', 'app', 'main.js')
const INPUTS = ['tsconfig.json', PROJECT, 'package-lock.json']

/** The newest modification time under a folder, of the files the build reads. */
function newestIn(dir) {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue
    const path = join(dir, entry.name)
    if (entry.isDirectory()) newest = Math.max(newest, newestIn(path))
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(path).mtimeMs)
  }
  return newest
}

function stale() {
  if (!existsSync(STAMP) || !existsSync(ENTRY)) return true
  const built = statSync(STAMP).mtimeMs
  const { include = [] } = JSON.parse(readFileSync(PROJECT, 'utf8'))
  const sources = include.filter((dir) => existsSync(dir)).map((dir) => newestIn(dir))
  const inputs = INPUTS.filter((f) => existsSync(f)).map((f) => statSync(f).mtimeMs)
  return Math.max(0, ...sources, ...inputs) > built
}

/** Marks the build current as of `at`: a file saved while tsc ran stays newer than the stamp. */
function stamp(at) {
  writeFileSync(STAMP, `${new Date(at).toISOString()}\n`)
  utimesSync(STAMP, at / 1000, at / 1000)
}

/** Builds when stale; 0 when the build is current, else the failed step's exit code (the build stays stale). */
export function buildIfStale() {
  if (!stale()) return 0
  const startedAt = Date.now()
  // tsc is incremental (tsconfig.build.json): only what changed is compiled again.
  for (const step of [[join('node_modules', 'typescript', 'bin', 'tsc'), '-p', PROJECT], [join('scripts', 'bundle.mjs')]]) {
    const run = spawnSync(process.execPath, step, { stdio: 'inherit' })
    if (run.status !== 0) return run.status ?? 1
  }
  stamp(startedAt)
  return 0
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--stamp')) stamp(Date.now())
  else process.exitCode = buildIfStale()
}
