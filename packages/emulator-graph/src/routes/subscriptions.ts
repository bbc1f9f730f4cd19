/** /subscriptions: create (with validation handshake), list, get, renew, delete, reauthorize. */
import type { Router } from '../router.js'
import { subscriptionCreateSchema, subscriptionPatchSchema } from '../subscriptions.js'
import { noContent, ok, readBody, type Ctx, type Handler } from './context.js'
import { contextUrl } from './listing.js'

function own(ctx: Ctx): ReturnType<Ctx['core']['subs']['get']> {
  const s = ctx.core.subs.get(ctx.params['id'] ?? '')
  if (s.appId !== ctx.appId) return ctx.core.subs.get('\u0000')
  return s
}

export function registerSubscriptionRoutes(r: Router<Handler>): void {
  r.add('POST', 'subscriptions', async (ctx) => {
    const body = readBody(ctx, subscriptionCreateSchema, 'subscription')
    const s = await ctx.core.subs.create(ctx.appId, body, ctx.immutable)
    return ok({ '@odata.context': contextUrl(ctx, 'subscriptions/$entity'), ...ctx.core.subs.toJson(s) }, 201)
  })
  r.add('GET', 'subscriptions', (ctx) =>
    ok({ '@odata.context': contextUrl(ctx, 'subscriptions'), value: ctx.core.subs.list(ctx.appId).map((s) => ctx.core.subs.toJson(s)) }),
  )
  r.add('GET', 'subscriptions/:id', (ctx) => ok({ '@odata.context': contextUrl(ctx, 'subscriptions/$entity'), ...ctx.core.subs.toJson(own(ctx)) }))
  r.add('PATCH', 'subscriptions/:id', (ctx) => {
    const s = own(ctx)
    const body = readBody(ctx, subscriptionPatchSchema, 'subscription')
    ctx.core.subs.renew(s.id, body.expirationDateTime)
    return ok({ '@odata.context': contextUrl(ctx, 'subscriptions/$entity'), ...ctx.core.subs.toJson(s) })
  })
  r.add('DELETE', 'subscriptions/:id', (ctx) => {
    ctx.core.subs.delete(own(ctx).id)
    return noContent()
  })
  r.add('POST', 'subscriptions/:id/reauthorize', (ctx) => {
    ctx.core.subs.reauthorize(own(ctx).id)
    return ok(undefined, 200)
  })
}
