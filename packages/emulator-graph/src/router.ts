/**
 * Graph path routing. OData key segments (`mailFolders('inbox')`, `users('a@b')`) are split into a name
 * segment and a key segment; literal names match case-insensitively, keys keep their case.
 */

export function splitPath(path: string): string[] {
  const out: string[] = []
  for (const raw of path.split('/')) {
    if (raw === '') continue
    let seg: string
    try {
      seg = decodeURIComponent(raw)
    } catch {
      seg = raw
    }
    const m = /^([^(]+)\((.*)\)$/.exec(seg)
    if (m) {
      out.push(m[1] as string)
      let key = (m[2] ?? '').trim()
      if (key.startsWith("'") && key.endsWith("'") && key.length >= 2) key = key.slice(1, -1).replace(/''/g, "'")
      out.push(key)
    } else {
      out.push(seg)
    }
  }
  return out
}

export type Params = Record<string, string>

export interface Route<H> {
  method: string
  parts: string[]
  handler: H
}

export class Router<H> {
  private readonly byLength = new Map<number, Route<H>[]>()

  add(method: string, pattern: string, handler: H): void {
    const parts = pattern.split('/').filter(Boolean).map((p) => (p.startsWith(':') ? p : p.toLowerCase()))
    const list = this.byLength.get(parts.length) ?? []
    list.push({ method, parts, handler })
    this.byLength.set(parts.length, list)
  }

  /** Returns the matching route, or `'method'` when the path exists for another method. */
  match(method: string, segs: string[]): { handler: H; params: Params } | 'method' | undefined {
    const list = this.byLength.get(segs.length)
    if (!list) return undefined
    let pathMatched = false
    for (const r of list) {
      const params: Params = {}
      let ok = true
      for (let i = 0; i < r.parts.length; i++) {
        const p = r.parts[i] as string
        const s = segs[i] as string
        if (p.startsWith(':')) params[p.slice(1)] = s
        else if (p !== s.toLowerCase()) {
          ok = false
          break
        }
      }
      if (!ok) continue
      if (r.method !== method) {
        pathMatched = true
        continue
      }
      return { handler: r.handler, params }
    }
    return pathMatched ? 'method' : undefined
  }
}
