import { queryInvalid } from '../errors.js'

/** OData $filter subset: eq ne gt ge lt le, and or not, parentheses, contains/startswith/endswith. */
export type Literal =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'bool'; value: boolean }
  | { kind: 'null' }
  | { kind: 'guid'; value: string }
  | { kind: 'datetime'; value: string }

export type Operand = { kind: 'prop'; name: string } | { kind: 'lit'; lit: Literal }

export type CompareOp = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le'
export type FilterFunction = 'contains' | 'startswith' | 'endswith'

export type FilterExpr =
  | { kind: 'and' | 'or'; left: FilterExpr; right: FilterExpr }
  | { kind: 'not'; expr: FilterExpr }
  | { kind: 'compare'; op: CompareOp; left: Operand; right: Operand }
  | { kind: 'call'; fn: FilterFunction; prop: string; value: string }
  /** Microsoft.Dynamics.CRM.In / NotIn(PropertyName='x',PropertyValues=['a','b']) */
  | { kind: 'in'; prop: string; values: string[]; negate: boolean }

export const MAX_FILTER_LENGTH = 32_768
const MAX_DEPTH = 64

type Token =
  | { t: 'lp' | 'rp' | 'comma' | 'lb' | 'rb' | 'assign'; pos: number }
  | { t: 'str'; v: string; pos: number }
  | { t: 'word'; v: string; pos: number }

const GUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const NUMBER_RE = /^-?\d+(\.\d+)?([eE][-+]?\d+)?[mMdDfFlL]?$/
const DATE_RE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/
const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_]*$/
const COMPARE_OPS = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le'])
const FUNCTIONS = new Set(['contains', 'startswith', 'endswith'])
const IN_FUNCTIONS = new Set(['microsoft.dynamics.crm.in', 'microsoft.dynamics.crm.notin'])

function tokenize(src: string): Token[] {
  const out: Token[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i] as string
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++
    } else if (c === '(') {
      out.push({ t: 'lp', pos: i++ })
    } else if (c === ')') {
      out.push({ t: 'rp', pos: i++ })
    } else if (c === ',') {
      out.push({ t: 'comma', pos: i++ })
    } else if (c === '[') {
      out.push({ t: 'lb', pos: i++ })
    } else if (c === ']') {
      out.push({ t: 'rb', pos: i++ })
    } else if (c === '=') {
      out.push({ t: 'assign', pos: i++ })
    } else if (c === "'") {
      const start = i
      let v = ''
      i++
      for (;;) {
        if (i >= src.length) throw queryInvalid(`Syntax error: unterminated string literal at position ${start} in '${src}'.`)
        const ch = src[i] as string
        if (ch === "'") {
          if (src[i + 1] === "'") {
            v += "'"
            i += 2
            continue
          }
          i++
          break
        }
        v += ch
        i++
      }
      out.push({ t: 'str', v, pos: start })
    } else {
      const start = i
      while (i < src.length && /[A-Za-z0-9_.:+\-/]/.test(src[i] as string)) i++
      if (i === start) throw queryInvalid(`Syntax error: character '${c}' is not valid at position ${start} in '${src}'.`)
      out.push({ t: 'word', v: src.slice(start, i), pos: start })
    }
  }
  return out
}

class Parser {
  private i = 0
  constructor(
    private readonly toks: Token[],
    private readonly src: string,
  ) {}

  private peek(): Token | undefined {
    return this.toks[this.i]
  }

  private isWord(v: string): boolean {
    const t = this.peek()
    return t !== undefined && t.t === 'word' && t.v.toLowerCase() === v
  }

  private fail(msg: string): never {
    const t = this.peek()
    const where = t ? `at position ${t.pos}` : 'at end of expression'
    throw queryInvalid(`Syntax error: ${msg} ${where} in '${this.src}'.`)
  }

  parse(): FilterExpr {
    const e = this.or(0)
    if (this.peek()) this.fail('unexpected token')
    return e
  }

  private or(depth: number): FilterExpr {
    let left = this.and(depth)
    while (this.isWord('or')) {
      this.i++
      left = { kind: 'or', left, right: this.and(depth) }
    }
    return left
  }

  private and(depth: number): FilterExpr {
    let left = this.unary(depth)
    while (this.isWord('and')) {
      this.i++
      left = { kind: 'and', left, right: this.unary(depth) }
    }
    return left
  }

  private unary(depth: number): FilterExpr {
    if (depth > MAX_DEPTH) this.fail('expression nested too deeply')
    if (this.isWord('not')) {
      this.i++
      return { kind: 'not', expr: this.unary(depth + 1) }
    }
    return this.primary(depth)
  }

  private primary(depth: number): FilterExpr {
    const t = this.peek()
    if (!t) this.fail('expression expected')
    if (t.t === 'lp') {
      this.i++
      const e = this.or(depth + 1)
      if (this.peek()?.t !== 'rp') this.fail("')' expected")
      this.i++
      return e
    }
    if (t.t === 'word' && FUNCTIONS.has(t.v.toLowerCase()) && this.toks[this.i + 1]?.t === 'lp') {
      const fn = t.v.toLowerCase() as FilterFunction
      this.i += 2
      const p = this.peek()
      if (!p || p.t !== 'word' || !IDENT_RE.test(p.v)) this.fail(`property name expected as first argument of ${fn}`)
      this.i++
      if (this.peek()?.t !== 'comma') this.fail("',' expected")
      this.i++
      const s = this.peek()
      if (!s || s.t !== 'str') this.fail(`string literal expected as second argument of ${fn}`)
      this.i++
      if (this.peek()?.t !== 'rp') this.fail("')' expected")
      this.i++
      return { kind: 'call', fn, prop: p.v, value: s.v }
    }
    if (t.t === 'word' && IN_FUNCTIONS.has(t.v.toLowerCase()) && this.toks[this.i + 1]?.t === 'lp') {
      return this.inFunction(t.v.toLowerCase().endsWith('notin'))
    }
    const left = this.operand()
    const op = this.peek()
    if (!op || op.t !== 'word' || !COMPARE_OPS.has(op.v.toLowerCase())) this.fail('comparison operator (eq, ne, gt, ge, lt, le) expected')
    this.i++
    const right = this.operand()
    return { kind: 'compare', op: op.v.toLowerCase() as CompareOp, left, right }
  }

  private expect(t: Token['t'], what: string): Token {
    const tok = this.peek()
    if (!tok || tok.t !== t) this.fail(`${what} expected`)
    this.i++
    return tok
  }

  private namedArg(name: string): void {
    const n = this.peek()
    if (!n || n.t !== 'word' || n.v.toLowerCase() !== name.toLowerCase()) this.fail(`parameter ${name} expected`)
    this.i++
    this.expect('assign', "'='")
  }

  private inFunction(negate: boolean): FilterExpr {
    this.i += 2
    this.namedArg('PropertyName')
    const prop = this.expect('str', 'property name string') as { v: string }
    if (!IDENT_RE.test(prop.v)) this.fail(`'${prop.v}' is not a property name`)
    this.expect('comma', "','")
    this.namedArg('PropertyValues')
    this.expect('lb', "'['")
    const values: string[] = []
    for (;;) {
      const v = this.peek()
      if (v?.t === 'str') values.push(v.v)
      else if (v?.t === 'word') values.push(v.v)
      else this.fail('value expected')
      this.i++
      if (this.peek()?.t === 'comma') {
        this.i++
        continue
      }
      break
    }
    this.expect('rb', "']'")
    this.expect('rp', "')'")
    return { kind: 'in', prop: prop.v, values, negate }
  }

  private operand(): Operand {
    const t = this.peek()
    if (!t) this.fail('operand expected')
    this.i++
    if (t.t === 'str') return { kind: 'lit', lit: { kind: 'string', value: t.v } }
    if (t.t !== 'word') {
      this.i--
      this.fail('operand expected')
    }
    const v = t.v
    const lower = v.toLowerCase()
    if (lower === 'null') return { kind: 'lit', lit: { kind: 'null' } }
    if (lower === 'true' || lower === 'false') return { kind: 'lit', lit: { kind: 'bool', value: lower === 'true' } }
    if (GUID_RE.test(v)) return { kind: 'lit', lit: { kind: 'guid', value: lower } }
    if (DATE_RE.test(v) && v.includes('-')) return { kind: 'lit', lit: { kind: 'datetime', value: v } }
    if (NUMBER_RE.test(v)) {
      const n = Number(v.replace(/[mMdDfFlL]$/, ''))
      if (!Number.isFinite(n)) this.fail(`invalid number '${v}'`)
      return { kind: 'lit', lit: { kind: 'number', value: n } }
    }
    if (IDENT_RE.test(v)) return { kind: 'prop', name: v }
    this.i--
    return this.fail(`'${v}' is not a property name or literal`)
  }
}

export function parseFilter(src: string): FilterExpr {
  if (src.length > MAX_FILTER_LENGTH) throw queryInvalid(`The $filter expression is longer than ${MAX_FILTER_LENGTH} characters.`)
  if (src.trim() === '') throw queryInvalid('The $filter expression is empty.')
  return new Parser(tokenize(src), src).parse()
}

/** Names of all properties an expression references. */
export function filterProperties(e: FilterExpr, out: Set<string> = new Set()): Set<string> {
  switch (e.kind) {
    case 'and':
    case 'or':
      filterProperties(e.left, out)
      filterProperties(e.right, out)
      break
    case 'not':
      filterProperties(e.expr, out)
      break
    case 'call':
    case 'in':
      out.add(e.prop)
      break
    case 'compare':
      if (e.left.kind === 'prop') out.add(e.left.name)
      if (e.right.kind === 'prop') out.add(e.right.name)
      break
  }
  return out
}
