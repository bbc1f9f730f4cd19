/** Messages, events, contacts and To Do tasks: CRUD, move, calendarView and delta. */
import { GraphHttpError, badRequest, notFound } from '../errors.js'
import { runPage, startRound, type DeltaKind, type TokenState } from '../delta.js'
import { parseFilter } from '../odata/filter.js'
import { getOption, parseExpand, parseIntOption, parseSelect } from '../odata/query.js'
import type { Router } from '../router.js'
import { linkedResourceJson, renderItem } from '../store/render.js'
import { eventSchema, contactSchema, linkedResourceSchema, messageSchema, moveSchema, taskSchema } from '../store/schemas.js'
import { CONTAINER_OF, parseDateTimeTz, type WriteInput } from '../store/store.js'
import type { Container, Item, ItemKind, Mailbox } from '../store/types.js'
import { checkIfMatch, mailboxOf, noContent, ok, readBody, type Ctx, type GraphResponse, type Handler } from './context.js'
import { contextUrl, listItems } from './listing.js'

const SCHEMAS = { message: messageSchema, event: eventSchema, contact: contactSchema, task: taskSchema } as const
const TYPE_NAMES: Record<ItemKind, string> = { message: 'message', event: 'event', contact: 'contact', task: 'todoTask' }
const SEGMENT: Record<ItemKind, string> = { message: 'messages', event: 'events', contact: 'contacts', task: 'tasks' }

type ContainerRef = (ctx: Ctx, mb: Mailbox) => Container | undefined

const none: ContainerRef = () => undefined
const param =
  (kind: ItemKind, name: string): ContainerRef =>
  (ctx, mb) =>
    ctx.core.store.requireContainer(mb, CONTAINER_OF[kind], ctx.params[name] ?? '')
const wellKnown =
  (kind: ItemKind, name: string): ContainerRef =>
  (ctx, mb) =>
    ctx.core.store.requireContainer(mb, CONTAINER_OF[kind], name)

function toWriteInput(kind: ItemKind, body: Record<string, unknown>): WriteInput {
  const { singleValueExtendedProperties, linkedResources, multiValueExtendedProperties: _m, ...fields } = body as Record<string, unknown> & {
    singleValueExtendedProperties?: WriteInput['ext']
    linkedResources?: Array<Record<string, string | null | undefined>>
    multiValueExtendedProperties?: unknown
  }
  return {
    fields,
    ext: singleValueExtendedProperties,
    linkedResources:
      kind === 'task'
        ? linkedResources?.map((l) => ({
            applicationName: l['applicationName'] ?? null,
            displayName: l['displayName'] ?? null,
            externalId: l['externalId'] ?? null,
            webUrl: l['webUrl'] ?? null,
          }))
        : undefined,
  }
}

function entityContext(ctx: Ctx, mb: Mailbox, kind: ItemKind): string {
  return contextUrl(ctx, `users('${mb.upn}')/${SEGMENT[kind]}/$entity`)
}

function renderOne(ctx: Ctx, mb: Mailbox, item: Item): Record<string, unknown> {
  return { '@odata.context': entityContext(ctx, mb, item.kind), ...renderItem(item, { immutable: ctx.immutable, bodyText: ctx.prefer.bodyText, timeZone: ctx.prefer.timeZone }) }
}

function* ofKind(mb: Mailbox, kind: ItemKind, container: Container | undefined): Iterable<Item> {
  if (container) {
    for (const key of container.members) {
      const it = mb.items.get(key)
      if (it) yield it
    }
    return
  }
  for (const it of mb.items.values()) if (it.kind === kind) yield it
}

function list(kind: ItemKind, ref: ContainerRef): Handler {
  return (ctx) => {
    const mb = mailboxOf(ctx)
    const c = ref(ctx, mb)
    return listItems(ctx, ofKind(mb, kind, c), `users('${mb.upn}')/${SEGMENT[kind]}`)
  }
}

function create(kind: ItemKind, ref: ContainerRef): Handler {
  return (ctx) => {
    const mb = mailboxOf(ctx)
    const c = ref(ctx, mb) ?? ctx.core.store.defaultContainer(mb, CONTAINER_OF[kind])
    const body = readBody(ctx, SCHEMAS[kind], TYPE_NAMES[kind]) as Record<string, unknown>
    if (kind === 'event' && typeof body['transactionId'] === 'string') {
      const existing = mb.transactionIds.get(body['transactionId'])
      const it = existing === undefined ? undefined : mb.items.get(existing)
      if (it) return ok(renderOne(ctx, mb, it), 201)
    }
    if (kind === 'message' && body['isDraft'] === undefined) body['isDraft'] = true
    const item = ctx.core.store.createItem(mb, kind, c, toWriteInput(kind, body))
    return ok(renderOne(ctx, mb, item), 201, { location: `${ctx.core.graphBase}/users/${mb.id}/${SEGMENT[kind]}/${item.restId}` })
  }
}

function find(ctx: Ctx, kind: ItemKind, ref: ContainerRef, idParam = 'id'): { mb: Mailbox; item: Item } {
  const mb = mailboxOf(ctx)
  const c = ref(ctx, mb)
  return { mb, item: ctx.core.store.requireItem(mb, ctx.params[idParam] ?? '', kind, c) }
}

function get(kind: ItemKind, ref: ContainerRef): Handler {
  return (ctx) => {
    const { mb, item } = find(ctx, kind, ref)
    const select = parseSelect(ctx.req.query)
    const expand = listExpand(ctx)
    return ok({
      '@odata.context': entityContext(ctx, mb, kind),
      ...renderItem(item, { immutable: ctx.immutable, select, bodyText: ctx.prefer.bodyText, timeZone: ctx.prefer.timeZone, ...expand }),
    })
  }
}

function listExpand(ctx: Ctx): { expandExt: boolean; extFilter: ReturnType<typeof parseExpand>['extFilter']; expandLinked: boolean } {
  const e = parseExpand(ctx.req.query)
  return { expandExt: e.ext, extFilter: e.extFilter, expandLinked: e.linkedResources }
}

function patch(kind: ItemKind, ref: ContainerRef): Handler {
  return (ctx) => {
    const { mb, item } = find(ctx, kind, ref)
    checkIfMatch(ctx, item.changeKey)
    const body = readBody(ctx, SCHEMAS[kind], TYPE_NAMES[kind]) as Record<string, unknown>
    if (kind === 'task' && body['linkedResources'] !== undefined) {
      throw new GraphHttpError(400, 'RequestBodyRead', "Invalid request body: 'linkedResources' cannot be set with PATCH; use the linkedResources collection.")
    }
    const updated = ctx.core.store.updateItem(mb, item, toWriteInput(kind, body))
    return ok(renderOne(ctx, mb, updated))
  }
}

function del(kind: ItemKind, ref: ContainerRef): Handler {
  return (ctx) => {
    const { mb, item } = find(ctx, kind, ref)
    checkIfMatch(ctx, item.changeKey)
    ctx.core.store.deleteItem(mb, item)
    return noContent()
  }
}

function move(kind: ItemKind, ref: ContainerRef): Handler {
  return (ctx) => {
    const { mb, item } = find(ctx, kind, ref)
    const body = readBody(ctx, moveSchema, 'move')
    const dest = ctx.core.store.findContainer(mb, CONTAINER_OF[kind], body.destinationId)
    if (!dest) throw new GraphHttpError(404, 'ErrorItemNotFound', `The destination folder '${body.destinationId}' was not found in the store.`)
    ctx.core.store.moveItem(mb, item, dest)
    return ok(renderOne(ctx, mb, item), 201)
  }
}

// ---------- calendarView ----------

const WINDOW_MESSAGE =
  'This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.'

function readWindow(ctx: Ctx): { ws: string; we: string; wsMs: number; weMs: number } {
  const s = getOption(ctx.req.query, 'startDateTime')
  const e = getOption(ctx.req.query, 'endDateTime')
  if (s === undefined || e === undefined || s === '' || e === '') throw new GraphHttpError(400, 'ErrorInvalidParameter', WINDOW_MESSAGE)
  const ws = parseDateTimeTz({ dateTime: s }, 'startDateTime')
  const we = parseDateTimeTz({ dateTime: e }, 'endDateTime')
  if (we.ms <= ws.ms) throw new GraphHttpError(400, 'ErrorInvalidParameter', `The value of 'endDateTime' (${e}) must be after 'startDateTime' (${s}).`)
  return { ws: new Date(ws.ms).toISOString(), we: new Date(we.ms).toISOString(), wsMs: ws.ms, weMs: we.ms }
}

function calendarView(ref: ContainerRef): Handler {
  return (ctx) => {
    const mb = mailboxOf(ctx)
    const c = ref(ctx, mb) ?? ctx.core.store.defaultContainer(mb, 'calendar')
    const w = readWindow(ctx)
    const items: Item[] = []
    for (const it of ofKind(mb, 'event', c)) {
      // A series master is not listed itself: its occurrences and exceptions in the window are.
      if (it.data['recurrence']) items.push(...ctx.core.store.seriesInstances(it, w.wsMs, w.weMs))
      else if (((it.startMs ?? 0) < w.weMs && (it.endMs ?? 0) > w.wsMs) || (it.startMs === it.endMs && (it.startMs ?? 0) >= w.wsMs && (it.startMs ?? 0) < w.weMs)) items.push(it)
    }
    items.sort((a, b) => (a.startMs ?? 0) - (b.startMs ?? 0))
    return listItems(ctx, items, `users('${mb.upn}')/calendarView`)
  }
}

/** `GET …/events/{id}/instances?startDateTime=&endDateTime=`: occurrences and exceptions of a series master in the window. */
function instances(ref: ContainerRef): Handler {
  return (ctx) => {
    const { mb, item } = find(ctx, 'event', ref)
    const w = readWindow(ctx)
    const list = item.data['recurrence'] && !item.occurrence ? ctx.core.store.seriesInstances(item, w.wsMs, w.weMs) : []
    return listItems(ctx, list, `users('${mb.upn}')/events('${item.occurrence ? item.restId : ctx.immutable ? item.immutableId : item.restId}')/instances`)
  }
}

// ---------- delta ----------

const COLLECTION: Record<DeltaKind, string> = { message: 'message', event: 'event', contact: 'contact', task: 'todoTask' }

function gone(ctx: Ctx, tok: TokenState): GraphHttpError {
  const headers: Record<string, string> = {}
  if (ctx.core.faults.goneWithLocation) {
    const w = tok.q.ws !== undefined ? `?startDateTime=${tok.q.ws}&endDateTime=${tok.q.we ?? ''}` : ''
    headers['location'] = `${ctx.core.graphBase}/${tok.q.p}${w}`
  }
  return new GraphHttpError(410, 'SyncStateNotFound', ctx.core.syncStates.describe(tok.sid, tok.g), { headers })
}

function delta(kind: DeltaKind, ref: (ctx: Ctx, mb: Mailbox) => { c: Container; path: string }, windowed: boolean): Handler {
  return (ctx): GraphResponse => {
    const mb = mailboxOf(ctx)
    const core = ctx.core
    const q = ctx.req.query
    const skip = getOption(q, '$skiptoken')
    const dt = getOption(q, '$deltatoken')
    let state: TokenState
    let container: Container
    if (skip !== undefined || dt !== undefined) {
      if (skip !== undefined && dt !== undefined) throw badRequest('Only one of $skiptoken and $deltatoken may be given.', 'invalidRequest')
      const tok = core.codec.decode((skip ?? dt) as string)
      if (tok.mb !== mb.id || tok.q.k !== kind || (skip !== undefined) !== (tok.to !== null)) {
        throw badRequest('The token does not belong to this delta request.', 'invalidRequest')
      }
      if (!core.syncStates.check(tok.sid, tok.g)) throw gone(ctx, tok)
      const c = mb.containers.get(tok.q.c)
      if (!c) throw notFound()
      container = c
      state = tok.to === null ? startRound(tok, mb, c, core.lag.visibleSeq(mb)) : tok
      if (tok.to === null) core.syncStates.pin(tok.sid, tok.g)
    } else {
      const r = ref(ctx, mb)
      container = r.c
      let ws: string | undefined
      let we: string | undefined
      if (windowed) {
        const w = readWindow(ctx)
        ws = w.ws
        we = w.we
      }
      const ct = getOption(q, 'changeType')
      if (ct !== undefined && ct !== 'created' && ct !== 'updated' && ct !== 'deleted') {
        throw badRequest(`Invalid value '${ct}' for query option 'changeType': expected created, updated or deleted.`, 'invalidRequest')
      }
      const f = getOption(q, '$filter')
      if (f !== undefined) {
        if (kind !== 'message' || !/^\s*receivedDateTime\s+(ge|gt)\s+\S+\s*$/i.test(f)) {
          throw badRequest(`Unsupported $filter '${f}' on delta: only 'receivedDateTime ge {value}' and 'receivedDateTime gt {value}' are supported, on messages.`, 'invalidRequest')
        }
        parseFilter(f)
      }
      const x = getOption(q, '$expand')
      if (x !== undefined) parseExpand(q) // reject a bad $expand now, not on a later page
      const sid = core.syncStates.create()
      state = {
        v: 1,
        sid,
        g: 0,
        mb: mb.id,
        q: { k: kind, c: container.id, p: r.path, sel: windowed ? undefined : parseSelect(q), ct, ws, we, top: parseIntOption(q, '$top'), f, x },
        from: 0,
        to: core.lag.visibleSeq(mb),
        pos: 0,
        n: 0,
        init: true,
      }
    }
    const pref = ctx.prefer.maxPageSize
    const pageSize = pref !== undefined ? Math.min(pref, core.options.delta.maxPageSize) : core.options.delta.defaultPageSize
    const emptyPage = core.faults.emptyPages > 0
    if (emptyPage) core.faults.emptyPages--
    const out = runPage({ mb, container, state, pageSize, store: core.store, immutable: ctx.immutable, duplicates: core.faults.duplicates, emptyPage, timeZone: ctx.prefer.timeZone })
    if (core.faults.shuffle) {
      for (let i = out.value.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1))
        const t = out.value[i] as Record<string, unknown>
        out.value[i] = out.value[j] as Record<string, unknown>
        out.value[j] = t
      }
    }
    const next = { ...out.next, g: core.syncStates.issue(state.sid) }
    const isDelta = next.to === null
    if (isDelta) core.syncStates.pin(state.sid, undefined)
    const link = `${core.graphBase}/${next.q.p}?${isDelta ? '$deltatoken' : '$skiptoken'}=${core.codec.encode(next)}`
    const applied = ['odata.track-changes']
    if (pref !== undefined) applied.push(`odata.maxpagesize=${pageSize}`)
    return ok(
      {
        '@odata.context': contextUrl(ctx, `Collection(${COLLECTION[kind]})`),
        [isDelta ? '@odata.deltaLink' : '@odata.nextLink']: link,
        value: out.value,
      },
      200,
      { 'preference-applied': applied.join(', ') },
    )
  }
}

// ---------- linked resources ----------

function linkedList(): Handler {
  return (ctx) => {
    const { item } = find(ctx, 'task', param('task', 'list'), 'task')
    return ok({ '@odata.context': contextUrl(ctx, 'linkedResources'), value: item.linkedResources.map(linkedResourceJson) })
  }
}

function linkedCreate(): Handler {
  return (ctx) => {
    const { mb, item } = find(ctx, 'task', param('task', 'list'), 'task')
    const body = readBody(ctx, linkedResourceSchema, 'linkedResource')
    ctx.core.store.updateItem(mb, item, toWriteInput('task', { linkedResources: [body] }))
    const lr = item.linkedResources[item.linkedResources.length - 1]
    return ok({ '@odata.context': contextUrl(ctx, 'linkedResources/$entity'), ...linkedResourceJson(lr as Item['linkedResources'][number]) }, 201)
  }
}

function linkedOne(method: 'GET' | 'PATCH' | 'DELETE'): Handler {
  return (ctx) => {
    const { mb, item } = find(ctx, 'task', param('task', 'list'), 'task')
    const idx = item.linkedResources.findIndex((l) => l.id === ctx.params['lr'])
    const lr = item.linkedResources[idx]
    if (!lr) throw notFound()
    if (method === 'GET') return ok({ '@odata.context': contextUrl(ctx, 'linkedResources/$entity'), ...linkedResourceJson(lr) })
    if (method === 'DELETE') {
      item.linkedResources.splice(idx, 1)
      ctx.core.store.touch(mb, item)
      return noContent()
    }
    const body = readBody(ctx, linkedResourceSchema, 'linkedResource')
    for (const [k, v] of Object.entries(body)) if (v !== undefined) (lr as unknown as Record<string, unknown>)[k] = v
    ctx.core.store.touch(mb, item)
    return ok({ '@odata.context': contextUrl(ctx, 'linkedResources/$entity'), ...linkedResourceJson(lr) })
  }
}

// ---------- registration ----------

function crud(r: Router<Handler>, kind: ItemKind, prefix: string, ref: ContainerRef, idPattern = ':id'): void {
  r.add('GET', prefix, list(kind, ref))
  r.add('POST', prefix, create(kind, ref))
  r.add('GET', `${prefix}/${idPattern}`, get(kind, ref))
  r.add('PATCH', `${prefix}/${idPattern}`, patch(kind, ref))
  r.add('DELETE', `${prefix}/${idPattern}`, del(kind, ref))
}

export function registerItemRoutes(r: Router<Handler>): void {
  const u = 'users/:user'
  const upn = (mb: Mailbox): string => `users/${encodeURIComponent(mb.upn)}`

  // messages
  r.add('GET', `${u}/mailFolders/:f/messages/delta`, delta('message', (ctx, mb) => {
    const c = ctx.core.store.requireContainer(mb, 'mailFolder', ctx.params['f'] ?? '')
    return { c, path: `${upn(mb)}/mailfolders('${c.id}')/messages/delta` }
  }, false))
  r.add('GET', `${u}/messages/delta`, () => {
    throw badRequest('Delta on messages is only supported per folder: use /mailFolders/{id}/messages/delta.', 'invalidRequest')
  })
  r.add('POST', `${u}/messages/:id/move`, move('message', none))
  r.add('POST', `${u}/mailFolders/:f/messages/:id/move`, move('message', param('message', 'f')))
  crud(r, 'message', `${u}/messages`, none)
  crud(r, 'message', `${u}/mailFolders/:f/messages`, param('message', 'f'))

  // events
  const calView = (c: ContainerRef, pathOf: (mb: Mailbox, c: Container) => string) =>
    delta('event', (ctx, mb) => {
      const cc = c(ctx, mb) ?? ctx.core.store.defaultContainer(mb, 'calendar')
      return { c: cc, path: pathOf(mb, cc) }
    }, true)
  r.add('GET', `${u}/calendarView/delta`, calView(none, (mb) => `${upn(mb)}/calendarview/delta`))
  r.add('GET', `${u}/calendar/calendarView/delta`, calView(none, (mb) => `${upn(mb)}/calendar/calendarview/delta`))
  r.add('GET', `${u}/calendars/:c/calendarView/delta`, calView(param('event', 'c'), (mb, c) => `${upn(mb)}/calendars('${c.id}')/calendarview/delta`))
  r.add('GET', `${u}/calendarView`, calendarView(none))
  r.add('GET', `${u}/calendar/calendarView`, calendarView(none))
  r.add('GET', `${u}/calendars/:c/calendarView`, calendarView(param('event', 'c')))
  r.add('GET', `${u}/events/delta`, () => {
    throw badRequest('events/delta is a beta-only API; use calendarView/delta with startDateTime and endDateTime.', 'invalidRequest')
  })
  r.add('GET', `${u}/events/:id/instances`, instances(none))
  r.add('GET', `${u}/calendar/events/:id/instances`, instances(wellKnown('event', 'calendar')))
  r.add('GET', `${u}/calendars/:c/events/:id/instances`, instances(param('event', 'c')))
  crud(r, 'event', `${u}/events`, none)
  crud(r, 'event', `${u}/calendar/events`, wellKnown('event', 'calendar'))
  crud(r, 'event', `${u}/calendars/:c/events`, param('event', 'c'))

  // contacts
  r.add('GET', `${u}/contacts/delta`, delta('contact', (ctx, mb) => ({ c: ctx.core.store.defaultContainer(mb, 'contactFolder'), path: `${upn(mb)}/contacts/delta` }), false))
  r.add('GET', `${u}/contactFolders/:f/contacts/delta`, delta('contact', (ctx, mb) => {
    const c = ctx.core.store.requireContainer(mb, 'contactFolder', ctx.params['f'] ?? '')
    return { c, path: `${upn(mb)}/contactfolders('${c.id}')/contacts/delta` }
  }, false))
  crud(r, 'contact', `${u}/contacts`, none)
  crud(r, 'contact', `${u}/contactFolders/:f/contacts`, param('contact', 'f'))

  // To Do tasks
  r.add('GET', `${u}/todo/lists/:list/tasks/delta`, delta('task', (ctx, mb) => {
    const c = ctx.core.store.requireContainer(mb, 'todoList', ctx.params['list'] ?? '')
    return { c, path: `${upn(mb)}/todo/lists/${c.id}/tasks/delta` }
  }, false))
  crud(r, 'task', `${u}/todo/lists/:list/tasks`, param('task', 'list'))
  r.add('GET', `${u}/todo/lists/:list/tasks/:task/linkedResources`, linkedList())
  r.add('POST', `${u}/todo/lists/:list/tasks/:task/linkedResources`, linkedCreate())
  r.add('GET', `${u}/todo/lists/:list/tasks/:task/linkedResources/:lr`, linkedOne('GET'))
  r.add('PATCH', `${u}/todo/lists/:list/tasks/:task/linkedResources/:lr`, linkedOne('PATCH'))
  r.add('DELETE', `${u}/todo/lists/:list/tasks/:task/linkedResources/:lr`, linkedOne('DELETE'))
}
