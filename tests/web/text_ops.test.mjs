// Unit tests for web/src/text-ops.js under `node --test`; test_text_ops.py runs them with pytest.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { mapIndex, mapRange, spliceBetween } from '../../web/src/text-ops.js'

const SEED = Number(process.env.TEXT_OPS_SEED || Date.now() % 2 ** 31)
const where = (context) => `TEXT_OPS_SEED=${SEED} ${JSON.stringify(context)}` // every random failure names its seed

function random (seed) { // mulberry32: small, seedable
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const rand = random(SEED)
const pick = (items) => items[Math.floor(rand() * items.length)]
const ALPHABET = ['a', 'b', 'é', '😀', '😃', '\n']
const randomText = (maxChars) => Array.from({ length: Math.floor(rand() * (maxChars + 1)) }, () => pick(ALPHABET)).join('')
const isLone = (text, index) => /[\udc00-\udfff]/.test(text[index] || '') && /[\ud800-\udbff]/.test(text[index - 1] || '')
const apply = (text, { index, remove, insert }) => text.slice(0, index) + insert + text.slice(index + remove)

test('a splice lands at the caret in a run of equal characters', () => {
  assert.equal(spliceBetween('abc', 'abc', 1), null)
  assert.deepEqual(spliceBetween('aa', 'aaa', 1), { index: 0, remove: 0, insert: 'a' })
  assert.deepEqual(spliceBetween('aa', 'aaa', 3), { index: 2, remove: 0, insert: 'a' })
  assert.deepEqual(spliceBetween('aaa', 'aa', 1), { index: 1, remove: 1, insert: '' })
})

test('a splice never cuts a surrogate pair', () => {
  assert.deepEqual(spliceBetween('x😀y', 'x😃y', 3), { index: 1, remove: 2, insert: '😃' })
  assert.deepEqual(spliceBetween('😀😀', '😀', 0), { index: 0, remove: 2, insert: '' })
})

test('random splices turn one text into the other on code point boundaries', () => {
  for (let round = 0; round < 2000; round++) {
    const before = randomText(8)
    const after = randomText(8)
    const splice = spliceBetween(before, after, Math.floor(rand() * (after.length + 1)))
    if (before === after) { assert.equal(splice, null); continue }
    assert.equal(apply(before, splice), after, where([before, after]))
    assert.ok(!isLone(before, splice.index) && !isLone(before, splice.index + splice.remove), where([before, after, splice]))
  }
})

// A delta over tagged characters tells where each old character went: the oracle for the mappings.
function randomDelta (length) {
  const delta = []
  let left = length
  while (left > 0 && rand() < 0.8) {
    const count = 1 + Math.floor(rand() * left)
    const kind = pick(['retain', 'delete', 'insert'])
    if (kind === 'insert') { delta.push({ insert: 'ZZ'.slice(0, 1 + Math.floor(rand() * 2)) }); continue }
    delta.push({ [kind]: count })
    left -= count
  }
  if (rand() < 0.5) delta.push({ insert: 'Q' })
  return delta
}

function applyTagged (tags, delta) {
  const out = []
  let pos = 0
  for (const op of delta) {
    if (op.retain !== undefined) { out.push(...tags.slice(pos, pos + op.retain)); pos += op.retain }
    if (op.delete !== undefined) pos += op.delete
    if (op.insert !== undefined) out.push(...Array.from(op.insert, () => null))
  }
  return out.concat(tags.slice(pos))
}

test('mapRange keeps exactly the surviving characters of a range', () => {
  for (let round = 0; round < 2000; round++) {
    const tags = Array.from({ length: Math.floor(rand() * 10) }, (_, i) => i)
    const delta = randomDelta(tags.length)
    const start = Math.floor(rand() * (tags.length + 1))
    const end = start + Math.floor(rand() * (tags.length - start + 1))
    const after = applyTagged(tags, delta)
    const kept = mapRange(start, end, delta).flatMap(([from, to]) => after.slice(from, to))
    assert.deepEqual(kept, tags.slice(start, end).filter((tag) => after.includes(tag)), where({ delta, start, end }))
  }
})

test('mapIndex puts text inserted at the index on the chosen side', () => {
  assert.equal(mapIndex(2, [{ retain: 2 }, { insert: 'xy' }], true), 2)
  assert.equal(mapIndex(2, [{ retain: 2 }, { insert: 'xy' }], false), 4)
  assert.equal(mapIndex(2, [{ insert: 'xy' }], true), 4)
  assert.equal(mapIndex(3, [{ retain: 1 }, { delete: 4 }, { insert: 'x' }], true), 1)
})

test('mapIndex keeps a caret beside the characters around it', () => {
  for (let round = 0; round < 2000; round++) {
    const tags = Array.from({ length: Math.floor(rand() * 10) }, (_, i) => i)
    const delta = randomDelta(tags.length)
    const index = Math.floor(rand() * (tags.length + 1))
    const after = applyTagged(tags, delta)
    for (const stayBefore of [true, false]) {
      const mapped = mapIndex(index, delta, stayBefore)
      const survivorsBefore = tags.slice(0, index).filter((tag) => after.includes(tag))
      const survivorsAfter = tags.slice(index).filter((tag) => after.includes(tag))
      const context = where({ delta, index, stayBefore, mapped })
      assert.deepEqual(after.slice(0, mapped).filter((tag) => tag !== null), survivorsBefore, context)
      assert.deepEqual(after.slice(mapped).filter((tag) => tag !== null), survivorsAfter, context)
    }
  }
})
