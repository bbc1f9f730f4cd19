/** One edit of a base string: delete `deleteCount` chars at `index` (base coordinates), insert `insert`. */
export interface TextEdit {
  index: number
  deleteCount: number
  insert: string
}

const TOKEN = /\s+|\w+|[^\s\w]/gu
/** Above this many token pairs the middle is replaced as one hunk (bounded cost, still correct). */
const MAX_CELLS = 4_000_000

function tokenize(text: string): string[] {
  return text.match(TOKEN) ?? []
}

/**
 * A word-level diff from `base` to `next` as non-overlapping edits in ascending base order:
 * common prefix and suffix are trimmed, the middle is aligned by a longest common subsequence of
 * tokens (words, whitespace runs, punctuation). Applying the edits to `base` yields `next`.
 */
export function diffText(base: string, next: string): TextEdit[] {
  if (base === next) return []
  // Trim the common prefix and suffix by characters first (backing off to whitespace, so words are
  // not split), and tokenize only the middle: long bodies with a small edit stay cheap.
  const max = Math.min(base.length, next.length)
  let head = 0
  while (head < max && base.charCodeAt(head) === next.charCodeAt(head)) head++
  while (head > 0 && !isSpace(base.charCodeAt(head - 1))) head--
  let tail = 0
  while (tail < max - head && base.charCodeAt(base.length - 1 - tail) === next.charCodeAt(next.length - 1 - tail)) tail++
  while (tail > 0 && !isSpace(base.charCodeAt(base.length - tail))) tail--
  const edits = diffTokens(base.slice(head, base.length - tail), next.slice(head, next.length - tail))
  for (const edit of edits) edit.index += head
  return edits
}

const isSpace = (code: number) => code === 32 || code === 10 || code === 9 || code === 13

function diffTokens(base: string, next: string): TextEdit[] {
  const a = tokenize(base)
  const b = tokenize(next)
  let start = 0
  while (start < a.length && start < b.length && a[start] === b[start]) start++
  let endA = a.length
  let endB = b.length
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--
    endB--
  }
  let offset = 0
  for (let i = 0; i < start; i++) offset += a[i]!.length
  const n = endA - start
  const m = endB - start
  const edits: TextEdit[] = []
  if (n === 0 || m === 0 || (n + 1) * (m + 1) > MAX_CELLS) {
    let deleteCount = 0
    for (let i = start; i < endA; i++) deleteCount += a[i]!.length
    edits.push({ index: offset, deleteCount, insert: b.slice(start, endB).join('') })
    return edits
  }
  // LCS table over the middle, suffix form: lcs[i][j] = LCS of a[start+i..] and b[start+j..].
  const width = m + 1
  const lcs = new Uint32Array((n + 1) * width)
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * width + j] = a[start + i] === b[start + j] ? lcs[(i + 1) * width + j + 1]! + 1 : Math.max(lcs[(i + 1) * width + j]!, lcs[i * width + j + 1]!)
    }
  }
  let i = 0
  let j = 0
  let pos = offset
  let pending: TextEdit | undefined
  const flush = () => {
    if (pending) edits.push(pending)
    pending = undefined
  }
  while (i < n || j < m) {
    if (i < n && j < m && a[start + i] === b[start + j]) {
      flush()
      pos += a[start + i]!.length
      i++
      j++
    } else if (j < m && (i === n || lcs[i * width + j + 1]! >= lcs[(i + 1) * width + j]!)) {
      pending ??= { index: pos, deleteCount: 0, insert: '' }
      pending.insert += b[start + j]!
      j++
    } else {
      pending ??= { index: pos, deleteCount: 0, insert: '' }
      pending.deleteCount += a[start + i]!.length
      pos += a[start + i]!.length
      i++
    }
  }
  flush()
  return edits
}

/** Applies edits produced by `diffText` to `base` (used by tests and as a Yjs-free check). */
export function applyEdits(base: string, edits: readonly TextEdit[]): string {
  let out = ''
  let at = 0
  for (const edit of edits) {
    out += base.slice(at, edit.index) + edit.insert
    at = edit.index + edit.deleteCount
  }
  return out + base.slice(at)
}
