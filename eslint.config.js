// @ts-check
import js from '@eslint/js'
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript'
import importX from 'eslint-plugin-import-x'
import tseslint from 'typescript-eslint'

// One way down (DESIGN.md, "Layout"): lib/ and schemas/ are the ground floor and import no process
// folder; the process folders never import one another (flows may use db/); cli/ sits on top.
const PROCESSES = ['server', 'flows', 'events', 'cache-proxy']
const ABOVE_GROUND = [...PROCESSES, 'db', 'cli', 'bench', 'test']
const zone = (target, from, message) => ({ target: `./${target}`, from: from.map((f) => `./${f}`), message })
const layering = [
  zone('lib', ABOVE_GROUND, 'lib/ is the ground floor: move what it needs down to lib/ or schemas/.'),
  zone('schemas', [...ABOVE_GROUND, 'lib'], 'schemas/ holds only schemas: it imports nothing of the project.'),
  zone('db', [...PROCESSES, 'cli', 'bench', 'test'], 'db/ is used by the flows; it imports only lib/ and schemas/.'),
  ...PROCESSES.map((p) =>
    zone(p, [...PROCESSES.filter((o) => o !== p), ...(p === 'flows' ? [] : ['db']), 'cli', 'bench', 'test'], `Processes never import each other: share it through lib/ or schemas/.`),
  ),
]

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.flowgate/**', 'db/migrations/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })] },
    rules: {
      'no-console': 'error',
      'no-empty': ['error', { allowEmptyCatch: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read configuration through lib/config.ts' }],
      'import-x/no-restricted-paths': ['error', { zones: layering }],
      'import-x/no-unresolved': 'error',
    },
  },
  {
    files: ['cli/**', '**/main.ts', 'bench/**', 'test/**', '**/*.test.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // Plain Node scripts that run before any build (npm start's build check).
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: { 'no-console': 'off', 'no-restricted-properties': 'off' },
  },
  {
    files: ['lib/config.ts', 'test/**', '**/*.test.ts', 'bench/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
)
