// A word-level diff for showing a suggestion: what stays, what goes, what comes in.

const MAX_CELLS = 4_000_000 // the LCS table's size; past it (two passages of ~2,000 words) one replace is shown

/** Words, the spaces after them and punctuation as separate pieces, so a changed comma is a small change. */
export function tokenize (text) {
  return text.match(/\s+|[\p{L}\p{N}_'’-]+|[^\s\p{L}\p{N}_'’-]/gu) || []
}

function merge (parts) {
  const merged = []
  for (const part of parts) {
    if (!part.text) continue
    const last = merged[merged.length - 1]
    if (last && last.op === part.op) last.text += part.text
    else merged.push({ ...part })
  }
  return merged
}

/** [{op: 'keep' | 'delete' | 'insert', text}] turning `before` into `after`, deletions before insertions. */
export function wordDiff (before, after) {
  const a = tokenize(before)
  const b = tokenize(after)
  let head = 0
  while (head < a.length && head < b.length && a[head] === b[head]) head++
  let tail = 0
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++
  const midA = a.slice(head, a.length - tail)
  const midB = b.slice(head, b.length - tail)
  const parts = [{ op: 'keep', text: a.slice(0, head).join('') }]
  if ((midA.length + 1) * (midB.length + 1) > MAX_CELLS) {
    parts.push({ op: 'delete', text: midA.join('') }, { op: 'insert', text: midB.join('') })
  } else {
    parts.push(...lcsDiff(midA, midB))
  }
  parts.push({ op: 'keep', text: a.slice(a.length - tail).join('') })
  return merge(parts)
}

function lcsDiff (a, b) {
  const width = b.length + 1
  const table = new Uint32Array((a.length + 1) * width) // table[i][j]: LCS length of a[i:], b[j:]
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      table[i * width + j] = a[i] === b[j]
        ? table[(i + 1) * width + j + 1] + 1
        : Math.max(table[(i + 1) * width + j], table[i * width + j + 1])
    }
  }
  const parts = []
  let i = 0
  let j = 0
  let deleted = []
  let inserted = []
  const flush = () => {
    parts.push({ op: 'delete', text: deleted.join('') }, { op: 'insert', text: inserted.join('') })
    deleted = []
    inserted = []
  }
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      flush()
      parts.push({ op: 'keep', text: a[i] })
      i++
      j++
    } else if (j >= b.length || (i < a.length && table[(i + 1) * width + j] >= table[i * width + j + 1])) {
      deleted.push(a[i++])
    } else {
      inserted.push(b[j++])
    }
  }
  flush()
  return parts
}

/** The share of the characters on both sides that a diff deletes or inserts: 0 unchanged, 1 all new. */
export function changedShare (parts) {
  let changed = 0
  let total = 0
  for (const part of parts) {
    const size = part.op === 'keep' ? 2 * part.text.length : part.text.length
    total += size
    if (part.op !== 'keep') changed += size
  }
  return total ? changed / total : 0
}
