/**
 * A small OData `$filter` parser and evaluator covering what sync clients use against Outlook:
 * comparisons (`eq ne gt ge lt le`), `and`/`or`/`not`, parentheses, `contains`/`startswith`/`endswith`,
 * and lambdas such as `categories/any(c:c eq 'X')` and
 * `singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')`.
 * String comparison is case-insensitive, as on Exchange.
 */
import { badRequest } from '../errors.js'

type Tok =
  | { t: 'str'; v: string }
  | { t: 'num'; v: number }
  | { t: 'ident'; v: string }
  | { t: 'punc'; v: '(' | ')' | ',' | ':' }

export type FilterNode =
  | { k: 'and' | 'or'; a: FilterNode; b: FilterNode }
  | { k: 'not'; a: FilterNode }
  | { k: 'cmp'; op: string; left: ValueNode; right: ValueNode }
  | { k: 'fn'; name: string; args: ValueNode[] }
  | { k: 'lambda'; path: string[]; quant: 'any' | 'all'; v: string; body: FilterNode }
  | { k: 'bool'; v: ValueNode }

export type ValueNode = { k: 'lit'; v: string | number | boolean | null } | { k: 'path'; path: string[] }

function tokenize(src: string): Tok[] {
  const out: Tok[] = []
  let i = 0
  while (i < src.length) {
    const ch = src[i] as string
    if (ch === ' ' || ch === '\t' || ch === '\n') {
      i++
    } else if (ch === "'") {
      let s = ''
      i++
      for (;;) {
        if (i >= src.length) throw badRequest(`Invalid filter clause: unterminated string literal in '${src}'.`)
        if (src[i] === "'") {
          if (src[i + 1] === "'") {
            s += "'"
            i += 2
            continue
          }
          i++
          break
        }
        s += src[i]
        i++
      }
      out.push({ t: 'str', v: s })
    } else if (ch === '(' || ch === ')' || ch === ',' || ch === ':') {
      out.push({ t: 'punc', v: ch })
      i++
    } else {
      let j = i
      // date-time literals (2030-01-01T00:00:00Z) contain ':'; other words end at it (lambda `c:`)
      const stops = /[0-9-]/.test(ch) ? " \t\n(),'" : " \t\n(),:'"
      while (j < src.length && !stops.includes(src[j] as string)) j++
      const word = src.slice(i, j)
      if (/^-?\d+(\.\d+)?$/.test(word)) out.push({ t: 'num', v: Number(word) })
      else out.push({ t: 'ident', v: word })
      i = j
    }
  }
  return out
}

const CMP = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le'])
const FNS = new Set(['contains', 'startswith', 'endswith'])

class Parser {
  private i = 0
  constructor(
    private readonly toks: Tok[],
    private readonly src: string,
  ) {}
  private peek(): Tok | undefined {
    return this.toks[this.i]
  }
  private fail(what: string): never {
    throw badRequest(`Invalid filter clause: ${what} in '${this.src}'.`)
  }
  private isWord(w: string): boolean {
    const t = this.peek()
    return t?.t === 'ident' && t.v.toLowerCase() === w
  }
  private expect(p: string): void {
    const t = this.peek()
    if (t?.t !== 'punc' || t.v !== p) this.fail(`expected '${p}'`)
    this.i++
  }
  parse(): FilterNode {
    const n = this.or()
    if (this.i !== this.toks.length) this.fail('unexpected trailing input')
    return n
  }
  private or(): FilterNode {
    let a = this.and()
    while (this.isWord('or')) {
      this.i++
      a = { k: 'or', a, b: this.and() }
    }
    return a
  }
  private and(): FilterNode {
    let a = this.unary()
    while (this.isWord('and')) {
      this.i++
      a = { k: 'and', a, b: this.unary() }
    }
    return a
  }
  private unary(): FilterNode {
    if (this.isWord('not')) {
      this.i++
      return { k: 'not', a: this.unary() }
    }
    const t = this.peek()
    if (t?.t === 'punc' && t.v === '(') {
      this.i++
      const n = this.or()
      this.expect(')')
      return n
    }
    if (t?.t === 'ident' && FNS.has(t.v.toLowerCase()) && this.toks[this.i + 1]?.t === 'punc') {
      this.i++
      this.expect('(')
      const args = [this.value()]
      while (this.peek()?.t === 'punc' && (this.peek() as { v: string }).v === ',') {
        this.i++
        args.push(this.value())
      }
      this.expect(')')
      return { k: 'fn', name: t.v.toLowerCase(), args }
    }
    if (t?.t === 'ident') {
      const parts = t.v.split('/')
      const last = (parts[parts.length - 1] ?? '').toLowerCase()
      if ((last === 'any' || last === 'all') && this.toks[this.i + 1]?.t === 'punc') {
        this.i++
        this.expect('(')
        const v = this.peek()
        if (v?.t !== 'ident') this.fail('expected a lambda variable')
        this.i++
        this.expect(':')
        const body = this.or()
        this.expect(')')
        return { k: 'lambda', path: parts.slice(0, -1), quant: last, v: v.v, body }
      }
    }
    const left = this.value()
    const op = this.peek()
    if (op?.t === 'ident' && CMP.has(op.v.toLowerCase())) {
      this.i++
      return { k: 'cmp', op: op.v.toLowerCase(), left, right: this.value() }
    }
    return { k: 'bool', v: left }
  }
  private value(): ValueNode {
    const t = this.peek()
    if (!t) this.fail('unexpected end')
    this.i++
    if (t.t === 'str') return { k: 'lit', v: t.v }
    if (t.t === 'num') return { k: 'lit', v: t.v }
    if (t.t === 'ident') {
      const w = t.v
      if (w === 'true' || w === 'false') return { k: 'lit', v: w === 'true' }
      if (w === 'null') return { k: 'lit', v: null }
      if (/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?$/.test(w)) return { k: 'lit', v: w }
      return { k: 'path', path: w.split('/') }
    }
    return this.fail(`unexpected '${t.v}'`)
  }
}

export function parseFilter(src: string): FilterNode {
  return new Parser(tokenize(src), src).parse()
}

/** Resolves a property path on an object; a lambda variable resolves through `scope`. */
export type Resolver = (path: string[], scope: Map<string, unknown>) => unknown

function norm(v: unknown): unknown {
  if (typeof v === 'string') {
    if (/^\d{4}-\d{2}-\d{2}T/.test(v)) {
      const ms = Date.parse(/Z|[+-]\d{2}:\d{2}$/.test(v) ? v : `${v}Z`)
      if (!Number.isNaN(ms)) return ms
    }
    return v.toLowerCase()
  }
  return v
}

function compare(op: string, a: unknown, b: unknown): boolean {
  const x = norm(a)
  const y = norm(b)
  if (op === 'eqx') return a === b
  switch (op) {
    case 'eq':
      return x === y || (x == null && y == null)
    case 'ne':
      return !(x === y || (x == null && y == null))
    default: {
      if (x == null || y == null) return false
      const xx = x as number | string
      const yy = y as number | string
      if (op === 'gt') return xx > yy
      if (op === 'ge') return xx >= yy
      if (op === 'lt') return xx < yy
      return xx <= yy
    }
  }
}

export function evaluate(node: FilterNode, resolve: Resolver, scope: Map<string, unknown> = new Map()): boolean {
  const val = (v: ValueNode): unknown => (v.k === 'lit' ? v.v : resolve(v.path, scope))
  switch (node.k) {
    case 'and':
      return evaluate(node.a, resolve, scope) && evaluate(node.b, resolve, scope)
    case 'or':
      return evaluate(node.a, resolve, scope) || evaluate(node.b, resolve, scope)
    case 'not':
      return !evaluate(node.a, resolve, scope)
    case 'bool':
      return val(node.v) === true
    case 'cmp':
      return compare(node.op, val(node.left), val(node.right))
    case 'fn': {
      const [a, b] = node.args.map(val)
      if (typeof a !== 'string' || typeof b !== 'string') return false
      const x = a.toLowerCase()
      const y = b.toLowerCase()
      if (node.name === 'contains') return x.includes(y)
      if (node.name === 'startswith') return x.startsWith(y)
      return x.endsWith(y)
    }
    case 'lambda': {
      const coll = resolve(node.path, scope)
      if (!Array.isArray(coll)) return node.quant === 'all'
      const test = (el: unknown): boolean => {
        const s = new Map(scope)
        s.set(node.v, el)
        return evaluate(node.body, resolve, s)
      }
      return node.quant === 'any' ? coll.some(test) : coll.every(test)
    }
  }
}

/** Default resolver over a plain JSON object. Path segments are matched case-insensitively. */
export function objectResolver(root: Record<string, unknown>): Resolver {
  return (path, scope) => {
    let cur: unknown
    let rest = path
    const first = path[0] ?? ''
    if (scope.has(first)) {
      cur = scope.get(first)
      rest = path.slice(1)
    } else {
      cur = root
    }
    for (const seg of rest) {
      if (cur == null || typeof cur !== 'object') return undefined
      const o = cur as Record<string, unknown>
      if (seg in o) {
        cur = o[seg]
        continue
      }
      const lower = seg.toLowerCase()
      const k = Object.keys(o).find((key) => key.toLowerCase() === lower)
      cur = k === undefined ? undefined : o[k]
    }
    return cur
  }
}
