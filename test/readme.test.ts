// The README is the front door: its configuration table must name every setting there is.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { describeConfig } from '../lib/config.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

describe('README', () => {
  it('documents every configuration variable with its default', () => {
    const missing = describeConfig().filter((c) => !readme.includes(`| \`${c.env}\` | ${c.default === '' ? '' : `\`${c.default}\``} |`))
    expect(missing.map((c) => c.env)).toEqual([])
  })

  it('starts with the install-and-start and test lines', () => {
    expect(readme).toContain('npm ci && npm start')
    expect(readme).toContain('npm test')
  })
})
