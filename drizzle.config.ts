// drizzle-kit: `npx drizzle-kit generate` writes a new migration under db/migrations from db/schema.ts.
// Generation needs no database; migrations are applied by `flowgate db migrate` (and at start).
import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema.ts',
  out: './db/migrations',
  strict: true,
})
