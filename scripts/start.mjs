#!/usr/bin/env node
// `npm start`: builds when a source changed (./build-if-stale.mjs), then runs `flowgate start` in
// this same process, so a start with the build current pays for one Node process, not two.
import { buildIfStale } from './build-if-stale.mjs'

const code = buildIfStale()
if (code !== 0) process.exit(code)
process.argv.splice(2, 0, 'start')
await import('../dist/app/main.js')
