/** Users, mail folders, calendars, contact folders, To Do lists, categories and translateExchangeIds. */
import { GraphHttpError, notFound } from '../errors.js'
import type { Router } from '../router.js'
import { renderContainer } from '../store/render.js'
import {
  calendarSchema,
  categoryPatchSchema,
  categorySchema,
  contactFolderSchema,
  mailFolderPatchSchema,
  mailFolderSchema,
  todoListSchema,
  translateSchema,
} from '../store/schemas.js'
import type { Container, ContainerKind, Mailbox } from '../store/types.js'
import { checkIfMatch, mailboxOf, noContent, ok, readBody, type Ctx, type Handler } from './context.js'
import { contextUrl, listPlain } from './listing.js'

const SEG: Record<ContainerKind, string> = {
  mailFolder: 'mailFolders',
  calendar: 'calendars',
  contactFolder: 'contactFolders',
  todoList: 'todo/lists',
}

const SCHEMA = {
  mailFolder: mailFolderSchema,
  calendar: calendarSchema,
  contactFolder: contactFolderSchema,
  todoList: todoListSchema,
} as const

const PATCH_SCHEMA = {
  mailFolder: mailFolderPatchSchema,
  calendar: calendarSchema.partial(),
  contactFolder: contactFolderSchema.partial(),
  todoList: todoListSchema.partial(),
} as const

const TYPE: Record<ContainerKind, string> = {
  mailFolder: 'mailFolder',
  calendar: 'calendar',
  contactFolder: 'contactFolder',
  todoList: 'todoTaskList',
}

function one(ctx: Ctx, mb: Mailbox, c: Container): Record<string, unknown> {
  return { '@odata.context': contextUrl(ctx, `users('${mb.upn}')/${SEG[c.kind]}/$entity`), ...renderContainer(mb, c) }
}

function containers(kind: ContainerKind, parentParam?: string): Handler {
  return (ctx) => {
    const mb = mailboxOf(ctx)
    const parent = parentParam === undefined ? undefined : ctx.core.store.requireContainer(mb, kind, ctx.params[parentParam] ?? '')
    const rows: Record<string, unknown>[] = []
    for (const c of mb.containers.values()) {
      if (c.kind !== kind) continue
      if (parent ? c.parentId !== parent.id : c.parentId !== undefined) continue
      rows.push(renderContainer(mb, c))
    }
    return listPlain(ctx, rows, `users('${mb.upn}')/${SEG[kind]}`)
  }
}

function createContainer(kind: ContainerKind, parentParam?: string): Handler {
  return (ctx) => {
    const mb = mailboxOf(ctx)
    const parent = parentParam === undefined ? undefined : ctx.core.store.requireContainer(mb, kind, ctx.params[parentParam] ?? '')
    const body = readBody(ctx, SCHEMA[kind], TYPE[kind]) as Record<string, unknown>
    const nameKey = kind === 'calendar' ? 'name' : 'displayName'
    for (const c of mb.containers.values()) {
      if (c.kind === kind && c.parentId === parent?.id && String(c.data[nameKey]).toLowerCase() === String(body[nameKey]).toLowerCase()) {
        throw new GraphHttpError(409, 'ErrorFolderExists', 'A folder with the specified name already exists.')
      }
    }
    const c = ctx.core.store.createContainer(mb, kind, { ...body }, undefined, parent?.id)
    return ok(one(ctx, mb, c), 201)
  }
}

function getContainer(kind: ContainerKind, name?: string): Handler {
  return (ctx) => {
    const mb = mailboxOf(ctx)
    return ok(one(ctx, mb, ctx.core.store.requireContainer(mb, kind, name ?? ctx.params['id'] ?? '')))
  }
}

function patchContainer(kind: ContainerKind): Handler {
  return (ctx) => {
    const mb = mailboxOf(ctx)
    const c = ctx.core.store.requireContainer(mb, kind, ctx.params['id'] ?? '')
    checkIfMatch(ctx, c.changeKey)
    const body = readBody(ctx, PATCH_SCHEMA[kind], TYPE[kind]) as Record<string, unknown>
    const clean = Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined))
    ctx.core.store.updateContainer(c, clean)
    return ok(one(ctx, mb, c))
  }
}

function deleteContainer(kind: ContainerKind): Handler {
  return (ctx) => {
    const mb = mailboxOf(ctx)
    const c = ctx.core.store.requireContainer(mb, kind, ctx.params['id'] ?? '')
    ctx.core.store.deleteContainer(mb, c)
    return noContent()
  }
}

function userJson(mb: Mailbox): Record<string, unknown> {
  return { id: mb.id, userPrincipalName: mb.upn, displayName: mb.displayName, mail: mb.upn }
}

const ENCODERS: Record<string, { from: (s: string) => string; to: (s: string) => string }> = {
  restId: { from: (s) => s, to: (s) => s },
  restImmutableEntryId: { from: (s) => s, to: (s) => s },
  ewsId: { from: (s) => s.replace(/\+/g, '-').replace(/\//g, '_'), to: (s) => s.replace(/-/g, '+').replace(/_/g, '/') },
  entryId: { from: (s) => Buffer.from(s, 'base64').toString('utf8'), to: (s) => Buffer.from(s).toString('base64') },
  immutableEntryId: { from: (s) => Buffer.from(s, 'base64').toString('utf8'), to: (s) => Buffer.from(s).toString('base64') },
}
const IMMUTABLE_TYPES = new Set(['restImmutableEntryId', 'immutableEntryId'])

export function registerContainerRoutes(r: Router<Handler>): void {
  const u = 'users/:user'
  r.add('GET', 'users', (ctx) => listPlain(ctx, [...ctx.core.store.mailboxes.values()].map(userJson), 'users'))
  r.add('GET', u, (ctx) => {
    const mb = mailboxOf(ctx)
    return ok({ '@odata.context': contextUrl(ctx, 'users/$entity'), ...userJson(mb) })
  })

  for (const kind of ['mailFolder', 'calendar', 'contactFolder', 'todoList'] as const) {
    const seg = `${u}/${SEG[kind]}`
    r.add('GET', seg, containers(kind))
    r.add('POST', seg, createContainer(kind))
    r.add('GET', `${seg}/:id`, getContainer(kind))
    r.add('PATCH', `${seg}/:id`, patchContainer(kind))
    r.add('DELETE', `${seg}/:id`, deleteContainer(kind))
  }
  r.add('GET', `${u}/mailFolders/:id/childFolders`, containers('mailFolder', 'id'))
  r.add('POST', `${u}/mailFolders/:id/childFolders`, createContainer('mailFolder', 'id'))
  r.add('GET', `${u}/calendar`, getContainer('calendar', 'calendar'))

  // categories
  r.add('GET', `${u}/outlook/masterCategories`, (ctx) => {
    const mb = mailboxOf(ctx)
    return ok({ '@odata.context': contextUrl(ctx, `users('${mb.upn}')/outlook/masterCategories`), value: [...mb.categories.values()] })
  })
  r.add('POST', `${u}/outlook/masterCategories`, (ctx) => {
    const mb = mailboxOf(ctx)
    const body = readBody(ctx, categorySchema, 'outlookCategory')
    const cat = ctx.core.store.addCategory(mb, body.displayName, body.color ?? 'none')
    return ok({ '@odata.context': contextUrl(ctx, `users('${mb.upn}')/outlook/masterCategories/$entity`), ...cat }, 201)
  })
  const cat = (ctx: Ctx): { mb: Mailbox; id: string } => {
    const mb = mailboxOf(ctx)
    const id = ctx.params['id'] ?? ''
    if (!mb.categories.has(id)) throw notFound()
    return { mb, id }
  }
  r.add('GET', `${u}/outlook/masterCategories/:id`, (ctx) => {
    const { mb, id } = cat(ctx)
    return ok({ '@odata.context': contextUrl(ctx, `users('${mb.upn}')/outlook/masterCategories/$entity`), ...mb.categories.get(id) })
  })
  r.add('PATCH', `${u}/outlook/masterCategories/:id`, (ctx) => {
    const { mb, id } = cat(ctx)
    const body = readBody(ctx, categoryPatchSchema, 'outlookCategory')
    const c = mb.categories.get(id)
    if (c && body.color !== undefined) c.color = body.color
    ctx.core.store.version++
    return ok({ '@odata.context': contextUrl(ctx, `users('${mb.upn}')/outlook/masterCategories/$entity`), ...c })
  })
  r.add('DELETE', `${u}/outlook/masterCategories/:id`, (ctx) => {
    const { mb, id } = cat(ctx)
    mb.categories.delete(id)
    ctx.core.store.version++
    return noContent()
  })

  r.add('POST', `${u}/translateExchangeIds`, (ctx) => {
    const mb = mailboxOf(ctx)
    const body = readBody(ctx, translateSchema, 'translateExchangeIds')
    const src = ENCODERS[body.sourceIdType] as (typeof ENCODERS)[string]
    const dst = ENCODERS[body.targetIdType] as (typeof ENCODERS)[string]
    const value = body.inputIds.map((sourceId) => {
      const internal = src.from(sourceId)
      const key = IMMUTABLE_TYPES.has(body.sourceIdType) ? internal : mb.restIndex.get(internal)
      const item = key === undefined ? undefined : mb.items.get(key)
      const container = item ? undefined : mb.containers.get(internal)
      if (!item && !container) {
        return { sourceId, errorDetails: { code: 'ErrorInvalidIdMalformed', message: `Id '${sourceId}' is malformed or does not exist in this mailbox.` } }
      }
      const target = item ? (IMMUTABLE_TYPES.has(body.targetIdType) ? item.immutableId : item.restId) : (container as Container).id
      return { targetId: dst.to(target), sourceId }
    })
    return ok({ '@odata.context': contextUrl(ctx, 'Collection(microsoft.graph.convertIdResult)'), value })
  })
}
