#!/usr/bin/env node
// Links tsc's output (dist/) into the files `flowgate` runs (dist/app/): one module per command's
// code paths instead of ~600 files, so a start reads, resolves and compiles a few large files. That
// is most of what a start costs before it does anything (Node 20 has no module compile cache; 22.1
// does). Run by `npm run build` after tsc; the output is what `npm start`, the `flowgate` bin, the
// image and the CLI tests run.
//   node scripts/bundle.mjs
import { rmSync } from 'node:fs'
import { build } from 'esbuild'

const OUT_DIR = 'dist/app'

// Left to Node's loader, each for a reason. (Everything else is linked, which is why the code imports
// CommonJS packages statically: a dynamic import() of a linked CommonJS package yields only its
// default export, so what must load on demand is a module of ours that imports them, like
// lib/otel-sdk.ts.)
const EXTERNAL = [
  // finds its .wasm and data files next to its own module, and runs on its own thread (db/pglite-thread.mjs)
  '@electric-sql/pglite',
  // patched at load by the OpenTelemetry instrumentations (lib/instrumentation.ts), which hook require()
  'pg',
  'ioredis',
  // optional native add-ons that pg and ws try to load
  'pg-native',
  'bufferutil',
  'utf-8-validate',
]

rmSync(OUT_DIR, { recursive: true, force: true })
await build({
  entryPoints: { main: 'dist/cli/main.js' },
  outdir: OUT_DIR,
  bundle: true,
  // Each command's parts stay loaded on demand (`flowgate flows` does not load the gateway).
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  // Linked CommonJS packages call require() for Node's own modules.
  banner: { js: "import { createRequire as __flowgateRequire } from 'node:module'; const require = __flowgateRequire(import.meta.url);" },
  // Stack traces map back to the TypeScript under `node --enable-source-maps`.
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
})

