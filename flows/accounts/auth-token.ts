import { Type } from '@sinclair/typebox'
import { eq } from 'drizzle-orm'
import { apiClients } from '../../db/schema.js'
import { dbCall } from '../../db/errors.js'
import { errors } from '../../lib/errors.js'
import { defineFlow } from '../define.js'
import { accountDeps, StoredText } from './shared.js'

const INVALID_CLIENT = 'Invalid client credentials'

/** Client credentials → an access token for the client (role `client`, with its scopes). */
export const authToken = defineFlow({
  name: 'auth.token',
  summary: 'Client credentials: {client_id, client_secret} → {access_token, token_type, expires_in}',
  input: Type.Object(
    {
      client_id: StoredText({ minLength: 1, maxLength: 128 }),
      client_secret: Type.String({ minLength: 1, maxLength: 256 }),
      grant_type: Type.Optional(Type.Literal('client_credentials')),
    },
    { additionalProperties: false },
  ),
  output: Type.Object({
    access_token: Type.String(),
    token_type: Type.Literal('Bearer'),
    expires_in: Type.Integer({ description: 'seconds' }),
  }),
  // Form bodies too: OAuth2 client-credentials clients send them (RFC 6749 §4.4).
  http: { method: 'POST', path: '/auth/token', root: true, form: true },
  auth: 'public',
  async run(input, ctx) {
    const { db, tokens, passwords } = accountDeps(ctx)
    const client = await ctx.step('findClient', async () => {
      const rows = await dbCall(() =>
        db
          .select({ clientId: apiClients.clientId, secretHash: apiClients.secretHash, scopes: apiClients.scopes, disabled: apiClients.disabled })
          .from(apiClients)
          .where(eq(apiClients.clientId, input.client_id))
          .limit(1),
      )
      return rows[0]
    })
    const valid = await ctx.step('verifySecret', () =>
      client ? passwords.verify(input.client_secret, client.secretHash) : passwords.verifyDummy(input.client_secret),
    )
    if (!valid || !client || client.disabled) throw errors.unauthorized(INVALID_CLIENT)
    const { token, expiresIn } = await ctx.step('signToken', () => tokens.sign({ sub: client.clientId, role: 'client', scopes: client.scopes }))
    return { access_token: token, token_type: 'Bearer' as const, expires_in: expiresIn }
  },
})
