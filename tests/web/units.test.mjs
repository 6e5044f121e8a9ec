// Unit tests for the editor's pure modules under `node --test`; test_units.py runs them with pytest.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { EditorSelection, EditorState } from '../../web/node_modules/@codemirror/state/dist/index.js'
import { tokenLook, stepLabel, UNRESOLVED_BELOW } from '../../web/src/canvas-view.js'
import { describeConnection } from '../../web/src/connection.js'
import { tokenize, wordDiff } from '../../web/src/diff.js'
import { targetFor } from '../../web/src/palette.js'
import { whenOpened } from '../../web/src/recent.js'

const SEED = Number(process.env.UNITS_SEED || Date.now() % 2 ** 31)
const where = (context) => `UNITS_SEED=${SEED} ${JSON.stringify(context)}` // every random failure names its seed

function random (seed) { // mulberry32: small, seedable
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('a word diff keeps what stays and marks what changed', () => {
  assert.deepEqual(wordDiff('the cat sat', 'the dog sat'), [
    { op: 'keep', text: 'the ' }, { op: 'delete', text: 'cat' }, { op: 'insert', text: 'dog' }, { op: 'keep', text: ' sat' }
  ])
  assert.deepEqual(wordDiff('', 'new text'), [{ op: 'insert', text: 'new text' }])
  assert.deepEqual(wordDiff('same', 'same'), [{ op: 'keep', text: 'same' }])
  assert.deepEqual(tokenize('Hello, wörld 😀!'), ['Hello', ',', ' ', 'wörld', ' ', '😀', '!'])
})

test('random word diffs rebuild both sides', () => {
  const rand = random(SEED)
  const words = ['a', 'b', 'é', '😀', ' ', ', ', '\n', 'cat', 'dog']
  const text = () => Array.from({ length: Math.floor(rand() * 12) }, () => words[Math.floor(rand() * words.length)]).join('')
  for (let round = 0; round < 500; round++) {
    const before = text()
    const after = text()
    const parts = wordDiff(before, after)
    const side = (skip) => parts.filter((part) => part.op !== skip).map((part) => part.text).join('')
    assert.equal(side('insert'), before, where({ before, after, parts }))
    assert.equal(side('delete'), after, where({ before, after, parts }))
    assert.ok(parts.every((part, i) => i === 0 || part.op !== parts[i - 1].op), where({ parts })) // merged runs
  }
})

test('canvas positions: placeholders below the threshold, opacity by confidence', () => {
  assert.deepEqual(tokenLook(['word', UNRESOLVED_BELOW - 0.01]), ['masked', '', 1])
  assert.deepEqual(tokenLook(['word', null]), ['masked', '', 1])
  assert.deepEqual(tokenLook(['', 0.9]), ['empty', '', 1])
  assert.deepEqual(tokenLook([' word', 1]), ['token', ' word', 1])
  assert.deepEqual(tokenLook([' word', 0.5]), ['token', ' word', 0.65])
  assert.equal(stepLabel({ status: 'running', step: 7, max_steps: 16 }), 'step 7/16')
  assert.equal(stepLabel({ status: 'queued', step: 0, max_steps: 0 }), 'waiting for the AI')
  assert.equal(stepLabel({ status: 'running', step: 0, max_steps: 0 }), 'starting')
})

test('the connection line says what a person needs to know', () => {
  assert.deepEqual(describeConnection({ phase: 'connecting', hasSynced: false, unsent: 0 }), ['connecting', 'Connecting…'])
  assert.deepEqual(describeConnection({ phase: 'synced', hasSynced: true, unsent: 0 }), ['connected', 'Connected'])
  assert.deepEqual(describeConnection({ phase: 'disconnected', hasSynced: true, unsent: 3 }),
    ['offline', 'Offline — editing locally, 3 changes not sent yet'])
  assert.deepEqual(describeConnection({ phase: 'connecting', hasSynced: true, unsent: 1 }),
    ['offline', 'Offline — editing locally, 1 change not sent yet'])
  assert.deepEqual(describeConnection({ phase: 'connected', hasSynced: true, unsent: 0 }), ['resyncing', 'Resyncing…'])
  assert.deepEqual(describeConnection({ phase: 'stopped', hasSynced: true, unsent: 0, close: { code: 4401, reason: 'the token has expired' } }),
    ['offline', 'Disconnected — the token has expired (4401)'])
})

test('presets work on the selection, the paragraph at the cursor, or the cursor', () => {
  const doc = 'Title\n\nFirst line\nsecond line\n\nLast'
  const at = (anchor, head = anchor) => EditorState.create({ doc, selection: EditorSelection.single(anchor, head) })
  const paragraph = [7, 7 + 'First line\nsecond line'.length]
  assert.deepEqual(targetFor(at(9), 'passage'), paragraph)
  assert.deepEqual(targetFor(at(paragraph[1]), 'passage'), paragraph)
  assert.equal(targetFor(at(6), 'passage'), null) // a blank line: nothing to rewrite
  assert.deepEqual(targetFor(at(9, 12), 'passage'), [9, 12])
  assert.deepEqual(targetFor(at(12, 9), 'after'), [12, 12])
  assert.deepEqual(targetFor(at(9, 12), 'here'), [9, 12])
  assert.deepEqual(targetFor(at(0), 'passage'), [0, 5])
  assert.deepEqual(targetFor(at(doc.length), 'passage'), [doc.length - 4, doc.length])
})

test('recent documents say when they were opened', () => {
  const now = Date.UTC(2026, 10, 27, 12)
  assert.equal(whenOpened(now - 20_000, now), 'just now')
  assert.equal(whenOpened(now - 5 * 60_000, now), '5 min ago')
  assert.equal(whenOpened(now - 3 * 3600_000, now), '3 h ago')
  assert.equal(whenOpened(now - 30 * 3600_000, now), 'yesterday')
})
