// The example flow of the README ("adding a flow"): a POST with a JSON body and a query parameter,
// three named steps, input validation from the schema and a typed error.
import { Type } from '@sinclair/typebox'
import { errors } from '../../lib/errors.js'
import { defineFlow } from '../define.js'

// A fixed catalog keeps the example self-contained; a real flow would read ctx.deps.db. Maps, not
// object literals: a key the caller chooses (`constructor`, `__proto__`, `toString`) must find nothing.
const PRICES_CENTS: ReadonlyMap<string, number> = new Map([['coffee-beans', 1450], ['paper-filter', 395], ['grinder', 8900], ['kettle', 5400]])
const RATES: ReadonlyMap<string, number> = new Map([['USD', 1], ['EUR', 0.92], ['GBP', 0.79]])
const COUPONS: ReadonlyMap<string, number> = new Map([['WELCOME10', 0.1]])

export const quote = defineFlow({
  name: 'orders.quote',
  summary: 'Prices a basket: ?currency=USD|EUR|GBP, body {items:[{sku, quantity}], coupon?}',
  input: Type.Object(
    {
      currency: Type.Union([Type.Literal('USD'), Type.Literal('EUR'), Type.Literal('GBP')], { default: 'USD' }),
      items: Type.Array(
        Type.Object(
          {
            sku: Type.String({ minLength: 1, maxLength: 64 }),
            quantity: Type.Integer({ minimum: 1, maximum: 1000 }),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: 100 },
      ),
      coupon: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    },
    { additionalProperties: false },
  ),
  output: Type.Object({
    currency: Type.String(),
    lines: Type.Array(Type.Object({ sku: Type.String(), quantity: Type.Integer(), amount: Type.Number() })),
    subtotal: Type.Number(),
    discount: Type.Number(),
    total: Type.Number(),
  }),
  http: { method: 'POST', path: '/orders/quote' },
  auth: 'public',
  async run(input, ctx) {
    const currency = input.currency ?? 'USD'
    const lines = await ctx.step('priceItems', () =>
      input.items.map(({ sku, quantity }) => {
        const cents = PRICES_CENTS.get(sku)
        if (cents === undefined) throw errors.notFound(`Unknown SKU '${sku}'`)
        return { sku, quantity, cents: cents * quantity }
      }),
    )
    const discountRate = await ctx.step('applyCoupon', () => {
      if (input.coupon === undefined) return 0
      const rate = COUPONS.get(input.coupon)
      if (rate === undefined) throw errors.validation([{ field: 'coupon', message: 'is not a valid coupon' }])
      return rate
    })
    return ctx.step('convertCurrency', () => {
      const rate = RATES.get(currency) ?? 1
      const money = (cents: number) => Math.round(cents * rate) / 100
      const subtotalCents = lines.reduce((sum, l) => sum + l.cents, 0)
      const discountCents = Math.round(subtotalCents * discountRate)
      return {
        currency,
        lines: lines.map((l) => ({ sku: l.sku, quantity: l.quantity, amount: money(l.cents) })),
        subtotal: money(subtotalCents),
        discount: money(discountCents),
        total: money(subtotalCents - discountCents),
      }
    })
  },
})
