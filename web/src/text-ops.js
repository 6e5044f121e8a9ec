// Pure text operations for the textarea binding. Offsets are UTF-16 code units, the unit
// of both the DOM's selection and Y.Text, so no conversion is needed between them.

const isHighSurrogate = (code) => code >= 0xd800 && code <= 0xdbff
const isLowSurrogate = (code) => code >= 0xdc00 && code <= 0xdfff

/** The one splice turning `before` into `after`, or null when they are equal. */
export function spliceBetween (before, after, caret = after.length) {
  if (before === after) return null
  const shortest = Math.min(before.length, after.length)
  // The text after the caret is what an edit usually leaves alone; counting the common
  // suffix up to it first places the splice at the caret in runs like "aa" -> "aaa".
  const maxSuffix = Math.min(shortest, Math.max(0, after.length - caret))
  let suffix = 0
  while (suffix < maxSuffix && before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)) suffix++
  let prefix = 0
  while (prefix < shortest - suffix && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++
  // Never cut a surrogate pair: Yjs would store each half as U+FFFD.
  if (prefix > 0 && isHighSurrogate(before.charCodeAt(prefix - 1))) prefix--
  if (suffix > 0 && isLowSurrogate(before.charCodeAt(before.length - suffix))) suffix--
  return {
    index: prefix,
    remove: before.length - prefix - suffix,
    insert: after.slice(prefix, after.length - suffix)
  }
}

const insertLength = (op) => (typeof op.insert === 'string' ? op.insert.length : 1)

/** Where `index` lands after a Y.Text delta; `stayBefore` keeps it ahead of text inserted exactly there. */
export function mapIndex (index, delta, stayBefore) {
  let oldPos = 0
  let mapped = index
  for (const op of delta) {
    if (oldPos > index) break
    if (op.retain !== undefined) {
      oldPos += op.retain
    } else if (op.insert !== undefined) {
      if (oldPos < index || !stayBefore) mapped += insertLength(op)
    } else if (op.delete !== undefined) {
      mapped -= Math.max(0, Math.min(op.delete, index - oldPos))
      oldPos += op.delete
    }
  }
  return mapped
}

/** The pieces of [start, end) that survive a Y.Text delta, as [start, end) pairs after it. */
export function mapRange (start, end, delta) {
  const pieces = []
  const keep = (oldPos, newPos, length) => {
    const from = Math.max(start, oldPos)
    const to = Math.min(end, oldPos + length)
    if (from < to) pieces.push([newPos + from - oldPos, newPos + to - oldPos])
  }
  let oldPos = 0
  let newPos = 0
  for (const op of delta) {
    if (op.retain !== undefined) {
      keep(oldPos, newPos, op.retain)
      oldPos += op.retain
      newPos += op.retain
    } else if (op.insert !== undefined) {
      newPos += insertLength(op)
    } else if (op.delete !== undefined) {
      oldPos += op.delete
    }
  }
  keep(oldPos, newPos, Infinity) // a delta leaves out the retain of the unchanged tail
  return pieces
}
