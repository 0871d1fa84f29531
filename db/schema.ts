// The one schema module (Drizzle). Emails are stored normalised (trimmed, lower-case) and are unique
// on lower(email) as well, so uniqueness holds regardless of case even for rows written by hand.
import { sql } from 'drizzle-orm'
import { boolean, index, pgTable, text, timestamp, uniqueIndex, uuid, type AnyPgColumn } from 'drizzle-orm/pg-core'

const timestamps = {
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true })
    .notNull()
    .defaultNow()
    .$onUpdate(() => new Date()),
}

export const admins = pgTable(
  'admins',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    email: text('email').notNull(),
    passwordHash: text('password_hash').notNull(),
    root: boolean('root').notNull().default(false),
    createdBy: uuid('created_by').references((): AnyPgColumn => admins.id, { onDelete: 'set null' }),
    ...timestamps,
  },
  (t) => [
    uniqueIndex('admins_email_lower_key').on(sql`lower(${t.email})`),
    // The list is paged in (created_at, id) order.
    index('admins_created_at_id_idx').on(t.createdAt, t.id),
  ],
)

export const customers = pgTable(
  'customers',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    email: text('email').notNull(),
    passwordHash: text('password_hash').notNull(),
    name: text('name'),
    // The original nats-flow-gateway registration's fields, kept so its clients work unchanged.
    firstName: text('first_name'),
    lastName: text('last_name'),
    ...timestamps,
  },
  (t) => [uniqueIndex('customers_email_lower_key').on(sql`lower(${t.email})`)],
)

/** OAuth-style API clients (client credentials); the secret is hashed like a password. */
export const apiClients = pgTable(
  'api_clients',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    clientId: text('client_id').notNull(),
    secretHash: text('secret_hash').notNull(),
    name: text('name').notNull(),
    scopes: text('scopes').array().notNull().default(sql`'{}'::text[]`),
    disabled: boolean('disabled').notNull().default(false),
    ...timestamps,
  },
  (t) => [uniqueIndex('api_clients_client_id_key').on(t.clientId)],
)

export const schema = { admins, customers, apiClients }
